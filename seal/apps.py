from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SealConfig(AppConfig):
    """Trust seal (selo de confiança): governance criteria, evaluations and levels."""

    name = "seal"
    verbose_name = _("Selo de confiança")
