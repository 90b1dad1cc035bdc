"""API of the week's trade network upload (thin: parse, call the service, shape the answer).

POST weeks/{code}/trade-network/   {"jwe", "correction"?, "part_set"?, "part_index"?,
                                    "part_count"?}            → 202   (closing.submit_trade_network)
GET  weeks/{code}/trade-network/                           → 200   (the same permission)

The list carries each upload's status (its verdict verified now), receipt, size, counts and
errors by field and row: never the envelope, never a contract.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from prudencial.api.parsers import StreamedJSONParser
from prudencial.api.throttling import ScopedRateThrottle
from prudencial.closing import trade_network
from prudencial.domain import formats
from prudencial.domain.calendar import is_week_code
from prudencial.models import Week
from prudencial.submissions.api import (
    IDEMPOTENCY_HEADER,
    REFUSAL_STATUS,
    ErrorSerializer,
    idempotency_key,
)


class CanSubmitTradeNetwork(BasePermission):
    """CCEE staff with closing.submit_trade_network (a global model permission)."""

    message = trade_network.PERMISSION

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(trade_network.PERMISSION))


class Refused(APIException):
    def __init__(self, refusal: trade_network.SubmissionRefused):
        self.status_code = (
            status.HTTP_409_CONFLICT
            if isinstance(refusal, trade_network.PartTaken)
            else REFUSAL_STATUS.get(type(refusal), status.HTTP_400_BAD_REQUEST)
        )
        super().__init__(refusal.message, code=refusal.code)


def _refused(refusal: trade_network.SubmissionRefused) -> APIException:
    if isinstance(refusal, trade_network.InvalidEnvelope) and refusal.field:
        return ValidationError({refusal.field: [refusal.message]})
    if isinstance(refusal, trade_network.Forbidden):
        return PermissionDenied(refusal.message)
    if isinstance(refusal, trade_network.NotPermitted):
        return NotFound(refusal.message)
    return Refused(refusal)


class TradeNetworkInputSerializer(serializers.Serializer):
    jwe = serializers.CharField(
        trim_whitespace=False,
        help_text="JWE compact (RSA-OAEP-256 + A256GCM, kid vigente) de prudencial/contracts/v1",
    )
    correction = serializers.BooleanField(
        default=False,
        help_text="para uma correção de semana já calculada (usada por um novo fechamento)",
    )
    part_set = serializers.RegexField(
        formats.TRADE_NETWORK_PART_SET_PATTERN,
        required=False,
        help_text="rede em partes: o id do conjunto (1 a 64 caracteres [A-Za-z0-9_-]), o mesmo "
        "do campo part.set do documento",
    )
    part_index = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=formats.MAX_TRADE_NETWORK_PARTS,
        help_text="rede em partes: o índice desta parte (1..part_count)",
    )
    part_count = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=formats.MAX_TRADE_NETWORK_PARTS,
        help_text="rede em partes: o número de partes do conjunto",
    )


class TradeNetworkPartSerializer(serializers.Serializer):
    set = serializers.CharField()
    index = serializers.IntegerField()
    count = serializers.IntegerField()


class TradeNetworkReceivedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    week = serializers.CharField()
    receipt = serializers.CharField(help_text="SHA-256 (hex) do texto do JWE")
    status = serializers.CharField()
    correction = serializers.BooleanField()
    part = TradeNetworkPartSerializer(allow_null=True)
    url = serializers.CharField()


class TradeNetworkUploadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    receipt = serializers.CharField()
    size_bytes = serializers.IntegerField()
    submitted_by = serializers.CharField()
    submitted_at = serializers.DateTimeField()
    correction = serializers.BooleanField()
    part = TradeNetworkPartSerializer(allow_null=True)
    status = serializers.CharField(
        help_text="pending, accepted, rejected, error ou unverified (assinatura não confere)"
    )
    verdict_verified = serializers.BooleanField()
    counts = serializers.DictField(child=serializers.IntegerField(allow_null=True))
    errors = ErrorSerializer(many=True)


def _week(code: str) -> Week:
    week = Week.objects.filter(code=code).first() if is_week_code(code) else None
    if week is None:
        raise NotFound()
    return week


class TradeNetworkView(APIView):
    """The week's trade network: send it encrypted (202; the enclave validates it next), or
    list what was sent with each verdict verified now."""

    permission_classes = [IsAuthenticated, CanSubmitTradeNetwork]
    parser_classes = [StreamedJSONParser]
    # The API's edge (prudencial.middleware) allows this route a larger body.
    max_body_bytes_setting = "CLOSING_TRADE_NETWORK_MAX_BODY_BYTES"
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "batches"

    def get_throttles(self):
        return super().get_throttles() if self.request.method == "POST" else []

    @extend_schema(
        request=TradeNetworkInputSerializer,
        responses={202: TradeNetworkReceivedSerializer},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request, code: str):
        key = idempotency_key(request)
        data = TradeNetworkInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            uploaded = trade_network.trade_network_submit(
                user=request.user,
                week=code,
                jwe=data.validated_data["jwe"],
                idempotency_key=key,
                correction=data.validated_data["correction"],
                part_set=data.validated_data.get("part_set"),
                part_index=data.validated_data.get("part_index"),
                part_count=data.validated_data.get("part_count"),
            )
        except trade_network.SubmissionRefused as refusal:
            raise _refused(refusal) from None
        url = reverse("api:closing-trade-network", kwargs={"code": code})
        return Response({**uploaded.response, "url": url}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=TradeNetworkUploadSerializer(many=True))
    def get(self, request, code: str):
        week = _week(code)
        rows = [
            {
                "id": upload.pk,
                "receipt": upload.receipt,
                "size_bytes": upload.size_bytes,
                "submitted_by": upload.submitted_by.get_username(),
                "submitted_at": upload.submitted_at,
                "correction": upload.correction,
                "part": trade_network.part_of(upload),
                "status": checked.status,
                "verdict_verified": checked.verified,
                "counts": {"contracts": checked.contracts},
                "errors": checked.errors or [],
            }
            for upload, checked in trade_network.uploads_for_week(week=week)
        ]
        return Response(TradeNetworkUploadSerializer(rows, many=True).data)
