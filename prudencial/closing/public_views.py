"""The publication's web pages, with no login (Portuguese by default, English via the language
selector or Accept-Language): the week's published FA list, the CNPJ lookup and the calendar.
Reads from ``public_selectors``: the same rule as the public API (docs/closing.md § Publication).
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from prudencial.closing import public_selectors
from prudencial.closing.public import (
    MAX_CNPJ_CHARS,
    MAX_YEAR,
    MIN_YEAR,
    LookupThrottle,
    publication_delay,
)
from prudencial.domain.calendar import is_week_code
from prudencial.domain.identifiers import cnpj_is_valid, format_cnpj, normalize_cnpj

PAGE_ROWS = 100
WEEK_CHOICES = 104  # two years of weekly events in the selector


def published_list(request: HttpRequest) -> HttpResponse:
    """The published FA of a week (``?week=``; the latest published week by default)."""
    code = request.GET.get("week", "")
    if code:
        week = public_selectors.published_week(code) if is_week_code(code) else None
        if week is None:
            raise Http404(_("Semana não publicada ou inexistente."))
    else:
        week = public_selectors.latest_published_week()
    page = None
    if week is not None:
        paginator = Paginator(public_selectors.published_results(week), PAGE_ROWS)
        page = paginator.get_page(request.GET.get("page"))
        for result in page.object_list:
            result.cnpj_masked = format_cnpj(result.agent.cnpj)
    weeks = list(public_selectors.published_weeks().values_list("code", flat=True)[:WEEK_CHOICES])
    return render(
        request,
        "closing/public_leverage.html",
        {"week": week, "page": page, "weeks": weeks},
    )


def lookup(request: HttpRequest) -> HttpResponse:
    """An agent's latest weeks by CNPJ (``?cnpj=``): sent or not, the FA once published."""
    raw = request.GET.get("cnpj", "")
    context: dict = {"cnpj": raw[:MAX_CNPJ_CHARS], "agent": None, "events": [], "error": ""}
    status = 200
    # The API's throttle and counter, per client address: the page is no way around it.
    if raw and not LookupThrottle().allow_request(request, None):
        context["error"] = _("Muitas consultas deste endereço; tente de novo em um minuto.")
        return render(request, "closing/public_lookup.html", context, status=429)
    if raw:
        cnpj = normalize_cnpj(raw) if len(raw) <= MAX_CNPJ_CHARS else ""
        if not cnpj_is_valid(cnpj):
            context["error"] = _("CNPJ inválido: 14 caracteres com dígitos verificadores válidos.")
            status = 400
        else:
            agent = public_selectors.agent_by_cnpj(cnpj)
            if agent is None:
                context["error"] = _("Nenhum agente com este CNPJ.")
                status = 404
            else:
                context["agent"] = agent
                context["agent_cnpj"] = format_cnpj(agent.cnpj)
                context["events"] = public_selectors.agent_events(agent)
    return render(request, "closing/public_lookup.html", context, status=status)


def calendar(request: HttpRequest) -> HttpResponse:
    """The year's weeks with opening, deadline and publication (``?year=``)."""
    raw = request.GET.get("year", "")
    year = timezone.localdate().year
    if raw:
        if not (
            raw.isascii() and raw.isdigit() and len(raw) == 4 and MIN_YEAR <= int(raw) <= MAX_YEAR
        ):
            raise Http404(_("Ano fora do calendário."))
        year = int(raw)
    delay = publication_delay()
    weeks = [
        {"week": w, "publication": w.deadline + delay}
        for w in public_selectors.calendar_weeks(year)
    ]
    return render(request, "closing/public_calendar.html", {"year": year, "weeks": weeks})
