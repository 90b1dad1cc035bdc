"""The publication's API, with no login (docs/closing.md § Publicação, docs/api.md § Publicação):
the published FA list of a week, the public lookup of an agent by CNPJ and the calendar.

AllowAny with no authentication class (no session, so no CSRF and no user), throttled per client
address as ``prudencial.api.addresses`` reads it (a forged X-Forwarded-For counts for nothing).
Reads from ``public_selectors``; a result's figures only when the agent sent it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.http import HttpResponse
from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, throttling
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from prudencial.api.addresses import client_address
from prudencial.api.pagination import BoundedLimitOffsetPagination
from prudencial.closing import public_selectors
from prudencial.domain.calendar import is_week_code
from prudencial.domain.identifiers import cnpj_is_valid, format_cnpj, normalize_cnpj

PUBLIC_CACHE_CONTROL = "public, max-age=300"
#: Default rates per client address (settings PUBLIC_API_THROTTLE / PUBLIC_LOOKUP_THROTTLE).
PUBLIC_RATE = "120/minute"
LOOKUP_RATE = "30/minute"
MAX_CNPJ_CHARS = 18  # 12.345.678/0001-95
MIN_YEAR, MAX_YEAR = 2000, 2100


class PublicThrottle(throttling.SimpleRateThrottle):
    """Per client address, never per a header the client writes."""

    scope = "public"
    setting = "PUBLIC_API_THROTTLE"
    default_rate = PUBLIC_RATE

    def get_rate(self) -> str:
        return getattr(settings, self.setting, None) or self.default_rate

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}


class LookupThrottle(PublicThrottle):
    scope = "public_lookup"
    setting = "PUBLIC_LOOKUP_THROTTLE"
    default_rate = LOOKUP_RATE


class PublicView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [PublicThrottle]


def _etag(data) -> str:
    body = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _cached(request, data, etag: str | None = None):
    """``data`` with an ETag and Cache-Control, or a 304 when If-None-Match names it."""
    etag = etag or _etag(data)
    wanted = request.headers.get("If-None-Match", "")
    if any(tag.strip() in (etag, "*", f"W/{etag}") for tag in wanted.split(",")):
        response = HttpResponse(status=304)
    else:
        response = Response(data)
    response["ETag"] = etag
    response["Cache-Control"] = PUBLIC_CACHE_CONTROL
    return response


def week_param(request):
    """The published week of ``?week=``, the latest published one without it: 400 naming
    ``week`` when it is no week code, 404 when no published week has it."""
    values = request.query_params.getlist("week")
    if len(values) > 1:
        raise ValidationError({"week": [gettext("informe este parâmetro uma vez só.")]})
    if not values:
        week = public_selectors.latest_published_week()
        if week is None:
            raise NotFound(gettext("Nenhuma semana publicada."))
        return week
    if not is_week_code(values[0]):
        raise ValidationError(
            {"week": [gettext("deve ser o código de uma semana (AAAAMMNNN, ex.: 202303001).")]}
        )
    week = public_selectors.published_week(values[0])
    if week is None:
        raise NotFound(gettext("Semana não publicada ou inexistente."))
    return week


class PublishedResultSerializer(serializers.Serializer):
    acronym = serializers.CharField(source="agent.acronym")
    legal_name = serializers.CharField(source="agent.legal_name")
    cnpj = serializers.SerializerMethodField(help_text="Masked: 12.345.678/0001-95")
    agent_class = serializers.CharField(source="agent.agent_class")
    fa = serializers.FloatField(help_text="Leverage factor (FA) the agent sent")

    def get_cnpj(self, result) -> str:
        return format_cnpj(result.agent.cnpj)


class PublishedPageSerializer(serializers.Serializer):
    week = serializers.CharField()
    published = serializers.BooleanField()
    count = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = PublishedResultSerializer(many=True)


@extend_schema(
    auth=[],
    parameters=[
        OpenApiParameter("week", str, description="Week code; default the latest published."),
        OpenApiParameter("limit", int),
        OpenApiParameter("offset", int),
    ],
    responses={
        200: PublishedPageSerializer,
        304: OpenApiResponse(description="Not modified (If-None-Match)"),
    },
)
class PublishedLeverageView(PublicView):
    """The FA of every agent that sent its result in the week's current closing, once the week is
    published (deadline + CLOSING_PUBLICATION_DELAY_HOURS): acronym, legal name, CNPJ, class and
    FA, by acronym, paginated (limit/offset)."""

    def get(self, request):
        week = week_param(request)
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(public_selectors.published_results(week), request, self)
        data = {
            "week": week.code,
            "published": True,
            "count": paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": PublishedResultSerializer(page, many=True).data,
        }
        return _cached(request, data)


class PublicEventSerializer(serializers.Serializer):
    week = serializers.CharField()
    published = serializers.BooleanField()
    sent = serializers.BooleanField()
    fa = serializers.FloatField(
        allow_null=True, help_text="Only when the week is published and the agent sent it"
    )


class PublicAgentSerializer(serializers.Serializer):
    acronym = serializers.CharField()
    legal_name = serializers.CharField()
    cnpj = serializers.CharField()
    events = PublicEventSerializer(many=True)


def cnpj_or_400(raw: str) -> str:
    """The stored form of a CNPJ from the path (masked or not): 400 naming ``cnpj`` otherwise."""
    cnpj = normalize_cnpj(raw) if len(raw) <= MAX_CNPJ_CHARS else ""
    if not cnpj_is_valid(cnpj):
        raise ValidationError(
            {"cnpj": [gettext("CNPJ inválido: 14 caracteres com dígitos verificadores válidos.")]}
        )
    return cnpj


@extend_schema(
    auth=[],
    responses={
        200: PublicAgentSerializer,
    },
)
class PublicAgentView(PublicView):
    """An agent's latest weeks: for each, whether it is published and whether the agent sent its
    result; the FA only of a published, sent result. Throttled per client address."""

    throttle_classes = [LookupThrottle]

    def get(self, request, cnpj: str):
        stored = cnpj_or_400(cnpj)
        agent = public_selectors.agent_by_cnpj(stored)
        if agent is None:
            raise NotFound()
        events = public_selectors.agent_events(agent)
        data = {
            "acronym": agent.acronym,
            "legal_name": agent.legal_name,
            "cnpj": format_cnpj(agent.cnpj),
            "events": PublicEventSerializer(events, many=True).data,
        }
        return _cached(request, data)


def publication_delay() -> timedelta:
    return timedelta(hours=int(getattr(settings, "CLOSING_PUBLICATION_DELAY_HOURS", 48)))


def year_param(request) -> int:
    values = request.query_params.getlist("year")
    if not values:
        from django.utils import timezone

        return timezone.localdate().year
    value = values[0]
    if len(values) > 1 or not (value.isascii() and value.isdigit() and len(value) == 4):
        raise ValidationError(
            {"year": [gettext("deve ser um ano de %(low)s a %(high)s.") % _YEARS]}
        )
    year = int(value)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValidationError(
            {"year": [gettext("deve ser um ano de %(low)s a %(high)s.") % _YEARS]}
        )
    return year


_YEARS = {"low": MIN_YEAR, "high": MAX_YEAR}


def calendar_rows(year: int) -> list[dict]:
    delay = publication_delay()
    return [
        {
            "week": week.code,
            "operation_start": week.operation_start.isoformat(),
            "operation_end": week.operation_end.isoformat(),
            "opens_at": week.opens_at.isoformat(),
            "deadline": week.deadline.isoformat(),
            "publication": (week.deadline + delay).isoformat(),
            "status": week.status,
        }
        for week in public_selectors.calendar_weeks(year)
    ]


class CalendarWeekSerializer(serializers.Serializer):
    week = serializers.CharField()
    operation_start = serializers.DateField()
    operation_end = serializers.DateField()
    opens_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()
    publication = serializers.DateTimeField(help_text="deadline + CLOSING_PUBLICATION_DELAY_HOURS")
    status = serializers.CharField()


class CalendarSerializer(serializers.Serializer):
    year = serializers.IntegerField()
    weeks = CalendarWeekSerializer(many=True)


def _ics_time(value: str) -> str:
    from datetime import UTC, datetime

    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar_ics(year: int, rows: list[dict]) -> str:
    """The events as iCalendar (RFC 5545): opening, deadline and publication of each week."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//CCEE//Monitoramento Prudencial//PT",
        "CALSCALE:GREGORIAN",
    ]
    labels = (
        ("opens_at", "opening", gettext("Abertura")),
        ("deadline", "deadline", gettext("Término para preenchimento")),
        ("publication", "publication", gettext("Publicação")),
    )
    for row in rows:
        for key, uid, label in labels:
            stamp = _ics_time(row[key])
            lines += [
                "BEGIN:VEVENT",
                f"UID:{row['week']}-{uid}@monitoramento-prudencial",
                f"DTSTAMP:{stamp}",
                f"DTSTART:{stamp}",
                f"SUMMARY:{label} {row['week']}",
                "END:VEVENT",
            ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


YEAR_PARAMETER = OpenApiParameter("year", int, description="Default the current year.")


@extend_schema(
    auth=[],
    parameters=[YEAR_PARAMETER],
    responses={200: CalendarSerializer},
)
class PublicCalendarView(PublicView):
    """The year's weeks: opening, deadline and publication (deadline +
    CLOSING_PUBLICATION_DELAY_HOURS). The same as iCalendar at calendar.ics."""

    def get(self, request):
        year = year_param(request)
        return _cached(request, {"year": year, "weeks": calendar_rows(year)})


@extend_schema(
    auth=[],
    parameters=[YEAR_PARAMETER],
    responses={
        (200, "text/calendar"): OpenApiTypes.STR,
    },
)
class PublicCalendarIcsView(PublicView):
    """The year's events as iCalendar (RFC 5545), for a calendar application to subscribe to."""

    def get(self, request):
        year = year_param(request)
        response = HttpResponse(
            calendar_ics(year, calendar_rows(year)), content_type="text/calendar; charset=utf-8"
        )
        response["Content-Disposition"] = f'inline; filename="calendario-{year}.ics"'
        response["Cache-Control"] = PUBLIC_CACHE_CONTROL
        return response
