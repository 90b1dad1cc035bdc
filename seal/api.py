"""API of the seal (thin: parse, call a service or selector, shape the answer).

GET  seal/levels/                                   public: published levels
GET  seal/evaluations/                              the agent's users (view_agent) and staff
GET  seal/evaluations/{id}/                         items, evidence, responses, breakdown
POST seal/evaluations/{id}/responses/               {"text", "criterion"?}   agent's users
POST seal/evaluations/{id}/evidence/                multipart file + criterion   agent's users
GET  seal/evidence/{id}/file/                       the file (agent's users and staff)
GET  seal/evaluations/{id}/adherence/               the signed adherence, verified now

An evaluation the user may not see is 404. Refusals use the API's error shape.
"""

from __future__ import annotations

from datetime import UTC

from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from prudencial.api.parsers import JSONParser
from seal import selectors, services
from seal.models import (
    AdherenceStatus,
    Decision,
    Evaluation,
    EvaluationState,
    Evidence,
    EvidenceKind,
    EvidenceType,
)

REFUSAL_STATUS = {
    services.WrongState: status.HTTP_409_CONFLICT,
    services.FileTooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    services.FileTypeRefused: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    services.Invalid: status.HTTP_400_BAD_REQUEST,
}


class Refused(ValidationError):
    """A service refusal naming its field, with the status its rule takes (409, 413, 415):
    the API's error shape lists it under ``fields``."""

    def __init__(self, refusal: services.SealRefused):
        super().__init__(
            {refusal.field or "non_field_errors": [refusal.message]}, code=refusal.code
        )
        self.status_code = REFUSAL_STATUS.get(type(refusal), status.HTTP_400_BAD_REQUEST)


def _refused(refusal: services.SealRefused) -> APIException:
    if isinstance(refusal, services.NotPermitted):
        return NotFound()
    return Refused(refusal)


class LevelSerializer(serializers.Serializer):
    agent = serializers.CharField(source="agent.acronym")
    agent_name = serializers.CharField(source="agent.legal_name")
    level = serializers.IntegerField()
    cycle = serializers.CharField(source="cycle.code")
    published_at = serializers.DateTimeField()


class LevelListView(generics.ListAPIView):
    """Published seal levels (public: no sign-in). ``?cycle=`` filters by cycle code."""

    permission_classes = [AllowAny]
    serializer_class = LevelSerializer

    def get_queryset(self):
        return selectors.published_levels(cycle=self.request.query_params.get("cycle"))


# --- shapes of the answers ----------------------------------------------------------------------
# The views build plain dicts (what a reader may see) and answer them through these serializers,
# which are also what the OpenAPI schema shows. Errors are the API's shared ``Error`` component
# (prudencial.api.schema adds 400, 401, 403, 404, 413 … to every operation, 409 and 415 to writes).


def _when(**kwargs) -> serializers.DateTimeField:
    """A timestamp in UTC (``…Z``), as the stored values read."""
    return serializers.DateTimeField(default_timezone=UTC, **kwargs)


class NamedChoiceField(serializers.ChoiceField):
    """A choice field whose values are one named enum component in the schema. The evaluation's
    state and the decisions appear in several components, and other apps have fields of those
    names with other values: drf-spectacular would name the enums by a hash, and warn."""

    def __init__(self, *, enum_name: str, **kwargs):
        self.enum_name = enum_name
        super().__init__(**kwargs)


