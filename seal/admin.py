"""Staff console of the seal: the catalogue, cycles, the review queue and the decision history.

- Critérios: added (a new catalogue version) and retired (action; older evaluations keep
  theirs); never edited. Versões do catálogo: read-only.
- Ciclos: created here through ``services.cycle_create`` (the response period defaults to
  SEAL_RESPONSE_DAYS, who created it is kept and logged); ``response_days`` is read-only once
  an evaluation of the cycle was notified. Actions "open evaluations" (one draft per active
  reporting agent, the platform's evidence derived) and "export results (XLSX)" (one sheet
  per selected cycle).
- Avaliações (the review queue, by default what staff have to act on: drafts, under review,
  notified ones whose response period is over — ready to publish — and notified ones the agent
  answered or uploaded to since notification): per criterion the decision, units and comment,
  saved through ``services.item_decide``; the derived figures as tables linking each week's
  and each channel's submission to its admin page (a week without one shown as missing); the
  breakdown as a table with its evidence and record links; the agents' evidence (download)
  and answers; the decision history. Bulk actions: derive evidence again, score, move to
  review, notify (opens the response period), publish (refused for each evaluation whose
  response period has not ended), compute risk adherence (enclave).
- Registro de decisões: the append-only log, read-only.

Every state-changing action needs the change permission of its model (Django's action
permissions: a view-only staff member sees and runs none); publishing also needs
``seal.publish_evaluation``, opening evaluations ``seal.add_evaluation``. Every write goes
through seal.services; a refusal becomes a message naming the evaluation.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from enclave_bridge.gateway import EnclaveConnectionError, EnclaveError
from prudencial.models import Agent
from seal import conf, exports, selectors, services
from seal.models import (
    AgentResponse,
    CatalogueVersion,
    Criterion,
    Cycle,
    Decision,
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


# --- traceable figures: small HTML tables, every value escaped ------------------------------------


def _table(headers, rows) -> SafeString:
    """A table; ``headers`` and every cell are escaped unless already safe (a link)."""
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((c,) for c in row)),) for row in rows),
    )
    return format_html(
        '<table class="seal-trace"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body
    )


def _submission_link(pk: Any) -> SafeString:
    if not isinstance(pk, int):
        return format_html("{}", pk)
    return format_html(
        '<a href="{}">#{}</a>', reverse("admin:submissions_submission_change", args=[pk]), pk
    )


def _submission_links(ids) -> SafeString | str:
    if not isinstance(ids, list | tuple) or not ids:
        return "—"
    return format_html_join(", ", "{}", ((_submission_link(pk),) for pk in ids))


def _evidence_links(ids) -> SafeString:
    return format_html_join(
        ", ",
        '<a href="{}">{} #{}</a>',
        (
            (reverse("admin:seal_evidence_download", args=[pk]), gettext("arquivo"), pk)
            for pk in ids
            if isinstance(pk, int)
        ),
    )


def _missing() -> SafeString:
    return format_html('<strong class="seal-missing">{}</strong>', gettext("faltante"))


FIGURE_LABELS = {
    "rule": _("regra"),
    "weeks_expected": _("semanas esperadas"),
    "weeks_with_portfolio": _("semanas com portfólio aceito"),
    "share": _("fração"),
    "min_share": _("fração mínima"),
    "missing": _("semanas faltantes"),
    "counted": _("submissões contadas"),
    "api_share": _("fração pela API"),
    "min_api_share": _("fração mínima pela API"),
    "weeks": _("semanas"),
    "available": _("dados disponíveis"),
    "note": _("nota"),
}


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, bool):
        return gettext("sim") if value else gettext("não")
    return "—" if value is None else str(value)


def derived_html(derived: dict[str, Any]) -> SafeString | str:
    """A derived figure (seal.evidence) as tables: its figures; one row per week with the
    counted submission's admin link or "faltante"; one row per channel with its submissions."""
    if not derived or not isinstance(derived, dict):
        return "—"
    figures = [
        (FIGURE_LABELS.get(key, key), _plain(value))
        for key, value in derived.items()
        if key not in ("records", "by_channel")
    ]
    parts = [_table((gettext("figura"), gettext("valor")), figures)] if figures else []
    records = derived.get("records")
    if isinstance(records, list) and records:
        parts.append(
            _table(
                (gettext("semana"), gettext("submissão contada")),
                (
                    (
                        row.get("week", "—"),
                        _submission_link(row["submission"])
                        if row.get("submission")
                        else _missing(),
                    )
                    for row in records
                    if isinstance(row, dict)
                ),
            )
        )
    by_channel = derived.get("by_channel")
    if isinstance(by_channel, dict) and by_channel:
        parts.append(
            _table(
                (gettext("canal"), gettext("submissões contadas"), gettext("quantas")),
                (
                    (
                        channel or "—",
                        _submission_links(ids),
                        len(ids) if isinstance(ids, list) else 0,
                    )
                    for channel, ids in by_channel.items()
                ),
            )
        )
    return format_html_join("", "{}", ((p,) for p in parts))


