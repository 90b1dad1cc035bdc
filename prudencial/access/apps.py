from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccessConfig(AppConfig):
    """Tokens, second factor, staff access and the access audit (docs/access.md)."""

    name = "prudencial.access"
    label = "access"
    verbose_name = _("Controle de acesso")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prudencial.access import otp, receivers

        receivers.connect()
        otp.require_second_factor_in_admin()
