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

# --- publication (public helper): no login (prudencial.closing.public)
from prudencial.closing import public as publication  # noqa: E402

urlpatterns += [
    path(
        "public/leverage/",
        publication.PublishedLeverageView.as_view(),
        name="public-leverage",
    ),
    path("public/agents/<path:cnpj>/", publication.PublicAgentView.as_view(), name="public-agent"),
    path("public/calendar/", publication.PublicCalendarView.as_view(), name="public-calendar"),
    path(
        "public/calendar.ics",
        publication.PublicCalendarIcsView.as_view(),
        name="public-calendar-ics",
    ),
]

# --- the agents' leverage results (prudencial.closing.api)
from prudencial.closing import api as leverage  # noqa: E402

urlpatterns += [
    path(
        "weeks/<str:code>/agents/<int:agent_id>/leverage/",
        leverage.LeverageView.as_view(),
        name="closing-leverage",
    ),
    path(
        "weeks/<str:code>/agents/<int:agent_id>/leverage/send/",
        leverage.LeverageSendView.as_view(),
        name="closing-leverage-send",
    ),
    path(
        "weeks/<str:code>/agents/<int:agent_id>/leverage/cancel/",
        leverage.LeverageCancelView.as_view(),
        name="closing-leverage-cancel",
    ),
    path(
        "weeks/<str:code>/agents/<int:agent_id>/network-risk/",
        leverage.NetworkRiskView.as_view(),
        name="closing-network-risk",
    ),
    path(
        "agents/<int:agent_id>/leverage/history/",
        leverage.LeverageHistoryView.as_view(),
        name="closing-leverage-history",
    ),
    path(
        "weeks/<str:code>/systemic/",
        leverage.ClosingSystemicView.as_view(),
        name="closing-systemic",
    ),
    path(
        "communities/tracking/",
        leverage.CommunityTrackingView.as_view(),
        name="closing-community-tracking",
    ),
]