class NamedChoiceFieldExtension(OpenApiSerializerFieldExtension):
    target_class = NamedChoiceField

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        component = ResolvedComponent(
            name=field.enum_name,
            type=ResolvedComponent.SCHEMA,
            object=field.enum_name,
            schema={"type": "string", "enum": list(field.choices)},
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


def _state() -> NamedChoiceField:
    return NamedChoiceField(enum_name="SealEvaluationStateEnum", choices=EvaluationState.values)


def _decision(**kwargs) -> NamedChoiceField:
    return NamedChoiceField(enum_name="SealDecisionEnum", choices=Decision.values, **kwargs)


class EvaluationAgentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    acronym = serializers.CharField()


class EvaluationSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    agent = EvaluationAgentSerializer()
    cycle = serializers.CharField(help_text="código do ciclo")
    catalogue_version = serializers.IntegerField(help_text="versão do catálogo de critérios usada")
    state = _state()
    notified_at = _when(allow_null=True)
    response_ends_at = _when(allow_null=True, help_text="fim do prazo de resposta do agente")
    published_at = _when(allow_null=True)
    total = serializers.IntegerField(
        allow_null=True, help_text="null para o agente antes de notificada (e se não pontuada)"
    )
    level = serializers.IntegerField(allow_null=True, min_value=1, max_value=3)


class EvidenceMetadataSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="GET seal/evidence/{id}/file/ lê o arquivo")
    file_name = serializers.CharField()
    file_type = serializers.ChoiceField(
        choices=EvidenceType.values, help_text="pelo conteúdo do arquivo"
    )
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    uploaded_at = _when()


class EvaluationItemSerializer(serializers.Serializer):
    criterion = serializers.CharField(help_text="código do critério")
    line_of_action = serializers.CharField()
    measure = serializers.CharField()
    points = serializers.IntegerField(help_text="pontos da medida (negativo: penalidade)")
    mandatory = serializers.BooleanField()
    evidence_kind = serializers.ChoiceField(choices=EvidenceKind.values)
    max_units = serializers.IntegerField()
    decision = _decision(allow_null=True, help_text="null para o agente antes de notificada")
    units = serializers.IntegerField(allow_null=True)
    points_awarded = serializers.IntegerField(
        allow_null=True, help_text="pontos atribuídos, com a penalidade de obrigatória não atendida"
    )
    comment = serializers.CharField(allow_blank=True)
    derived = serializers.DictField(
        help_text="figura derivada dos registros da plataforma, com os ids de origem ({} se não há)"
    )
    evidence = EvidenceMetadataSerializer(many=True)


class EvaluationResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    criterion = serializers.CharField(allow_null=True)
    author = serializers.CharField()
    text = serializers.CharField()
    created_at = _when()


class ScoreBreakdownRowSerializer(serializers.Serializer):
    code = serializers.CharField()
    decision = _decision()
    points = serializers.IntegerField()
    units = serializers.IntegerField()
    awarded = serializers.IntegerField()
    penalty = serializers.IntegerField()
    note = serializers.CharField(
        allow_blank=True,
        help_text="pending, no_data, missed_mandatory, superseded_by:<code> ou implied_by:<code>",
    )
    implied_by = serializers.CharField(
        required=False,
        help_text="obrigatória atendida por uma medida superior do grupo, alcançada (o código)",
    )
    item = serializers.IntegerField(required=False)
    evidence = serializers.ListField(child=serializers.IntegerField(), required=False)
    derived_from = serializers.DictField(required=False, help_text="ids dos registros de origem")


class ScoreBreakdownSerializer(serializers.Serializer):
    """The stored breakdown; ``{}`` for the agent before notification or when never scored."""

    total = serializers.IntegerField(required=False)
    level = serializers.IntegerField(required=False)
    points = serializers.IntegerField(required=False)
    penalties = serializers.IntegerField(required=False)
    missed_mandatory = serializers.ListField(child=serializers.CharField(), required=False)
    missed_mandatory_points = serializers.IntegerField(required=False)
    complete = serializers.BooleanField(required=False)
    cutoffs = serializers.DictField(
        child=serializers.IntegerField(), required=False, help_text="nível → total mínimo"
    )
    items = ScoreBreakdownRowSerializer(many=True, required=False)
    catalogue_version = serializers.IntegerField(required=False)


class EvaluationDetailSerializer(EvaluationSummarySerializer):
    items = EvaluationItemSerializer(many=True)
    breakdown = ScoreBreakdownSerializer()
    responses = EvaluationResponseSerializer(many=True)


class ResponseCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = _when()


class EvidenceCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    file_type = serializers.ChoiceField(choices=EvidenceType.values)
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()


class AdherenceSerializer(serializers.Serializer):
    """Not computed yet: only ``computed`` (false) and ``status`` (null); the rest is absent."""

    computed = serializers.BooleanField()
    status = serializers.ChoiceField(
        choices=[*AdherenceStatus.values, selectors.UNVERIFIED],
        allow_null=True,
        help_text="null quando ainda não calculada; unverified: a assinatura não confere agora",
    )
    verified = serializers.BooleanField(required=False)
    margin = serializers.FloatField(
        required=False, allow_null=True, help_text="limit − perda sob estresse / PLA"
    )
    limit = serializers.FloatField(required=False, allow_null=True, help_text="fração do PLA")
    worst_scenario = serializers.CharField(required=False, allow_null=True)
    week = serializers.CharField(required=False)
    submission = serializers.IntegerField(required=False)
    computed_at = _when(required=False)

    def to_representation(self, instance):
        # Keys the answer does not have stay absent (not null).
        return {k: v for k, v in super().to_representation(instance).items() if k in instance}


def _evaluation(request, pk: int) -> Evaluation:
    return selectors.evaluation_list(user=request.user).get(pk=pk)


def evaluation_data(evaluation: Evaluation, user, *, detail: bool) -> dict:
    """An evaluation as its reader may see it (decisions only once notified, for agents)."""
    visible = selectors.decisions_visible(evaluation, user)
    data = {
        "id": evaluation.pk,
        "agent": {"id": evaluation.agent_id, "acronym": evaluation.agent.acronym},
        "cycle": evaluation.cycle.code,
        "catalogue_version": evaluation.catalogue_version.number,
        "state": evaluation.state,
        "notified_at": evaluation.notified_at,
        "response_ends_at": evaluation.response_ends_at,
        "published_at": evaluation.published_at,
        "total": evaluation.total if visible else None,
        "level": evaluation.level if visible else None,
    }
    if not detail:
        return data
    items = evaluation.items.select_related("criterion").prefetch_related(
        Prefetch("evidence", queryset=Evidence.objects.defer("content"))
    )
    data["items"] = [_item(i, visible) for i in items]
    data["breakdown"] = evaluation.breakdown if visible else {}
    data["responses"] = [
        {
            "id": r.pk,
            "criterion": r.item.criterion.code if r.item_id else None,
            "author": r.author.username,
            "text": r.text,
            "created_at": r.created_at,
        }
        for r in evaluation.responses.select_related("item__criterion", "author")
    ]
    return data


def _item(i, visible: bool) -> dict:
    return {
        "criterion": i.criterion.code,
        "line_of_action": i.criterion.line_of_action,
        "measure": i.criterion.measure,
        "points": i.criterion.points,
        "mandatory": i.criterion.mandatory,
        "evidence_kind": i.criterion.evidence_kind,
        "max_units": i.criterion.max_units,
        "decision": i.decision if visible else None,
        "units": i.units if visible else None,
        "points_awarded": i.points_awarded if visible else None,
        "comment": i.comment if visible else "",
        "derived": i.derived if visible else {},
        "evidence": [
            {
                "id": e.pk,
                "file_name": e.file_name,
                "file_type": e.file_type,
                "size_bytes": e.size_bytes,
                "sha256": e.sha256,
                "uploaded_at": e.uploaded_at,
            }
            for e in i.evidence.all()
        ],
    }


EVIDENCE_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class EvaluationListView(APIView):
    """Your agents' seal evaluations (every evaluation for CCEE staff)."""

    @extend_schema(
        operation_id="seal_evaluations_list",
        responses={200: EvaluationSummarySerializer(many=True)},
    )
    def get(self, request):
        rows = selectors.evaluation_list(user=request.user).order_by("-cycle__starts_on", "pk")
        data = [evaluation_data(e, request.user, detail=False) for e in rows[:1000]]
        return Response(EvaluationSummarySerializer(data, many=True).data)


