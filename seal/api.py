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

from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.plumbing import build_array_type, build_basic_type
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
from seal.models import Evaluation, Evidence

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
        responses={200: build_array_type(build_basic_type(OpenApiTypes.OBJECT))},
    )
    def get(self, request):
        rows = selectors.evaluation_list(user=request.user).order_by("-cycle__starts_on", "pk")
        return Response([evaluation_data(e, request.user, detail=False) for e in rows[:1000]])


class EvaluationDetailView(APIView):
    """One evaluation: criteria, decisions (once notified), evidence, answers, breakdown."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        return Response(evaluation_data(_evaluation(request, pk), request.user, detail=True))


class ResponseInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=services.RESPONSE_MAX_CHARS, trim_whitespace=True)
    criterion = serializers.CharField(max_length=40, required=False, allow_blank=True)


class ResponseCreateView(APIView):
    """Answer your agent's evaluation during the response period (201)."""

    parser_classes = [JSONParser]

    @extend_schema(request=ResponseInputSerializer, responses={201: OpenApiTypes.OBJECT})
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
            {"id": response.pk, "created_at": response.created_at}, status=status.HTTP_201_CREATED
        )


class EvidenceInputSerializer(serializers.Serializer):
    criterion = serializers.CharField(max_length=40)
    file = serializers.FileField(allow_empty_file=True)


class EvidenceCreateView(APIView):
    """Upload a PDF or XLSX for one criterion (201): its type is checked from its content."""

    parser_classes = [MultiPartParser]

    @extend_schema(request=EvidenceInputSerializer, responses={201: OpenApiTypes.OBJECT})
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
            {
                "id": evidence.pk,
                "file_type": evidence.file_type,
                "size_bytes": evidence.size_bytes,
                "sha256": evidence.sha256,
            },
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

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        evaluation = _evaluation(request, pk)
        checked = selectors.adherence_for(evaluation)
        if checked is None:
            return Response({"status": None, "computed": False})
        return Response(
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
        )
