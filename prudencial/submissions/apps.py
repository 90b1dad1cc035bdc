from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubmissionsConfig(AppConfig):
    """Encrypted submissions (never plaintext), their verdicts and batches."""

    name = "prudencial.submissions"
    label = "submissions"
    verbose_name = _("Envios de dados")
    default_auto_field = "django.db.models.BigAutoField"
