"""``Authorization: Token <key>`` for the API, with tokens that expire and can be revoked.

The refusal says why (expired on …, revoked on …, unknown), so the client knows to ask for a new
token rather than retry; the API's error handler keeps these messages (``says_why``)."""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from prudencial.access.tokens import token_for_key
from prudencial.templatetags.prudencial_format import short_datetime


class TokenRefused(exceptions.AuthenticationFailed):
    says_why = True  # prudencial.api.errors keeps this message instead of the generic 401 one

    def __init__(self, message: str, code: str):
        super().__init__(message, code)


class ExpiringTokenAuthentication(TokenAuthentication):
    keyword = "Token"

    def authenticate_credentials(self, key):
        token = token_for_key(key)
        if token is None:
            raise TokenRefused(
                _("Token inválido: peça um novo em POST /api/v1/auth/token/."),
                "authentication_failed",
            )
        now = timezone.now()
        if token.revoked_at is not None:
            raise TokenRefused(
                _("Token revogado em %(when)s: peça um novo em POST /api/v1/auth/token/.")
                % {"when": short_datetime(token.revoked_at)},
                "token_revoked",
            )
        if token.expires_at <= now:
            raise TokenRefused(
                _("Token expirado em %(when)s: peça um novo em POST /api/v1/auth/token/.")
                % {"when": short_datetime(token.expires_at)},
                "token_expired",
            )
        if not token.user.is_active:
            raise TokenRefused(_("Usuário inativo ou removido."), "authentication_failed")
        return token.user, token
