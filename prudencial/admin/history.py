"""Read-only lists of the historical tables: every change to agents, representations, weeks,
parameters and buckets, with who made it, when, and each field's old → new value."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from prudencial.admin.common import HistoricalRecordAdmin
from prudencial.models import Agent, ParameterBucket, Representation, RiskParameters, Week

LIST = ("when", "who", "kind", "changes")


@admin.register(Agent.history.model)
class HistoricalAgentAdmin(HistoricalRecordAdmin):
    list_display = ("acronym", "legal_name", *LIST)
    search_fields = ("acronym", "legal_name", "cnpj", "history_user__username")


@admin.register(Representation.history.model)
class HistoricalRepresentationAdmin(HistoricalRecordAdmin):
    list_display = ("agent", "user", "role", *LIST)
    list_select_related = ("history_user", "agent", "user")
    search_fields = ("agent__acronym", "user__username", "history_user__username")


@admin.register(Week.history.model)
class HistoricalWeekAdmin(HistoricalRecordAdmin):
    list_display = ("code", "status", *LIST)
    search_fields = ("code", "history_user__username")


@admin.register(RiskParameters.history.model)
class HistoricalRiskParametersAdmin(HistoricalRecordAdmin):
    list_display = ("week", *LIST)
    list_select_related = ("history_user", "week")
    search_fields = ("week__code", "history_user__username")


@admin.register(ParameterBucket.history.model)
class HistoricalParameterBucketAdmin(HistoricalRecordAdmin):
    """Buckets are matched by week and index: setting a week's parameters whole replaces the
    rows, and "M+2 of week 202303001" is what staff follow across those replacements."""

    history_key = ("parameters_id", "index")
    list_display = ("week_code", "bucket", *LIST)
    list_select_related = ("history_user", "parameters__week")
    search_fields = ("parameters__week__code", "history_user__username")

    @admin.display(description=_("semana"), ordering="parameters__week__code")
    def week_code(self, record: object) -> str:
        parameters = getattr(record, "parameters", None)
        return parameters.week.code if parameters is not None else "—"

    @admin.display(description=_("bucket"), ordering="index")
    def bucket(self, record: object) -> str:
        return f"M+{record.index}"
