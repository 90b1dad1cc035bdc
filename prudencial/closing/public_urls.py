"""Public pages (no login) and the agents' web pages of the closing, mounted at / by config.urls."""

from django.urls import path

urlpatterns: list = []

# --- publication (public helper): no login (prudencial.closing.public_views)
from prudencial.closing import public_views  # noqa: E402

urlpatterns += [
    path("publicacao/", public_views.published_list, name="public-leverage-page"),
    path("publicacao/consulta/", public_views.lookup, name="public-lookup-page"),
    path("publicacao/calendario/", public_views.calendar, name="public-calendar-page"),
]
