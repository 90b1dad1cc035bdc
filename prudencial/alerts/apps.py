from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlertsConfig(AppConfig):
    """Alerts and cases: a result beyond the week's FA bands or concentration limits opens a case
    with a response deadline, assignment, comments and a closing decision."""

    name = "prudencial.alerts"
    label = "alerts"
    verbose_name = _("Alertas e casos")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prudencial.alerts import receivers
        from prudencial.closing import signals

        signals.closing_done.connect(receivers.on_closing_done, dispatch_uid="alerts.closing_done")
        signals.closing_delayed.connect(
            receivers.on_closing_delayed, dispatch_uid="alerts.closing_delayed"
        )
        signals.closing_failed.connect(
            receivers.on_closing_failed, dispatch_uid="alerts.closing_failed"
        )
