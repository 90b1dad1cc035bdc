"""Staff console of the seal: the catalogue, cycles, the review queue and the decision history.

- Critérios: added (a new catalogue version) and retired (action; older evaluations keep
  theirs); never edited. Versões do catálogo: read-only.
- Ciclos: created here; actions "open evaluations" (one draft per active reporting agent, the
  platform's evidence derived) and "export results (XLSX)".
- Avaliações (the review queue: drafts and under-review first): per criterion the decision,
  units and comment, saved through ``services.item_decide``; the derived figures with their
  record ids; the agents' evidence (download) and answers; the decision history. Bulk
  actions: derive evidence again, score, move to review, notify (opens the response period),
  publish (refused for each evaluation whose response period has not ended), compute risk
  adherence (enclave).
- Registro de decisões: the append-only log, read-only.

Every write goes through seal.services; a refusal becomes a message naming the evaluation.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from enclave_bridge.gateway import EnclaveConnectionError, EnclaveError
from prudencial.models import Agent
from seal import exports, selectors, services
from seal.models import (
    CatalogueVersion,
    Criterion,
    Cycle,
    DecisionLog,
    Evaluation,
    EvaluationItem,
    EvaluationState,
    Evidence,
)


def _report(modeladmin, request, done: int, failures: list[str]) -> None:
    if done:
        modeladmin.message_user(
            request, gettext("%(n)s avaliação(ões) atualizada(s).") % {"n": done}, messages.SUCCESS
        )
    for line in failures:
        modeladmin.message_user(request, line, messages.ERROR)


def _each(modeladmin, request, queryset, run) -> None:
    done, failures = 0, []
    for evaluation in queryset.select_related("agent", "cycle"):
        try:
            run(evaluation)
            done += 1
        except services.SealRefused as exc:
            failures.append(f"{evaluation.agent.acronym} ({evaluation.cycle.code}): {exc.message}")
        except (EnclaveError, EnclaveConnectionError) as exc:
            failures.append(
                f"{evaluation.agent.acronym} ({evaluation.cycle.code}): "
                + gettext("o enclave não respondeu (%(code)s).")
                % {"code": getattr(exc, "code", type(exc).__name__)}
            )
    _report(modeladmin, request, done, failures)


@admin.register(Criterion)
class CriterionAdmin(admin.ModelAdmin):
    list_display = (
        "position",
        "code",
        "line_of_action",
        "measure",
        "points",
        "mandatory",
        "evidence_kind",
        "max_units",
        "exclusive_group",
        "retired_at",
    )
    list_filter = ("mandatory", "evidence_kind", "retired_at")
    search_fields = ("code", "measure", "line_of_action")
    actions = ["retire"]
    fields = (
        "code",
        "line_of_action",
        "measure",
        "points",
        "mandatory",
        "evidence_kind",
        "max_units",
        "exclusive_group",
        "derivation",
        "position",
    )

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj is not None else ()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        if change:
            raise PermissionDenied  # criteria are never edited: retire and add another
        fields = {name: form.cleaned_data[name] for name in self.fields}
        try:
            saved = services.criterion_add(by=request.user, **fields)
        except services.SealRefused as exc:
            from django.core.exceptions import ValidationError

            raise ValidationError({exc.field or "code": exc.message}) from None
        obj.pk = saved.pk
        obj._state.adding = False

    @admin.action(description=_("Retirar critérios selecionados (nova versão do catálogo)"))
    def retire(self, request, queryset) -> None:
        for criterion in queryset:
            try:
                version = services.criterion_retire(criterion=criterion, by=request.user)
            except services.SealRefused as exc:
                self.message_user(request, f"{criterion.code}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                gettext("%(code)s retirado: catálogo v%(v)s.")
                % {"code": criterion.code, "v": version.number},
            )


@admin.register(CatalogueVersion)
class CatalogueVersionAdmin(admin.ModelAdmin):
    list_display = ("number", "created_at", "created_by", "missed_mandatory_points", "note")
    readonly_fields = (
        "number",
        "created_at",
        "created_by",
        "missed_mandatory_points",
        "note",
        "listed",
    )
    fields = readonly_fields

    @admin.display(description=_("critérios"))
    def listed(self, obj) -> str:
        return format_html_join(
            "",
            "<div>{} — {} ({})</div>",
            ((c.code, c.measure, f"{c.points:+d}") for c in obj.criteria.all()),
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Cycle)
class CycleAdmin(admin.ModelAdmin):
    list_display = ("code", "starts_on", "ends_on", "response_days", "evaluations_count")
    fields = ("code", "starts_on", "ends_on", "response_days")
    actions = ["open_evaluations", "export_results"]

    @admin.display(description=_("avaliações"))
    def evaluations_count(self, obj) -> int:
        return obj.evaluations.count()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Abrir avaliações (um rascunho por agente ativo)"))
    def open_evaluations(self, request, queryset) -> None:
        created = 0
        for cycle in queryset:
            have = set(cycle.evaluations.values_list("agent_id", flat=True))
            for agent in Agent.objects.filter(is_active=True).exclude(pk__in=have):
                services.evaluation_create(agent=agent, cycle=cycle, by=request.user)
                created += 1
        self.message_user(request, gettext("%(n)s avaliação(ões) criada(s).") % {"n": created})

    @admin.action(description=_("Exportar resultados do ciclo (XLSX)"))
    def export_results(self, request, queryset):
        cycle = queryset.order_by("-starts_on").first()
        if cycle is None:
            return None
        response = HttpResponse(
            exports.cycle_results_xlsx(cycle=cycle),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        response["Content-Disposition"] = f'attachment; filename="selo_{cycle.code}.xlsx"'
        return response


class ItemInline(admin.TabularInline):
    model = EvaluationItem
    extra = 0
    can_delete = False
    fields = (
        "criterion",
        "decision",
        "units",
        "comment",
        "decision_source",
        "points_awarded",
        "derived_figures",
        "evidence_files",
        "decided_by",
        "decided_at",
    )
    readonly_fields = (
        "criterion",
        "decision_source",
        "points_awarded",
        "derived_figures",
        "evidence_files",
        "decided_by",
        "decided_at",
    )

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("evidência derivada (registros)"))
    def derived_figures(self, item) -> str:
        if not item.derived:
            return "—"
        shown = {k: v for k, v in item.derived.items() if k != "records"}
        return format_html("<code>{}</code>", shown)

    @admin.display(description=_("arquivos"))
    def evidence_files(self, item) -> str:
        rows = item.evidence.defer("content")
        return (
            format_html_join(
                "",
                '<div><a href="{}">{}</a> ({}, {})</div>',
                (
                    (
                        reverse("admin:seal_evidence_download", args=[e.pk]),
                        e.file_name,
                        e.file_type,
                        e.sha256[:12],
                    )
                    for e in rows
                ),
            )
            or "—"
        )


class LogInline(admin.TabularInline):
    model = DecisionLog
    extra = 0
    can_delete = False
    fields = ("at", "action", "by", "details")
    readonly_fields = fields
    ordering = ("-at", "-pk")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class QueueFilter(admin.SimpleListFilter):
    """The review queue by default: what staff still have to act on."""

    title = _("fila")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [("todo", _("A revisar (rascunho, em análise)")), ("all", _("Todas"))]

    def queryset(self, request, queryset):
        if self.value() in (None, "todo"):
            return queryset.filter(state__in=[EvaluationState.DRAFT, EvaluationState.UNDER_REVIEW])
        return queryset

    def choices(self, changelist):
        value = self.value() or "todo"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = (
        "agent",
        "cycle",
        "state",
        "total",
        "level",
        "catalogue_version",
        "response_ends_at",
        "published_at",
    )
    list_filter = (QueueFilter, "state", "cycle", "level")
    list_select_related = ("agent", "cycle", "catalogue_version")
    search_fields = ("agent__acronym", "agent__legal_name")
    raw_id_fields = ("agent",)
    show_full_result_count = False
    inlines = [ItemInline, LogInline]
    actions = [
        "derive",
        "score",
        "move_to_review",
        "notify",
        "publish",
        "compute_adherence",
    ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("agent", "cycle")
        return (
            "agent",
            "cycle",
            "catalogue_version",
            "state",
            "total",
            "level",
            "notified_at",
            "response_ends_at",
            "published_at",
            "adherence_shown",
            "responses_shown",
            "breakdown",
        )

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("aderência ao risco"))
    def adherence_shown(self, obj) -> str:
        checked = selectors.adherence_for(obj)
        if checked is None:
            return "—"
        return f"{checked.status} · margem {checked.margin} · {checked.week} (verificada: {checked.verified})"

    @admin.display(description=_("respostas do agente"))
    def responses_shown(self, obj) -> str:
        rows = obj.responses.select_related("item__criterion", "author")
        return (
            format_html_join(
                "",
                "<div>{} · {} · {}: {}</div>",
                (
                    (
                        r.created_at.strftime("%d/%m/%Y %H:%M"),
                        r.author.username,
                        r.item.criterion.code if r.item_id else "—",
                        r.text,
                    )
                    for r in rows
                ),
            )
            or "—"
        )

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return  # the evaluation's own fields are read-only; items are saved below
        from django.core.exceptions import ValidationError

        try:
            saved = services.evaluation_create(
                agent=form.cleaned_data["agent"], cycle=form.cleaned_data["cycle"], by=request.user
            )
        except services.SealRefused as exc:
            raise ValidationError({exc.field or "agent": exc.message}) from None
        obj.pk = saved.pk
        obj._state.adding = False

    def save_formset(self, request, form, formset, change) -> None:
        # Nothing is saved by the formset itself (the admin's change message reads these).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if formset.model is not EvaluationItem:
            return
        for item_form in formset.forms:
            if not item_form.has_changed():
                continue
            item = item_form.instance
            try:
                services.item_decide(
                    item=item,
                    decision=item_form.cleaned_data["decision"],
                    units=item_form.cleaned_data["units"],
                    comment=item_form.cleaned_data["comment"],
                    by=request.user,
                )
            except services.SealRefused as exc:
                self.message_user(request, f"{item.criterion.code}: {exc.message}", messages.ERROR)

    def get_urls(self):
        return [
            path(
                "evidence/<int:pk>/download/",
                self.admin_site.admin_view(self.download_evidence),
                name="seal_evidence_download",
            ),
            *super().get_urls(),
        ]

    def download_evidence(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        evidence = get_object_or_404(Evidence, pk=pk)
        content_type = {
            "pdf": "application/pdf",
            "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }[evidence.file_type]
        response = HttpResponse(bytes(evidence.content), content_type=content_type)
        response["Content-Disposition"] = (
            f'attachment; filename="evidence-{evidence.pk}.{evidence.file_type}"'
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @admin.action(description=_("Derivar de novo a evidência dos registros"))
    def derive(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_derive(evaluation=e, by=request.user),
        )

    @admin.action(description=_("Calcular a pontuação"))
    def score(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_score(evaluation=e, by=request.user),
        )

    @admin.action(description=_("Passar para análise"))
    def move_to_review(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_transition(
                evaluation=e, to=EvaluationState.UNDER_REVIEW, by=request.user
            ),
        )

    @admin.action(description=_("Notificar o agente (abre o prazo de resposta)"))
    def notify(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_transition(
                evaluation=e, to=EvaluationState.NOTIFIED, by=request.user
            ),
        )

    @admin.action(description=_("Publicar (após o prazo de resposta)"))
    def publish(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_transition(
                evaluation=e, to=EvaluationState.PUBLISHED, by=request.user
            ),
        )

    @admin.action(description=_("Calcular a aderência ao risco (enclave)"))
    def compute_adherence(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.adherence_compute(evaluation=e, by=request.user),
        )


@admin.register(DecisionLog)
class DecisionLogAdmin(admin.ModelAdmin):
    list_display = ("at", "action", "evaluation", "by")
    list_filter = ("action",)
    list_select_related = ("evaluation__agent", "evaluation__cycle", "by")
    search_fields = ("evaluation__agent__acronym", "by__username")
    readonly_fields = ("at", "action", "evaluation", "by", "details")
    fields = readonly_fields
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
