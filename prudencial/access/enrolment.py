"""Second-factor enrolment of CCEE staff.

A superuser sends the invitation from the admin (Quem tem acesso de equipe → "Enviar cadastro do
segundo fator"): it creates an unconfirmed TOTP device and e-mails the person a signed link that
expires (ACCESS_TOTP_ENROLMENT_MAX_AGE) and works once. Opening it asks for the person's password
(counted by the lockout) and only then shows the secret (QR code); the device is confirmed by the
first valid code. So neither the link alone nor the password alone enrols a device.

In development and demos, ``manage.py totp_enrol <login>`` creates a confirmed device directly.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from prudencial.access import audit
from prudencial.access.models import AuditKind

SALT = "prudencial.access.totp-enrolment"
PURPOSE = "totp_enrolment"


class EnrolmentLinkError(Exception):
    """The link is tampered with, expired, or already used."""


@transaction.atomic
def device_create(*, user, name: str, confirmed: bool) -> TOTPDevice:
    """A new TOTP device; the person's unconfirmed ones are replaced."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name=name[:64], confirmed=confirmed)


def enrolment_link(device: TOTPDevice, *, base_url: str = "") -> str:
    value = signing.dumps({"device": device.pk, "user": device.user_id}, salt=SALT)
    return base_url.rstrip("/") + reverse("access:totp-enrol", args=[value])


@transaction.atomic
def enrolment_invite(*, user, by, base_url: str) -> TOTPDevice:
    """Create the pending device and e-mail the link to the person's address."""
    if not user.email:
        raise ValueError(_("%(login)s não tem e-mail cadastrado.") % {"login": user.get_username()})
    device = device_create(user=user, name=_("Autenticador"), confirmed=False)
    link = enrolment_link(device, base_url=base_url)
    hours = int(settings.ACCESS_TOTP_ENROLMENT_MAX_AGE.total_seconds() // 3600)
    send_mail(
        _("Cadastro do segundo fator — Plataforma de Monitoramento Prudencial"),
        _(
            "Olá, %(name)s.\n\nPara cadastrar o segundo fator do seu acesso ao admin, abra o link "
            "abaixo (válido por %(hours)s horas, uma vez só) e tenha à mão sua senha e um "
            "aplicativo autenticador (TOTP):\n\n%(link)s\n\nSe você não esperava esta mensagem, "
            "avise a equipe de segurança da CCEE."
        )
        % {"name": user.get_full_name() or user.get_username(), "hours": hours, "link": link},
        None,
        [user.email],
    )
    audit.record(
        AuditKind.SECOND_FACTOR_INVITED,
        actor=by,
        obj=user,
        detail={"device": device.pk, "email": user.email},
    )
    return device


def device_for_link(value: str) -> TOTPDevice:
    """The pending device a link names, or EnrolmentLinkError."""
    max_age = settings.ACCESS_TOTP_ENROLMENT_MAX_AGE.total_seconds()
    try:
        data = signing.loads(value, salt=SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise EnrolmentLinkError(_("Este link de cadastro expirou: peça outro.")) from None
    except signing.BadSignature:
        raise EnrolmentLinkError(_("Link de cadastro inválido.")) from None
    device = (
        TOTPDevice.objects.select_related("user")
        .filter(pk=data.get("device"), user_id=data.get("user"))
        .first()
    )
    if device is None or device.confirmed:
        raise EnrolmentLinkError(_("Este link de cadastro já foi usado ou foi substituído."))
    return device


@transaction.atomic
def enrolment_confirm(*, device: TOTPDevice, code: str, ip_address: str = "") -> bool:
    """Confirm the device with its first code; False (nothing changed) if the code is wrong."""
    device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
    if device.confirmed or not device.verify_token(code.strip()):
        return False
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    audit.record(
        AuditKind.SECOND_FACTOR_ENROLLED,
        actor=device.user,
        ip_address=ip_address,
        obj=device.user,
        detail={"device": device.pk},
    )
    return True


def demo_device(user) -> str:
    """A confirmed TOTP device with a key fixed by the login (demo data ONLY: anyone who reads
    this function knows it), so the demo's printed key stays the same across reloads. Returns
    the key in base32 for an authenticator app or ``oathtool --totp -b``."""
    import hashlib
    from base64 import b32encode

    key = hashlib.sha256(f"demo-totp:{user.get_username()}".encode()).digest()[:20]
    TOTPDevice.objects.filter(user=user).delete()
    TOTPDevice.objects.create(user=user, name="demo", confirmed=True, key=key.hex())
    return b32encode(key).decode()
