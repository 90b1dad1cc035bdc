from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClosingConfig(AppConfig):
    """The weekly closing: the week shipped to the enclave, its signed results, agents' decisions
    (send or cancel), corrections and publication."""

    name = "prudencial.closing"
    label = "closing"
    verbose_name = _("Fechamento semanal")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Celery finds the trade network's validation task (admin-export helper).
        from prudencial.closing import tasks_trade_network  # noqa: F401