def _note_label(note: str, missed_points: Any) -> str:
    if not note:
        return ""
    if note.startswith("superseded_by:"):
        return gettext("superada por %(code)s") % {"code": note.split(":", 1)[1]}
    if note.startswith("implied_by:"):
        return gettext("cumprida por %(code)s (medida superior do grupo)") % {
            "code": note.split(":", 1)[1]
        }
    labels = {
        "pending": gettext("pendente"),
        "no_data": gettext("sem dados"),
        "missed_mandatory": gettext("obrigatória não cumprida (%(points)s)")
        % {"points": missed_points},
    }
    return labels.get(note, note)


def _records_of(derived_from: Any) -> SafeString | str:
    if not isinstance(derived_from, dict) or not derived_from:
        return ""
    if derived_from.get("submissions"):
        return _submission_links(derived_from["submissions"])
    by_channel = derived_from.get("submissions_by_channel")
    if isinstance(by_channel, dict):
        return format_html_join(
            "; ", "{}: {}", ((ch or "—", _submission_links(ids)) for ch, ids in by_channel.items())
        )
    return ""


def breakdown_html(breakdown: dict[str, Any]) -> SafeString | str:
    """The stored breakdown as tables: the totals, then per criterion its decision, points,
    penalty, note and the evidence files or records it came from."""
    if not breakdown or not isinstance(breakdown, dict):
        return "—"
    cutoffs = breakdown.get("cutoffs") or {}
    summary = _table(
        (gettext("figura"), gettext("valor")),
        [
            (gettext("pontos dos critérios"), _plain(breakdown.get("points"))),
            (gettext("penalidades obrigatórias"), _plain(breakdown.get("penalties"))),
            (gettext("total"), _plain(breakdown.get("total"))),
            (gettext("nível"), _plain(breakdown.get("level"))),
            (
                gettext("cortes dos níveis"),
                ", ".join(f"{k}: {v}" for k, v in cutoffs.items()) if cutoffs else "—",
            ),
            (gettext("versão do catálogo"), _plain(breakdown.get("catalogue_version"))),
            (gettext("completa"), _plain(bool(breakdown.get("complete")))),
        ],
    )
    missed_points = breakdown.get("missed_mandatory_points")
    rows = []
    for row in breakdown.get("items") or []:
        if not isinstance(row, dict):
            continue
        decision = row.get("decision", "")
        awarded = row.get("awarded", 0)
        units = row.get("units") or 0
        points = f"{awarded}" if units <= 1 else f"{awarded} ({units} × {row.get('points')})"
        evidence = row.get("evidence") or []
        traced = [
            part
            for part in (
                _evidence_links(evidence) if evidence else "",
                _records_of(row.get("derived_from")),
            )
            if part
        ]
        rows.append(
            (
                row.get("code", "—"),
                Decision(decision).label if decision in Decision.values else decision,
                points,
                row.get("penalty", 0),
                _note_label(str(row.get("note") or ""), missed_points),
                format_html_join(" · ", "{}", ((t,) for t in traced)) if traced else "—",
            )
        )
    items = _table(
        (
            gettext("critério"),
            gettext("decisão"),
            gettext("pontos"),
            gettext("penalidade"),
            gettext("nota"),
            gettext("evidência / registros"),
        ),
        rows,
    )
    return format_html("{}{}", summary, items)


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
            raise ValidationError({exc.field or "code": exc.message}) from None
        obj.pk = saved.pk
        obj._state.adding = False

    @admin.action(
        description=_("Retirar critérios selecionados (nova versão do catálogo)"),
        permissions=["change"],
    )
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
    actions = ["open_evaluations", "export_results"]
    EDITABLE = ("code", "starts_on", "ends_on", "response_days")

    @admin.display(description=_("avaliações"))
    def evaluations_count(self, obj) -> int:
        return obj.evaluations.count()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_open_permission(self, request) -> bool:
        """Opening evaluations changes the cycle and adds evaluations."""
        return self.has_change_permission(request) and request.user.has_perm("seal.add_evaluation")

    def get_fields(self, request, obj=None):
        return self.EDITABLE if obj is None else (*self.EDITABLE, "created_by", "created_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if services.cycle_response_days_locked(obj):
            return ("response_days", "created_by", "created_at")
        return ("created_by", "created_at")

    def get_changeform_initial_data(self, request):
        return {
            "response_days": conf.response_days(),
            **super().get_changeform_initial_data(request),
        }

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and "response_days" in form.base_fields:
            # Left empty, services.cycle_create applies SEAL_RESPONSE_DAYS.
            form.base_fields["response_days"].required = False
        return form

    def save_model(self, request, obj, form, change) -> None:
        if change:
            if "response_days" in form.changed_data and services.cycle_response_days_locked(obj):
                raise PermissionDenied  # a response period is already running
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        try:
            saved = services.cycle_create(
                code=data["code"],
                starts_on=data["starts_on"],
                ends_on=data["ends_on"],
                response_days=data.get("response_days"),
                by=request.user,
            )
        except services.SealRefused as exc:
            raise ValidationError({exc.field or "code": exc.message}) from None
        for name in ("pk", "response_days", "created_by_id", "created_at"):
            setattr(obj, name, getattr(saved, name))
        obj._state.adding = False

    @admin.action(
        description=_("Abrir avaliações (um rascunho por agente ativo)"), permissions=["open"]
    )
    def open_evaluations(self, request, queryset) -> None:
        created = 0
        for cycle in queryset:
            have = set(cycle.evaluations.values_list("agent_id", flat=True))
            for agent in Agent.objects.filter(is_active=True).exclude(pk__in=have):
                services.evaluation_create(agent=agent, cycle=cycle, by=request.user)
                created += 1
        self.message_user(request, gettext("%(n)s avaliação(ões) criada(s).") % {"n": created})

    @admin.action(
        description=_("Exportar resultados dos ciclos (XLSX, uma planilha por ciclo)"),
        permissions=["view"],
    )
    def export_results(self, request, queryset):
        cycles = list(queryset.order_by("-starts_on", "code"))
        if not cycles:
            return None
        response = HttpResponse(
            exports.cycles_results_xlsx(cycles=cycles),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        codes = [c.code for c in cycles]
        name = "_".join(codes) if len(codes) <= 4 else f"{codes[0]}_{len(codes)}_ciclos"
        response["Content-Disposition"] = f'attachment; filename="selo_{name}.xlsx"'
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
        return derived_html(item.derived)

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


def ready_to_publish(now=None) -> Q:
    """Notified, the response period over: staff may publish."""
    return Q(state=EvaluationState.NOTIFIED, response_ends_at__lte=now or timezone.now())


def answered_by_agent() -> Q:
    """Notified, with an answer or upload of the agent newer than the notification."""
    answered = Exists(
        AgentResponse.objects.filter(
            evaluation=OuterRef("pk"), created_at__gt=OuterRef("notified_at")
        )
    )
    uploaded = Exists(
        Evidence.objects.filter(
            item__evaluation=OuterRef("pk"), uploaded_at__gt=OuterRef("notified_at")
        )
    )
    return Q(state=EvaluationState.NOTIFIED) & (Q(answered) | Q(uploaded))


TO_REVIEW = Q(state__in=[EvaluationState.DRAFT, EvaluationState.UNDER_REVIEW])


class QueueFilter(admin.SimpleListFilter):
    """The review queue by default: what staff still have to act on — drafts and evaluations
    under review, and notified ones that are ready to publish or that the agent answered."""

    title = _("fila")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [
            ("todo", _("A fazer (rascunho, em análise, pronta para publicar, respondida)")),
            ("review", _("A revisar (rascunho, em análise)")),
            ("ready", _("Pronta para publicar")),
            ("answered", _("Respondida pelo agente")),
            ("all", _("Todas")),
        ]

    def queryset(self, request, queryset):
        wanted = {
            None: TO_REVIEW | ready_to_publish() | answered_by_agent(),
            "todo": TO_REVIEW | ready_to_publish() | answered_by_agent(),
            "review": TO_REVIEW,
            "ready": ready_to_publish(),
            "answered": answered_by_agent(),
        }.get(self.value())
        return queryset if wanted is None else queryset.filter(wanted)

    def choices(self, changelist):
        value = self.value() or "todo"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


def _count_of(model, link: str):
    rows = (
        model.objects.filter(**{link: OuterRef("pk")})
        .order_by()
        .values(link)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


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
        "answers_count",
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
            "breakdown_shown",
        )

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_publish_permission(self, request) -> bool:
        """Publishing makes the level public: change_evaluation and publish_evaluation."""
        return self.has_change_permission(request) and request.user.has_perm(
            "seal.publish_evaluation"
        )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_responses=_count_of(AgentResponse, "evaluation"),
                n_uploads=_count_of(Evidence, "item__evaluation"),
            )
        )

    @admin.display(description=_("respostas / arquivos"))
    def answers_count(self, obj) -> str:
        return f"{getattr(obj, 'n_responses', 0)} / {getattr(obj, 'n_uploads', 0)}"

    @admin.display(description=_("composição da pontuação"))
    def breakdown_shown(self, obj) -> str:
        return breakdown_html(obj.breakdown)

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

    @admin.action(
        description=_("Derivar de novo a evidência dos registros"), permissions=["change"]
    )
    def derive(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_derive(evaluation=e, by=request.user),
        )

    @admin.action(description=_("Calcular a pontuação"), permissions=["change"])
    def score(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_score(evaluation=e, by=request.user),
        )

    @admin.action(description=_("Passar para análise"), permissions=["change"])
    def move_to_review(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_transition(
                evaluation=e, to=EvaluationState.UNDER_REVIEW, by=request.user
            ),
        )

    @admin.action(
        description=_("Notificar o agente (abre o prazo de resposta)"), permissions=["change"]
    )
    def notify(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_transition(
                evaluation=e, to=EvaluationState.NOTIFIED, by=request.user
            ),
        )

    @admin.action(description=_("Publicar (após o prazo de resposta)"), permissions=["publish"])
    def publish(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.evaluation_transition(
                evaluation=e, to=EvaluationState.PUBLISHED, by=request.user
            ),
        )

    @admin.action(description=_("Calcular a aderência ao risco (enclave)"), permissions=["change"])
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
