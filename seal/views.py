"""Public pages of the seal: the published levels (no sign-in)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from seal import selectors
from seal.models import Cycle

PAGE_ROWS = 2_000


def levels(request: HttpRequest) -> HttpResponse:
    """Published levels, optionally of one cycle (``?cycle=``)."""
    cycle = (request.GET.get("cycle") or "")[:20]
    rows = selectors.published_levels(cycle=cycle or None)[:PAGE_ROWS]
    cycles = (
        Cycle.objects.filter(evaluations__state="published")
        .distinct()
        .values_list("code", flat=True)
    )
    return render(
        request, "seal/levels.html", {"levels": rows, "cycles": list(cycles), "cycle": cycle}
    )
