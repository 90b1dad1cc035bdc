from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PrudencialConfig(AppConfig):
    """Registry of agents and users, representations, weeks and CCEE parameters."""

    name = "prudencial"
    verbose_name = _("Monitoramento prudencial")
    default_auto_field = "django.db.models.BigAutoField"
