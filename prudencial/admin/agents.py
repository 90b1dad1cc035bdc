"""Agents (agentes): registry with history, import/export, saved by agent_create/agent_update."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportMixin
from simple_history.admin import SimpleHistoryAdmin

from prudencial.admin.common import (
    LargeTableMixin,
    MaskedCNPJField,
    ServiceErrorsMixin,
    TransactionalImportMixin,
    adopt,
)
from prudencial.admin.imports import BackgroundImportMixin
from prudencial.domain.identifiers import normalize_cnpj
from prudencial.models import Agent
from prudencial.resources import AgentResource
from prudencial.selectors import agent_list
from prudencial.services.agents import agent_create, agent_update

AGENT_FIELDS = ("acronym", "cnpj", "legal_name", "agent_class", "reporting_cadence", "is_active")


class AgentForm(forms.ModelForm):
    cnpj = MaskedCNPJField(
        label=_("CNPJ"),
        help_text=_("Numérico ou alfanumérico (a partir de julho/2026), com ou sem máscara."),
    )

    class Meta:
        model = Agent
        fields = AGENT_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Blank cadence means "follow the class" (agent_create / agent_update derive it).
        self.fields["reporting_cadence"].required = False
        if self.instance.pk:
            self.initial["cnpj"] = self.instance.cnpj_display


@admin.register(Agent)
class AgentAdmin(
    ServiceErrorsMixin,
    LargeTableMixin,
    TransactionalImportMixin,
    BackgroundImportMixin,
    ImportExportMixin,
    SimpleHistoryAdmin,
):
    form = AgentForm
    resource_classes = [AgentResource]
    list_display = (
        "acronym",
        "legal_name",
        "cnpj_masked",
        "agent_class",
        "reporting_cadence",
        "is_active",
    )
    list_display_links = ("acronym", "legal_name")
    list_filter = ("agent_class", "reporting_cadence", "is_active")
    search_fields = ("acronym", "legal_name", "cnpj")
    search_help_text = _("Sigla, razão social ou CNPJ (com ou sem máscara).")
    ordering = ("acronym",)
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("acronym", "legal_name", "cnpj")}),
        (_("Classificação"), {"fields": ("agent_class", "reporting_cadence", "is_active")}),
        (_("Registro"), {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description=_("CNPJ"), ordering="cnpj")
    def cnpj_masked(self, agent: Agent) -> str:
        return agent.cnpj_display

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        """The agents the staff member may see, decided by the one selector the API uses too."""
        return agent_list(user=request.user)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """A CNPJ typed with its mask finds the agent too."""
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        unmasked = normalize_cnpj(term)
        if unmasked and unmasked != term.upper() and len(unmasked) >= 4:
            queryset |= self.get_queryset(request).filter(cnpj__startswith=unmasked)
        return queryset, may_have_duplicates

    def save_model(self, request: HttpRequest, obj: Agent, form: AgentForm, change: bool) -> None:
        values = {f: form.cleaned_data[f] for f in AGENT_FIELDS if f in form.cleaned_data}
        if change:
            changed = {f: values[f] for f in form.changed_data if f in values}
            agent_update(agent=obj, **changed)
        else:
            adopt(obj, agent_create(**values))
