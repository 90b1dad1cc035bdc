from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    """Sign-in (SSO and local), access links by e-mail, and the e-mail confirmation state."""

    name = "prudencial.accounts"
    label = "accounts"
    verbose_name = _("Acesso")
    default_auto_field = "django.db.models.BigAutoField"
