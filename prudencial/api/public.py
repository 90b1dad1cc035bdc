"""What every agent's developer and the counterparties screen read: the published JSON Schemas
of the payloads, the week's XLSX templates and the public registry lookup.

Thin views: the schemas come from ``prudencial.domain.formats`` (the enclave compiles the same
dicts), the templates from ``prudencial.submissions.templates_xlsx`` (laid out by
``prudencial.domain.sheets``, which the enclave parses with), the lookup from
``prudencial.selectors.registry_lookup``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from functools import lru_cache

from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, throttling
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from prudencial import selectors
from prudencial.api.addresses import client_address
from prudencial.domain import formats
from prudencial.domain.calendar import is_week_code
from prudencial.submissions import templates_xlsx

SCHEMA_CONTENT_TYPE = "application/schema+json"
SCHEMA_CACHE_CONTROL = "private, max-age=3600"
WEEK_SCHEMA_CACHE_CONTROL = "private, max-age=300"
#: Default rate of the registry lookup per signed-in user (DEFAULT_THROTTLE_RATES
#: "registry_lookup" overrides it).
REGISTRY_LOOKUP_RATE = "60/minute"


class Conflict(APIException):
    status_code = 409
    default_code = "conflict"


class TooManyAgents(APIException):
    status_code = 400
    default_code = "too_many_agents"


@lru_cache(maxsize=64)
def schema_document(kind: str, energy_types: tuple[str, ...]) -> tuple[bytes, str]:
    """The published schema's bytes (indented, UTF-8) and their ETag."""
    body = json.dumps(
        formats.json_schema(kind, energy_types), ensure_ascii=False, indent=2, sort_keys=False
    ).encode("utf-8")
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def week_or_404(code: str):
    """The week of a code; 404 for an unknown week and for what is no week code at all (checked
    before the database sees it: a NUL byte would be a 500 on PostgreSQL)."""
    if not is_week_code(code):
        raise NotFound()
    return get_object_or_404(selectors.week_list(), code=code)


def _etag_matches(request, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, "*", f"W/{etag}") for tag in wanted.split(","))


@extend_schema(
    parameters=[
        OpenApiParameter(
            "week",
            str,
            description="Week code: the schema with that week's energy types.",
        )
    ],
    responses={
        (200, SCHEMA_CONTENT_TYPE): OpenApiTypes.OBJECT,
        304: OpenApiResponse(description="Not modified (If-None-Match)"),
    },
)
class PayloadSchemaView(APIView):
    """The JSON Schema (draft 2020-12, ``$id`` …/v2, with an example payload) of a portfolio or
    counterparties payload, as the enclave validates it, for signed-in users (like every API
    operation but the token's): with the documented default energy types, or ``?week=CODE``
    with that week's. Cacheable by the client: ETag and Cache-Control, 304 on If-None-Match."""

    kind = ""

    def get(self, request):
        types = formats.DEFAULT_ENERGY_TYPES
        cache_control = SCHEMA_CACHE_CONTROL
        code = request.query_params.get("week")
        if code is not None:
            week = week_or_404(code)
            parameters = getattr(week, "parameters", None)
            if parameters is None:
                raise Conflict(
                    gettext("A semana %(code)s ainda não tem parâmetros.") % {"code": code}
                )
            types = tuple(parameters.energy_types)
            cache_control = WEEK_SCHEMA_CACHE_CONTROL
        body, etag = schema_document(self.kind, tuple(types))
        if _etag_matches(request, etag):
            response = HttpResponse(status=304)
        else:
            response = HttpResponse(body, content_type=SCHEMA_CONTENT_TYPE)
        response["ETag"] = etag
        response["Cache-Control"] = cache_control
        return response


class PortfolioSchemaView(PayloadSchemaView):
    kind = "portfolio"


class CounterpartiesSchemaView(PayloadSchemaView):
    kind = "counterparties"


class TemplateQuerySerializer(serializers.Serializer):
    agent = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**31 - 1),
        required=False,
        max_length=templates_xlsx.DEFAULT_MAX_AGENTS,
        help_text="Only these agents (ids; repeatable). Default: every agent you may submit for.",
    )


