"""API of the agents' leverage results (thin: read through selectors, decide through decisions).

GET  weeks/{code}/agents/{agent_id}/leverage/          the result, its signature, its decision
POST weeks/{code}/agents/{agent_id}/leverage/send/     send it to CCEE (final, idempotent)
POST weeks/{code}/agents/{agent_id}/leverage/cancel/   cancel it, with a reason
GET  weeks/{code}/agents/{agent_id}/network-risk/      local and global network indicators
GET  agents/{agent_id}/leverage/history/               FA week by week, with parameters' version
GET  weeks/{code}/systemic/                            staff: the week's systemic measures
GET  communities/tracking/?weeks=&until=&agent=        staff: the communities across weeks

The agent's own users see every figure and the breakdown (a JWE only their reply key opens);
CCEE staff with ``closing.view_leverageresult`` see that a result exists, and its figures only
once the agent sent it. Anyone else gets 404, as for a result that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from prudencial.closing import decisions, exports, selectors
from prudencial.closing.models import LeverageResult
from prudencial.closing.signatures import SignatureChecker
from prudencial.domain.calendar import is_week_code

# --- shapes --------------------------------------------------------------------------------------


class SignatureSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["verified", "unverified", "unsigned"],
        help_text="verified: a assinatura do enclave confere agora com o valor guardado",
    )
    signing_kid = serializers.CharField(allow_blank=True)
    reason = serializers.CharField(allow_blank=True)


class DecisionSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["pending", "sent", "cancelled"])
    at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


class CorrectionSerializer(serializers.Serializer):
    supersedes = serializers.CharField(help_text="o fechamento substituído (semana-sequência)")
    why = serializers.CharField()
    by = serializers.CharField()
    at = serializers.DateTimeField()
    what_changed = serializers.DictField()


class ClosingRefSerializer(serializers.Serializer):
    reference = serializers.CharField(help_text="semana-sequência, como o enclave a assina")
    sequence = serializers.IntegerField()
    is_current = serializers.BooleanField()
    parameters_version = serializers.IntegerField(allow_null=True)
    parameters_sha256 = serializers.CharField(allow_blank=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    correction = CorrectionSerializer(allow_null=True)


class FiguresSerializer(serializers.Serializer):
    fa = serializers.FloatField(allow_null=True)
    fa_risk = serializers.FloatField(allow_null=True)
    res_fin_over_pla = serializers.FloatField(allow_null=True)
    concentration_largest = serializers.FloatField(allow_null=True)
    concentration_top_five = serializers.FloatField(allow_null=True)
    var_share_by_bucket = serializers.ListField(
        child=serializers.FloatField(allow_null=True), allow_null=True
    )
    network = serializers.DictField()
    systemic = serializers.DictField(
        help_text="medidas sistêmicas do agente por cenário de estresse (impacto e estresse "
        "DebtRank, recuperação e onda de default de Eisenberg–Noe, perda de crédito / capital)"
    )


class LeverageSerializer(serializers.Serializer):
    week = serializers.CharField()
    agent = serializers.IntegerField()
    acronym = serializers.CharField()
    status = serializers.CharField(help_text="computed, no_fa, rejected, error ou missing")
    error = serializers.DictField()
    closing = ClosingRefSerializer()
    decision = DecisionSerializer()
    signature = SignatureSerializer()
    figures = FiguresSerializer(
        allow_null=True, help_text="null para a CCEE enquanto o agente não enviou"
    )
    breakdown_jwe = serializers.CharField(
        allow_null=True,
        help_text="detalhamento (VaR por período e fonte, RES_FIN, PLA) como JWE à chave de "
        "resposta do agente (prd_reply); só para o agente",
    )


class CancelInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="motivo do cancelamento")


class CommunitySerializer(serializers.Serializer):
    community = serializers.IntegerField()
    rank = serializers.IntegerField(allow_null=True)
    size = serializers.IntegerField()
    propagators = serializers.IntegerField()
    mean_cvar_intrinsic = serializers.FloatField(allow_null=True)
    mean_cvar_propagated = serializers.FloatField(allow_null=True)
    mean_cvar_total = serializers.FloatField(allow_null=True)
    isolated = serializers.BooleanField(
        help_text="agente sem volume contratado: fora de K, após as comunidades da rede"
    )


class NetworkRiskSerializer(serializers.Serializer):
    week = serializers.CharField()
    agent = serializers.IntegerField()
    source = serializers.CharField(help_text="trade_network, counterparties ou none")
    signature = SignatureSerializer()
    local = serializers.DictField(
        allow_null=True,
        help_text="VaR/CVaR intrínseco, propagado e total, comunidade e posição k de K (None "
        "para um agente isolado); null "
        "para a CCEE enquanto o agente não enviou",
    )
    network_mean = serializers.FloatField(allow_null=True)
    summary = serializers.DictField()
    communities = CommunitySerializer(many=True)
    systemic = serializers.DictField(
        help_text="{signature, local, system}: local as figures.systemic (null para a CCEE "
        "enquanto o agente não enviou); system: os números do sistema por cenário, sem nomear "
        "agente algum"
    )


class ClosingSystemicSerializer(serializers.Serializer):
    week = serializers.CharField()
    closing = ClosingRefSerializer()
    signature = SignatureSerializer()
    systemic = serializers.DictField(
        help_text="por cenário de estresse: DebtRank do sistema, Eisenberg–Noe, par cover-2; "
        "um agente cujo resultado não foi enviado aparece como null"
    )
    agents = serializers.DictField(
        help_text="sigla → números por cenário, só dos resultados enviados à CCEE"
    )
    tracking = serializers.DictField(
        help_text="a transição assinada das comunidades da semana anterior para esta"
    )


class TrackingQuerySerializer(serializers.Serializer):
    weeks = serializers.IntegerField(
        min_value=1,
        max_value=selectors.MAX_TRACKING_WEEKS,
        default=selectors.DEFAULT_TRACKING_WEEKS,
    )
    until = serializers.CharField(required=False, help_text="a última semana (código)")
    agent = serializers.CharField(required=False, max_length=40, help_text="a sigla de um agente")

    def validate_until(self, value: str) -> str:
        if not is_week_code(value):
            raise serializers.ValidationError("não é um código de semana (AAAAMM + 3 dígitos)")
        return value


class CommunityTrackingSerializer(serializers.Serializer):
    tracking = serializers.DictField(
        help_text="prudencial/tracking/v1 sem os agentes: semanas, comunidades (tamanho, "
        "linhagem), transições e contagens"
    )
    agents = serializers.DictField(
        help_text="sigla → [{week, sent, community, lineage}] (comunidade e linhagem só de "
        "semanas cujo resultado o agente enviou)"
    )
    closings = serializers.ListField(child=serializers.DictField())
    unverified = serializers.ListField(
        child=serializers.DictField(),
        help_text="semanas deixadas de fora: as comunidades guardadas não conferem com a "
        "resposta assinada",
    )


class HistoryEntrySerializer(serializers.Serializer):
    week = serializers.CharField()
    closing = ClosingRefSerializer()
    status = serializers.CharField()
    fa = serializers.FloatField(allow_null=True)
    fa_risk = serializers.FloatField(allow_null=True)
    decision = DecisionSerializer()
    signature = SignatureSerializer()


# --- helpers -------------------------------------------------------------------------------------


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def _week_code(code: str) -> str:
    if not is_week_code(code):
        raise NotFound()
    return code


def _leverage(result: LeverageResult, user, checker: SignatureChecker) -> dict[str, Any]:
    own = selectors.is_agent_user(user, result.agent_id)
    return {
        "week": result.closing.week.code,
        "agent": result.agent_id,
        "acronym": result.agent.acronym,
        "status": result.status,
        "error": dict(result.error or {}),
        "closing": selectors.closing_reference(result.closing),
        "decision": selectors.decision_summary(result),
        "signature": checker.check(result).as_dict(),
        "figures": selectors.figures_for(result, user),
        "breakdown_jwe": (result.breakdown_jwe or None) if own else None,
    }


def _answer(result: LeverageResult, user) -> Response:
    """The result as its reader may see it (after a decision: as it is now)."""
    return Response(LeverageSerializer(_leverage(result, user, SignatureChecker())).data)


def _decide(run):
    try:
        return run()
    except decisions.DecisionConflict as exc:
        raise Conflict(exc.messages[0], code=exc.code) from None
    except DjangoPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from None
    except DjangoValidationError as exc:
        raise ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        ) from None


# --- views ---------------------------------------------------------------------------------------


class LeverageView(APIView):
    """The agent's result of the week's current closing."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=LeverageSerializer)
    def get(self, request, code: str, agent_id: int):
        result = selectors.current_result(
            week_code=_week_code(code), agent_id=agent_id, user=request.user
        )
        return _answer(result, request.user)


