"""DRF throttles that count anonymous clients by ``client_address`` (never by a forged header).

DRF's own ``get_ident`` takes the whole X-Forwarded-For header as the identity when NUM_PROXIES is
unset, so a client that sends a new header on each request is a new client each time. The rates
are read per request (not at import), so a test or an operator's settings change takes effect.
"""

from __future__ import annotations

from rest_framework import throttling
from rest_framework.settings import api_settings

from prudencial.api.addresses import client_address


class ScopedRateThrottle(throttling.ScopedRateThrottle):
    def get_ident(self, request) -> str:
        return client_address(request)

    def get_rate(self):
        self.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        return super().get_rate()
