"""The links' tokens: Django's PasswordResetTokenGenerator, nothing hand-made.

Both expire after ``PASSWORD_RESET_TIMEOUT`` seconds and hold only while what they hash is
unchanged, which is what makes them single use:

- ``access_tokens`` (Django's ``default_token_generator``): the create/reset link. It hashes the
  password hash and the last login, so setting the password (what the link is for) spends it,
  and so does a sign-in since it was sent.
- ``confirmation_tokens``: the account page's "confirm my e-mail" link. It hashes the address and
  the account's confirmation state (not the last login, so signing in to open it does not spend
  it); confirming the address spends it, and changing the address voids it.
"""

from __future__ import annotations

from django.contrib.auth.tokens import PasswordResetTokenGenerator, default_token_generator
from django.utils.http import base36_to_int

access_tokens = default_token_generator


class EmailConfirmationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "prudencial.accounts.tokens.EmailConfirmationTokenGenerator"

    def _make_hash_value(self, user, timestamp):
        from prudencial.accounts.models import AccountState

        state = AccountState.objects.filter(user=user).first()
        confirmed = f"{state.confirmed_email}|{state.email_confirmed_at}" if state else "|"
        return f"{user.pk}|{user.password}|{user.email}|{confirmed}|{timestamp}"


confirmation_tokens = EmailConfirmationTokenGenerator()


def is_expired(generator: PasswordResetTokenGenerator, token: str) -> bool:
    """Whether the token's own timestamp is past the timeout (why a refused link was refused).

    Only for the message and the audit: ``check_token`` alone decides whether a link works."""
    try:
        ts = base36_to_int(token.split("-", 1)[0])
    except (ValueError, IndexError):
        return False
    from django.conf import settings

    return generator._num_seconds(generator._now()) - ts > settings.PASSWORD_RESET_TIMEOUT
