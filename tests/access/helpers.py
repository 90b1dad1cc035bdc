"""Helpers of the access tests, also used by tests/conftest.py (force_login of staff)."""

from __future__ import annotations


def verify_second_factor(client, user) -> None:
    """Mark the client's session as verified by a confirmed TOTP device of ``user`` (created if
    needed), as django_otp.login does after a staff member typed a valid code."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def current_code(device) -> str:
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def totp_code(base32_key: str) -> str:
    """The current 6-digit code of a base32 key (as an authenticator app shows it)."""
    from base64 import b32decode

    from django_otp.oath import TOTP

    return f"{TOTP(b32decode(base32_key)).token():06d}"