class LeverageSendView(APIView):
    """Send the result to CCEE: final; sending again answers the same decision."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=LeverageSerializer)
    def post(self, request, code: str, agent_id: int):
        result = selectors.current_result(
            week_code=_week_code(code), agent_id=agent_id, user=request.user
        )
        _decide(lambda: decisions.leverage_send(result, request.user))
        return _answer(result, request.user)


class LeverageCancelView(APIView):
    """Cancel the result, with a reason (not after it was sent)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=CancelInputSerializer, responses=LeverageSerializer)
    def post(self, request, code: str, agent_id: int):
        result = selectors.current_result(
            week_code=_week_code(code), agent_id=agent_id, user=request.user
        )
        data = CancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reason = data.validated_data["reason"]
        _decide(lambda: decisions.leverage_cancel(result, request.user, reason))
        return _answer(result, request.user)


class NetworkRiskView(APIView):
    """The agent's network indicators and the week's: communities by rank, network mean."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=NetworkRiskSerializer)
    def get(self, request, code: str, agent_id: int):
        result = selectors.current_result(
            week_code=_week_code(code), agent_id=agent_id, user=request.user
        )
        figures = selectors.figures_for(result, request.user)
        closing = result.closing
        network = dict(closing.network or {})
        summary = {k: network.get(k) for k in exports.NETWORK_SUMMARY if k in network}
        checker = SignatureChecker()
        body = {
            "week": closing.week.code,
            "agent": result.agent_id,
            "source": closing.network_source or "none",
            "signature": checker.check(result).as_dict(),
            "systemic": {
                "signature": checker.check_closing(closing).as_dict(),
                "local": None if figures is None else figures["systemic"],
                "system": selectors.systemic_summary(closing, names=False),
            },
            "local": None if figures is None else figures["network"],
            "network_mean": exports.network_mean(closing),
            "summary": summary,
            "communities": [
                {
                    "community": c.community,
                    "rank": c.rank,
                    "size": c.size,
                    "propagators": c.propagators,
                    "mean_cvar_intrinsic": c.mean_cvar_intrinsic,
                    "mean_cvar_propagated": c.mean_cvar_propagated,
                    "mean_cvar_total": c.mean_cvar_total,
                    "isolated": c.isolated,
                }
                for c in exports.community_rows(closing)
            ],
        }
        return Response(NetworkRiskSerializer(body).data)


class LeverageHistoryView(APIView):
    """The agent's FA week by week (superseded closings too, flagged), for its own users."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=HistoryEntrySerializer(many=True))
    def get(self, request, agent_id: int):
        checker = SignatureChecker()
        rows = [
            {
                "week": result.closing.week.code,
                "closing": selectors.closing_reference(result.closing),
                "status": result.status,
                "fa": result.fa,
                "fa_risk": result.fa_risk,
                "decision": selectors.decision_summary(result),
                "signature": checker.check(result).as_dict(),
            }
            for result in selectors.history(agent_id=agent_id, user=request.user)
        ]
        return Response(HistoryEntrySerializer(rows, many=True).data)