@extend_schema(
    parameters=[
        OpenApiParameter(
            "agent",
            int,
            many=True,
            description="Only these agents (ids, repeatable); default every agent you may "
            "submit for.",
        )
    ],
    responses={(200, templates_xlsx.XLSX_CONTENT_TYPE): OpenApiTypes.BINARY},
)
class TemplateView(APIView):
    """The week's XLSX template for the agents the caller may submit for: the week's months and
    energy types as lists, headers locked, an Instruções sheet (pt-BR) with the deadline. Fill it
    and send it encrypted as a batch; the enclave parses it into the API's JSON payloads.
    404 unknown week (or an ``agent`` you may not submit for), 409 week without parameters,
    400 more agents than one file covers (choose them with ``agent``)."""

    kind = ""

    def get(self, request, code: str):
        week = week_or_404(code)
        chosen = request.query_params.getlist("agent")
        query = TemplateQuerySerializer(data={"agent": chosen} if chosen else {})
        query.is_valid(raise_exception=True)
        ids = query.validated_data.get("agent")
        try:
            template_week = templates_xlsx.TemplateWeek.of(week)
        except templates_xlsx.TemplateUnavailable:
            raise Conflict(
                gettext("A semana %(code)s ainda não tem parâmetros: o modelo não está disponível.")
                % {"code": code}
            ) from None
        agents = templates_xlsx.template_agents(user=request.user, week=week, ids=ids)
        if ids is not None and agents.count() != len(set(ids)):
            raise NotFound()  # an agent the caller may not submit for: never say it exists
        limit = templates_xlsx.max_agents()
        rows = list(agents.values("acronym", "cnpj")[: limit + 1])
        if len(rows) > limit:
            raise TooManyAgents(
                gettext(
                    "Você pode enviar dados por %(count)s agentes; um modelo cobre no máximo "
                    "%(limit)s. Escolha os agentes com ?agent=<id>&agent=<id>."
                )
                % {"count": agents.count(), "limit": limit}
            )
        # FileResponse closes it once sent.
        out = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024)  # noqa: SIM115
        templates_xlsx.write_template(self.kind, week=template_week, agents=rows, out=out)
        out.seek(0)
        response = FileResponse(
            out,
            as_attachment=True,
            filename=f"{week.code}_{self.kind}.xlsx",
            content_type=templates_xlsx.XLSX_CONTENT_TYPE,
        )
        response["Cache-Control"] = "private, no-store"
        return response


class PortfolioTemplateView(TemplateView):
    kind = "portfolio"


class CounterpartiesTemplateView(TemplateView):
    kind = "counterparties"


class RegistryLookupThrottle(throttling.UserRateThrottle):
    """Per signed-in user (per client address otherwise, never by a forged header); the rate
    is DEFAULT_THROTTLE_RATES["registry_lookup"] when set, REGISTRY_LOOKUP_RATE otherwise."""

    scope = "registry_lookup"

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or REGISTRY_LOOKUP_RATE

    def get_ident(self, request) -> str:
        return client_address(request)


class RegistryLookupInputSerializer(serializers.Serializer):
    q = serializers.CharField(
        min_length=selectors.REGISTRY_LOOKUP_MIN_CHARS,
        max_length=selectors.REGISTRY_LOOKUP_MAX_CHARS,
        trim_whitespace=True,
        help_text="Acronym prefix, CNPJ prefix (digits or masked) or part of the legal name.",
        # DRF formats {min_length} lazily, in the language of the request.
        error_messages={"min_length": _("Digite ao menos {min_length} caracteres.")},
    )


class RegistryEntryOutputSerializer(serializers.Serializer):
    acronym = serializers.CharField()
    cnpj = serializers.CharField(help_text="14 characters, unmasked")
    legal_name = serializers.CharField()


@extend_schema(
    parameters=[RegistryLookupInputSerializer],
    responses=RegistryEntryOutputSerializer(many=True),
)
class RegistryLookupView(APIView):
    """Search CCEE's public list of agents (acronym, CNPJ, legal name of the active registered
    agents) by acronym prefix, CNPJ prefix or part of the legal name: at least 2 characters,
    at most 20 results, best matches first. For the counterparties screen; throttled per user."""

    throttle_classes = [RegistryLookupThrottle]

    def get(self, request):
        query = RegistryLookupInputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = selectors.registry_lookup(q=query.validated_data["q"])
        return Response(RegistryEntryOutputSerializer(rows, many=True).data)
