"""Account state kept beside the user (the registry's ``prudencial.User`` is not changed here)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AccountState(models.Model):
    """Which e-mail address the person has shown to be theirs, and when.

    The address is confirmed by opening a link sent to it (an access link, which also sets the
    password, or a confirmation link from the account page), or by CCEE's identity provider
    saying so (``email_verified`` in the ID token's claims). A confirmation holds for that address
    only: when ``User.email`` changes, the account is unconfirmed again until the new address is
    confirmed ("para os logins já confirmados por e-mail")."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="account_state",
        verbose_name=_("usuário"),
    )
    confirmed_email = models.EmailField(_("e-mail confirmado"), blank=True)
    email_confirmed_at = models.DateTimeField(_("e-mail confirmado em"), null=True, blank=True)
    updated_at = models.DateTimeField(_("atualizado em"), auto_now=True)

    class Meta:
        verbose_name = _("situação da conta")
        verbose_name_plural = _("situações das contas")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(email_confirmed_at__isnull=True, confirmed_email="")
                | (models.Q(email_confirmed_at__isnull=False) & ~models.Q(confirmed_email="")),
                name="account_state_confirmation_complete",
                violation_error_message=_(
                    "Uma confirmação de e-mail tem o endereço e a data, ou nenhum dos dois."
                ),
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.confirmed_email or '-'}"

    def confirms(self, email: str) -> bool:
        return bool(
            self.email_confirmed_at and email and self.confirmed_email.lower() == email.lower()
        )