# --- staff: the week's systemic measures and the communities across weeks ------------------------


class CanViewClosing(BasePermission):
    """CCEE staff with the closing's view permission (a global model permission)."""

    message = "closing.view_closing"

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("closing.view_closing"))


class ClosingSystemicView(APIView):
    """The week's current closing's systemic measures and communities' transition (staff)."""

    permission_classes = [IsAuthenticated, CanViewClosing]

    @extend_schema(responses=ClosingSystemicSerializer)
    def get(self, request, code: str):
        closing = selectors.current_closing(week_code=_week_code(code))
        sent = selectors.sent_acronyms(closing)
        agents = dict(
            LeverageResult.objects.filter(closing=closing, agent__acronym__in=sent)
            .exclude(systemic={})
            .values_list("agent__acronym", "systemic")
        )
        body = {
            "week": closing.week.code,
            "closing": selectors.closing_reference(closing),
            "signature": SignatureChecker().check_closing(closing).as_dict(),
            "systemic": selectors.systemic_summary(closing, names=sent),
            "agents": agents,
            "tracking": dict(closing.tracking or {}),
        }
        return Response(ClosingSystemicSerializer(body).data)


class CommunityTrackingView(APIView):
    """The communities of the last N weeks' current closings matched week to week (staff)."""

    permission_classes = [IsAuthenticated, CanViewClosing]

    @extend_schema(parameters=[TrackingQuerySerializer], responses=CommunityTrackingSerializer)
    def get(self, request):
        # A plain dict: from a QueryDict DRF reads "agent=" as an absent field, so an empty
        # value the schema refuses (minLength 1) would pass.
        query = TrackingQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        body = selectors.community_tracking(**query.validated_data)
        return Response(CommunityTrackingSerializer(body).data)
