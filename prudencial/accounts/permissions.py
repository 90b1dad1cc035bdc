"""The API's side of "nothing but the account page until the e-mail is confirmed"."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

from prudencial.accounts.services import needs_confirmation


class EmailConfirmed(BasePermission):
    """In ``DEFAULT_PERMISSION_CLASSES`` after ``IsAuthenticated``: an agent's user whose e-mail
    is not confirmed gets 403 ``email_not_confirmed``, for a session and a token alike."""

    message = _(
        "Seu e-mail ainda não foi confirmado: abra o link de confirmação enviado a ele (ou peça "
        "outro na página da sua conta, /accounts/) antes de usar a API."
    )
    code = "email_not_confirmed"

    def has_permission(self, request, view) -> bool:
        return not needs_confirmation(request.user)
