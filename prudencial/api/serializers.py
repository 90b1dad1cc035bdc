"""Explicit output shapes of the registry API (never whatever a ModelSerializer derives)."""

from rest_framework import serializers

from prudencial.models import Agent, ParameterBucket, RiskParameters, Week
from prudencial.models.weeks import SUBMARKETS


class AgentOutputSerializer(serializers.ModelSerializer):
    cnpj = serializers.CharField(source="cnpj_display")

    class Meta:
        model = Agent
        fields = [
            "id",
            "acronym",
            "cnpj",
            "legal_name",
            "agent_class",
            "reporting_cadence",
            "is_active",
        ]


class BucketOutputSerializer(serializers.ModelSerializer):
    label = serializers.CharField()
    hours = serializers.IntegerField()
    forward_prices = serializers.SerializerMethodField()

    class Meta:
        model = ParameterBucket
        fields = [
            "index",
            "label",
            "hours",
            "volatility",
            "stress_price_long",
            "stress_price_short",
            "forward_prices",
        ]

    def get_forward_prices(self, obj: ParameterBucket) -> dict[str, float]:
        return {s: obj.forward_price(s) for s in SUBMARKETS}


class ParametersOutputSerializer(serializers.ModelSerializer):
    buckets = BucketOutputSerializer(many=True)
    correlation = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
    # As the enclave receives it (services.parameters.parameters_payload): none, not [].
    pld_history = serializers.SerializerMethodField()

    class Meta:
        model = RiskParameters
        fields = [
            "confidence",
            "liquidation_days",
            "first_month",
            "sigma_period",
            "netting",
            "pld_floor",
            "pld_cap",
            "k",
            "theta",
            "fa_alert_threshold",
            # Alerts (docs/alerts.md): the FA bands and the concentration limits of the week.
            "fa_bands",
            "concentration_limit_largest",
            "concentration_limit_top_five",
            "case_response_days",
            "correlation",
            "buckets",
            # The price-source rule's inputs (docs/formats.md): what fa-preview needs to price
            # every row as the enclave does.
            "energy_types",
            "energy_spreads",
            "contract_spreads",
            "forward_curves",
            "pld_history",
            "updated_at",
        ]

    def get_pld_history(self, obj: RiskParameters) -> list[float] | None:
        return list(obj.pld_history or []) or None


class WeekOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Week
        fields = ["code", "operation_start", "operation_end", "opens_at", "deadline", "status"]


class WeekDetailOutputSerializer(WeekOutputSerializer):
    parameters = serializers.SerializerMethodField()

    class Meta(WeekOutputSerializer.Meta):
        fields = [*WeekOutputSerializer.Meta.fields, "parameters"]

    def get_parameters(self, obj: Week) -> dict | None:
        try:
            return ParametersOutputSerializer(obj.parameters).data
        except RiskParameters.DoesNotExist:
            return None
