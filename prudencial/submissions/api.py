"""API of the submissions (thin: parse, call a service or a selector, shape the answer).

POST weeks/{code}/agents/{agent_id}/portfolio/       {"jwe"}            → 202
POST weeks/{code}/agents/{agent_id}/counterparties/  {"jwe"}            → 202
POST weeks/{code}/batch/                             {"jwe", "agents"}  → 202
GET  weeks/{code}/agents/{agent_id}/submissions/
GET  batches/{id}/
GET  weeks/{code}/progress/

An optional ``Idempotency-Key`` header makes a retried POST answer what the first answered.
Refusals use the API's error shape (prudencial.api.errors); the status of each rule is in
``REFUSAL_STATUS``.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from prudencial.api.parsers import StreamedJSONParser
from prudencial.api.throttling import ScopedRateThrottle
from prudencial.domain.calendar import is_week_code
from prudencial.models import Week
from prudencial.submissions import selectors, services
from prudencial.submissions.models import Kind

IDEMPOTENCY_KEY_MAX = 200

REFUSAL_STATUS = {
    services.TooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    services.WeekNotOpen: status.HTTP_409_CONFLICT,
    services.NoCadenceEvent: status.HTTP_409_CONFLICT,
    services.NotPermitted: status.HTTP_404_NOT_FOUND,
    services.IdempotencyConflict: status.HTTP_422_UNPROCESSABLE_ENTITY,
    services.TooManyBatches: status.HTTP_429_TOO_MANY_REQUESTS,
}


class Refused(APIException):
    def __init__(self, refusal: services.SubmissionRefused):
        self.status_code = REFUSAL_STATUS.get(type(refusal), status.HTTP_400_BAD_REQUEST)
        super().__init__(refusal.message, code=refusal.code)


def _refused(refusal: services.SubmissionRefused) -> APIException:
    if isinstance(refusal, services.InvalidEnvelope) and refusal.field:
        return ValidationError({refusal.field: [refusal.message]})
    if isinstance(refusal, services.NotPermitted):
        return NotFound()
    return Refused(refusal)


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=str(
        _(
            "Chave única por envio (até 200 caracteres ASCII visíveis): repetir a requisição "
            "com a mesma chave não cria outra versão; a mesma chave com outro corpo dá 422."
        )
    ),
)


def idempotency_key(request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not (0 < len(key) <= IDEMPOTENCY_KEY_MAX) or not key.isascii() or not key.isprintable():
        raise ValidationError(
            {
                "Idempotency-Key": [
                    gettext("A Idempotency-Key deve ter de 1 a %(max)s caracteres ASCII visíveis.")
                    % {"max": IDEMPOTENCY_KEY_MAX}
                ]
            }
        )
    return key


class EnvelopeInputSerializer(serializers.Serializer):
    jwe = serializers.CharField(
        trim_whitespace=False, help_text="JWE compact (RSA-OAEP-256 + A256GCM, kid vigente)"
    )


class BatchInputSerializer(EnvelopeInputSerializer):
    agents = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        allow_empty=False,
        help_text="ids dos agentes que o arquivo cobre",
    )


class ReceivedOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    receipt = serializers.CharField(help_text="SHA-256 (hex) do texto do JWE")
    status = serializers.CharField()
    version = serializers.IntegerField(required=False)
    url = serializers.CharField()


class SubmissionCreateView(APIView):
    """Send one agent's encrypted portfolio or counterparties for a week (202: the enclave
    validates it next; follow it in the agent's submissions)."""

    kind: str = Kind.PORTFOLIO
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "submissions"  # per user; REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]

    @extend_schema(
        request=EnvelopeInputSerializer,
        responses={202: ReceivedOutputSerializer},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request, code: str, agent_id: int):
        key = idempotency_key(request)
        data = EnvelopeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            received = services.submit_envelope(
                user=request.user,
                week=code,
                agent_id=agent_id,
                kind=self.kind,
                jwe=data.validated_data["jwe"],
                idempotency_key=key,
            )
        except services.SubmissionRefused as refusal:
            raise _refused(refusal) from None
        url = reverse("api:submission-list", kwargs={"code": code, "agent_id": agent_id})
        return Response({**received.response, "url": url}, status=status.HTTP_202_ACCEPTED)


class PortfolioCreateView(SubmissionCreateView):
    kind = Kind.PORTFOLIO


class CounterpartiesCreateView(SubmissionCreateView):
    kind = Kind.COUNTERPARTIES