class EvaluationDetailView(APIView):
    """One evaluation: criteria, decisions (once notified), evidence, answers, breakdown."""

    @extend_schema(responses={200: EvaluationDetailSerializer})
    def get(self, request, pk: int):
        data = evaluation_data(_evaluation(request, pk), request.user, detail=True)
        return Response(EvaluationDetailSerializer(data).data)


class ResponseInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=services.RESPONSE_MAX_CHARS, trim_whitespace=True)
    criterion = serializers.CharField(max_length=40, required=False, allow_blank=True)


class ResponseCreateView(APIView):
    """Answer your agent's evaluation during the response period (201)."""

    parser_classes = [JSONParser]

    @extend_schema(request=ResponseInputSerializer, responses={201: ResponseCreatedSerializer})
    def post(self, request, pk: int):
        data = ResponseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            response = services.response_create(
                user=request.user,
                evaluation_id=pk,
                text=data.validated_data["text"],
                criterion=data.validated_data.get("criterion") or None,
            )
        except services.SealRefused as refusal:
            raise _refused(refusal) from None
        return Response(
            ResponseCreatedSerializer({"id": response.pk, "created_at": response.created_at}).data,
            status=status.HTTP_201_CREATED,
        )


class EvidenceInputSerializer(serializers.Serializer):
    criterion = serializers.CharField(max_length=40)
    file = serializers.FileField(allow_empty_file=True)


class EvidenceCreateView(APIView):
    """Upload a PDF or XLSX for one criterion (201): its type is checked from its content."""

    parser_classes = [MultiPartParser]

    @extend_schema(request=EvidenceInputSerializer, responses={201: EvidenceCreatedSerializer})
    def post(self, request, pk: int):
        data = EvidenceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        try:
            evidence = services.evidence_upload(
                user=request.user,
                evaluation_id=pk,
                criterion=data.validated_data["criterion"],
                file_name=upload.name or "",
                content=upload.read(),
            )
        except services.SealRefused as refusal:
            raise _refused(refusal) from None
        return Response(
            EvidenceCreatedSerializer(
                {
                    "id": evidence.pk,
                    "file_type": evidence.file_type,
                    "size_bytes": evidence.size_bytes,
                    "sha256": evidence.sha256,
                }
            ).data,
            status=status.HTTP_201_CREATED,
        )


class EvidenceFileView(APIView):
    """The evidence file itself (the agent's users and staff)."""

    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            (200, EVIDENCE_XLSX): OpenApiTypes.BINARY,
        }
    )
    def get(self, request, pk: int):
        evidence = selectors.evidence_get(user=request.user, evidence_id=pk)
        content_type = {
            "pdf": "application/pdf",
            "xlsx": EVIDENCE_XLSX,
        }[evidence.file_type]
        response = HttpResponse(bytes(evidence.content), content_type=content_type)
        response["Content-Disposition"] = (
            f'attachment; filename="evidence-{evidence.pk}.{evidence.file_type}"'
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response


class AdherenceView(APIView):
    """The agent's risk adherence (adherent / not adherent, margin as a fraction of PLA), its
    enclave signature verified now. Only the agent's own users and staff."""

    @extend_schema(responses={200: AdherenceSerializer})
    def get(self, request, pk: int):
        evaluation = _evaluation(request, pk)
        checked = selectors.adherence_for(evaluation)
        if checked is None:
            return Response(AdherenceSerializer({"status": None, "computed": False}).data)
        return Response(
            AdherenceSerializer(
                {
                    "computed": True,
                    "status": checked.status,
                    "verified": checked.verified,
                    "margin": checked.margin,
                    "limit": checked.limit,
                    "worst_scenario": checked.worst_scenario,
                    "week": checked.week,
                    "submission": checked.submission,
                    "computed_at": checked.computed_at,
                }
            ).data
        )
