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
        from django.core import checks

        # Celery finds the trade network's validation task (admin-export helper).
        from prudencial.closing import tasks_trade_network  # noqa: F401

        checks.register(check_settings, checks.Tags.compatibility)


def check_settings(app_configs=None, **kwargs):
    """The closing's settings read only at the worst moment (CLOSING_UNVERIFIED_VERDICTS is read
    when a verdict does not verify) are checked at start-up, so a typo stops the deploy."""
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured

    from prudencial.closing.services import unverified_rule

    try:
        unverified_rule()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="closing.E001")]
    return []