class BatchCreateView(APIView):
    """Send one encrypted file (JSON batch or the XLSX template) covering many agents (202).
    Every listed agent must be one you may submit for, or nothing is stored."""

    # The API's edge (prudencial.middleware) allows this route a larger body, read as a stream
    # (Django would refuse request.body past DATA_UPLOAD_MAX_MEMORY_SIZE).
    max_body_bytes_setting = "PRUDENCIAL_BATCH_MAX_BODY_BYTES"
    parser_classes = [StreamedJSONParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "batches"  # per user; and PRUDENCIAL_BATCH_MAX_PER_WEEK a week

    @extend_schema(
        request=BatchInputSerializer,
        responses={202: ReceivedOutputSerializer},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request, code: str):
        key = idempotency_key(request)
        data = BatchInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            received = services.submit_batch(
                user=request.user,
                week=code,
                agent_ids=data.validated_data["agents"],
                jwe=data.validated_data["jwe"],
                idempotency_key=key,
            )
        except services.SubmissionRefused as refusal:
            raise _refused(refusal) from None
        url = reverse("api:batch-detail", kwargs={"pk": received.response["id"]})
        return Response({**received.response, "url": url}, status=status.HTTP_202_ACCEPTED)


class ErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True)
    row = serializers.IntegerField(allow_null=True)
    rule = serializers.CharField(allow_null=True)


class SubmissionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="submission.pk")
    kind = serializers.CharField(source="submission.kind")
    version = serializers.IntegerField(source="submission.version")
    channel = serializers.CharField(source="submission.channel")
    submitted_by = serializers.CharField(source="submission.submitted_by.username")
    submitted_at = serializers.DateTimeField(source="submission.submitted_at")
    size_bytes = serializers.IntegerField(source="submission.size_bytes")
    receipt = serializers.CharField(source="submission.receipt")
    status = serializers.CharField(
        source="verdict.status", help_text="received, accepted, rejected, error or unverified"
    )
    errors = ErrorSerializer(source="verdict.errors", many=True)
    verdict_verified = serializers.BooleanField(source="verdict.verified")
    batch = serializers.IntegerField(source="submission.batch_id", allow_null=True)
    is_current = serializers.BooleanField()


class SubmissionListView(APIView):
    """An agent's submissions in a week, latest version first, each verdict verified now."""

    @extend_schema(responses=SubmissionOutputSerializer(many=True))
    def get(self, request, code: str, agent_id: int):
        rows = selectors.agent_submissions(user=request.user, week_code=code, agent_id=agent_id)
        return Response(SubmissionOutputSerializer(rows, many=True).data)


class BatchOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    week = serializers.CharField()
    status = serializers.CharField()
    receipt = serializers.CharField()
    size_bytes = serializers.IntegerField()
    submitted_at = serializers.DateTimeField()
    processed_at = serializers.DateTimeField(allow_null=True)
    file_format = serializers.CharField()
    agents = serializers.ListField(child=serializers.DictField())
    counts = serializers.DictField(child=serializers.IntegerField())
    errors = ErrorSerializer(many=True)
    submissions = serializers.ListField(child=serializers.DictField())


class BatchDetailView(APIView):
    """A batch's state: its agents, the submissions it made (with verified verdicts), the
    file-level errors."""

    @extend_schema(responses=BatchOutputSerializer)
    def get(self, request, pk: int):
        batch = selectors.batch_for(user=request.user, batch_id=pk)
        rows = selectors.checked_submissions(batch.submissions.all())
        counts = {"submissions": len(rows)}
        for row in rows:
            counts[row.verdict.status] = counts.get(row.verdict.status, 0) + 1
        data = {
            "id": batch.pk,
            "week": batch.week.code,
            "status": batch.status,
            "receipt": batch.receipt,
            "size_bytes": batch.size_bytes,
            "submitted_at": batch.submitted_at,
            "processed_at": batch.processed_at,
            "file_format": batch.file_format,
            "agents": [{"id": a.pk, "acronym": a.acronym} for a in batch.agents.all()],
            "counts": counts,
            "errors": batch.errors,
            "submissions": [
                {
                    "id": r.submission.pk,
                    "agent": r.submission.agent_id,
                    "kind": r.submission.kind,
                    "version": r.submission.version,
                    "status": r.verdict.status,
                    "errors": r.verdict.errors,
                }
                for r in rows
            ],
        }
        return Response(BatchOutputSerializer(data).data)


class KindProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()


class AgentKindStateSerializer(serializers.Serializer):
    status = serializers.CharField()
    receipt = serializers.CharField()
    submitted_at = serializers.DateTimeField()


class AgentProgressSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    acronym = serializers.CharField()
    portfolio = AgentKindStateSerializer(allow_null=True)
    counterparties = AgentKindStateSerializer(allow_null=True)


class ProgressOutputSerializer(serializers.Serializer):
    week = serializers.CharField()
    deadline = serializers.DateTimeField()
    eligible = serializers.IntegerField()
    portfolio = KindProgressSerializer()
    counterparties = KindProgressSerializer()
    agents = AgentProgressSerializer(many=True)


class ProgressView(APIView):
    """The week's progress over your eligible agents (every eligible agent for CCEE staff)."""

    @extend_schema(responses=ProgressOutputSerializer)
    def get(self, request, code: str):
        if not is_week_code(code):
            raise Week.DoesNotExist(code)
        week = Week.objects.get(code=code)
        staff = request.user.is_superuser or request.user.has_perm("submissions.view_submission")
        data = selectors.progress(week=week, user=None if staff else request.user)
        return Response(ProgressOutputSerializer(data).data)
