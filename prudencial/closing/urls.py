"""API routes of this app (mounted under /api/v1/ by prudencial.api.urls)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []

# --- the week's trade network upload (admin-export helper; prudencial.closing.api_trade_network)
from prudencial.closing import api_trade_network  # noqa: E402

urlpatterns += [
    path(
        "weeks/<str:code>/trade-network/",
        api_trade_network.TradeNetworkView.as_view(),
        name="closing-trade-network",
    ),
]
