from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EnclaveBridgeConfig(AppConfig):
    """Host side of the enclave: key registry, sealed keys, transport and result checks."""

    name = "enclave_bridge"
    verbose_name = _("Enclave")
