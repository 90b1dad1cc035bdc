"""Staff console of the submissions: metadata only, never an envelope.

- Envios (``Submission``): per week, filtered by status, agent, agent class, channel and kind;
  read-only (submissions are append-only). The envelope (JWE text) is in no form, list, filter,
  search or export: the queryset defers it, the forms exclude it. The status shown is the
  verdict verified now (``submissions.selectors.VerdictChecker``): a verdict whose signature
  does not verify shows as "não verificado", never as accepted. The status *filter* reads the
  stored verdict row (a database filter cannot verify signatures) and is labelled "situação
  registrada (não verificada)"; the column says the truth.
- Lotes (``Batch``): status and file-level errors, and the batch's rows: per agent and kind the
  submission it made and its verified verdict with errors by field and row.
- Progresso (``submissions/submission/progress/``): per week (envios, those whose stored
  verdict row says accepted — labelled as the registered, unverified status: counting verified
  ones would verify every signature of every listed week — and agents with a submission) and, for one week, per agent class: eligible, portfolio and counterparties done,
  still missing; the missing agents (``…/missing/<code>/``) as a page and as CSV or XLSX
  (``prudencial.submissions.exports``; also ``manage.py export_missing``).

Every view asks the model's view permission (``submissions.view_submission`` /
``view_batch``): a staff member without it gets 403; an agent's user (not staff) never enters
the admin.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from prudencial.domain.calendar import is_week_code
from prudencial.domain.identifiers import normalize_acronym
from prudencial.models import AgentClass, Week
from prudencial.submissions import exports
from prudencial.submissions import selectors as submission_selectors
from prudencial.submissions.models import Batch, Kind, Submission, VerdictStatus

#: Rows of a batch shown on its page; the rest are counted.
BATCH_ROWS_SHOWN = 2_000
#: Missing agents listed on the page; the exports carry them all.
MISSING_ROWS_SHOWN = 500
#: Weeks in the progress page's overview.
PROGRESS_WEEKS = 12
_CHUNK = 20  # envelopes held at once while verifying a page's verdicts

STATUS_LABELS = {
    submission_selectors.RECEIVED: _("Recebido (aguardando o enclave)"),
    VerdictStatus.ACCEPTED: _("Aceito"),
    VerdictStatus.REJECTED: _("Recusado"),
    VerdictStatus.ERROR: _("Erro"),
    submission_selectors.UNVERIFIED: _("Não verificado (assinatura não confere)"),
}


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


def checked_verdicts(ids: list[int]) -> dict[int, submission_selectors.CheckedVerdict]:
    """The verified verdict of each submission id, reading the envelopes (which the check
    needs) a few at a time and dropping them at once."""
    checker = submission_selectors.VerdictChecker()
    out: dict[int, submission_selectors.CheckedVerdict] = {}
    rows = (
        Submission.objects.filter(pk__in=ids)
        .select_related("agent", "verdict", "week")  # the check compares the signed args
        .order_by("pk")
        .iterator(chunk_size=_CHUNK)
    )
    for submission in rows:
        out[submission.pk] = checker.check(submission)
    return out


def errors_table(errors: list[dict[str, Any]] | None) -> str:
    if not errors:
        return "—"
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((e.get("field") or "", e.get("row") or "", e.get("rule") or "") for e in errors),
    )
    return format_html(
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
        gettext("campo"),
        gettext("linha"),
        gettext("regra"),
        body,
    )


class AgentAcronymFilter(admin.SimpleListFilter):
    """A text box for the agent's acronym: a drop-down of every agent would not scale."""

    title = _("agente (sigla)")
    parameter_name = "agent"
    template = "admin/submissions/input_filter.html"

    def lookups(self, request, model_admin):
        return [("", "")]  # one dummy choice: the filter is shown, its template draws a box

    def queryset(self, request, queryset):
        value = normalize_acronym(self.value())
        if not value:
            return queryset
        if "\x00" in value:  # PostgreSQL text never holds NUL: no agent has it
            return queryset.none()
        return queryset.filter(agent__acronym=value)


class VerdictStatusFilter(admin.SimpleListFilter):
    """Filters by the stored verdict row, which a database filter cannot verify: its title and
    choices say so; the list's status column is the verified one."""

    title = _("situação registrada (não verificada)")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("received", _("Recebido (sem parecer)")),
            (VerdictStatus.ACCEPTED, _("Aceito (registrado, não verificado)")),
            (VerdictStatus.REJECTED, _("Recusado (registrado, não verificado)")),
            (VerdictStatus.ERROR, _("Erro (registrado)")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "received":
            return queryset.filter(verdict__isnull=True)
        if value in VerdictStatus.values:
            return queryset.filter(verdict__status=value)
        return queryset


class SubmissionChangeList(ChangeList):
    """Verifies the page's verdicts once, for the status column."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        checked = checked_verdicts([s.pk for s in self.result_list])
        for submission in self.result_list:
            submission.checked_verdict = checked.get(submission.pk)


class ReadOnlyMixin:
    """Append-only rows: staff read them; nobody adds, edits or deletes them here."""

    actions = None

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Submission)
class SubmissionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "week",
        "agent_acronym",
        "agent_class",
        "kind",
        "version",
        "channel",
        "status",
        "submitted_by",
        "submitted_at",
        "size_bytes",
        "receipt_short",
        "batch_link",
    )
    list_filter = (
        "week",
        VerdictStatusFilter,
        AgentAcronymFilter,
        "agent__agent_class",
        "channel",
        "kind",
    )
    search_fields = ("=agent__acronym", "=receipt")
    search_help_text = _("Sigla exata do agente ou recibo (SHA-256) exato.")
    list_select_related = ("week", "agent", "submitted_by", "verdict")
    list_per_page = 100
    show_full_result_count = False
    date_hierarchy = None
    ordering = ("-submitted_at",)
    fields = (
        "week",
        "agent",
        "kind",
        "version",
        "channel",
        "submitted_by",
        "submitted_at",
        "size_bytes",
        "receipt",
        "batch_link",
        "idempotency_key",
        "status",
        "verified",
        "verdict_errors",
        "verdict_source",
        "verdict_signing_kid",
        "verdict_verified_at",
    )
    readonly_fields = fields
    exclude = ("envelope",)
    change_list_template = "admin/submissions/submission/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("envelope")

    def get_changelist(self, request, **kwargs):
        return SubmissionChangeList

    def _checked(self, obj: Submission) -> submission_selectors.CheckedVerdict:
        checked = getattr(obj, "checked_verdict", None)
        if checked is None:
            checked = checked_verdicts([obj.pk]).get(obj.pk)
            obj.checked_verdict = checked
        return checked

    @admin.display(description=_("agente"), ordering="agent__acronym")
    def agent_acronym(self, obj: Submission) -> str:
        return obj.agent.acronym

    @admin.display(description=_("classe"), ordering="agent__agent_class")
    def agent_class(self, obj: Submission) -> str:
        return obj.agent.get_agent_class_display()

    @admin.display(description=_("situação (verificada)"))
    def status(self, obj: Submission) -> str:
        return status_label(self._checked(obj).status)

    @admin.display(description=_("assinatura do enclave verificada"), boolean=True)
    def verified(self, obj: Submission) -> bool:
        return self._checked(obj).verified

    @admin.display(description=_("erros"))
    def verdict_errors(self, obj: Submission) -> str:
        return errors_table(self._checked(obj).errors)

    def _verdict_field(self, obj: Submission, name: str) -> Any:
        verdict = submission_selectors._verdict_of(obj)
        return getattr(verdict, name) if verdict is not None else "—"

    @admin.display(description=_("origem do parecer"))
    def verdict_source(self, obj: Submission) -> Any:
        verdict = submission_selectors._verdict_of(obj)
        return verdict.get_source_display() if verdict is not None else "—"

    @admin.display(description=_("kid da assinatura"))
    def verdict_signing_kid(self, obj: Submission) -> Any:
        return self._verdict_field(obj, "signing_kid")

    @admin.display(description=_("parecer registrado em"))
    def verdict_verified_at(self, obj: Submission) -> Any:
        return self._verdict_field(obj, "verified_at")

    @admin.display(description=_("recibo"))
    def receipt_short(self, obj: Submission) -> str:
        return format_html('<span title="{}">{}…</span>', obj.receipt, obj.receipt[:12])

    @admin.display(description=_("lote"))
    def batch_link(self, obj: Submission) -> str:
        if obj.batch_id is None:
            return "—"
        url = reverse("admin:submissions_batch_change", args=[obj.batch_id])
        return format_html('<a href="{}">{}</a>', url, obj.batch_id)

    # --- progress and missing agents ----------------------------------------------------------

    def get_urls(self):
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        return [
            path(
                "progress/",
                self.admin_site.admin_view(self.progress_view),
                name=f"{name}_progress",
            ),
            path(
                "missing/<str:code>/",
                self.admin_site.admin_view(self.missing_view),
                name=f"{name}_missing",
            ),
            *super().get_urls(),
        ]

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def progress_view(self, request: HttpRequest) -> HttpResponse:
        """Per week: envios and agents with one; for the chosen week, per agent class."""
        self._require_view(request)
        weeks = list(
            Week.objects.order_by("-code")[:PROGRESS_WEEKS].annotate(
                n_submissions=Count("submissions"),
                n_agents=Count("submissions__agent", distinct=True),
                # The stored row's status, not verified (the page says so); the per-class
                # table below counts verified verdicts.
                n_accepted=Count(
                    "submissions", filter=Q(submissions__verdict__status=VerdictStatus.ACCEPTED)
                ),
            )
        )
        code = request.GET.get("week")
        week = (
            _week_or_404(code)
            if code
            else next((w for w in weeks if w.status != "scheduled"), weeks[0] if weeks else None)
        )
        classes: list[dict[str, Any]] = []
        totals: dict[str, int] = {}
        if week is not None:
            classes, totals = progress_by_class(week)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Progresso dos envios"),
            "weeks": weeks,
            "week": week,
            "classes": classes,
            "totals": totals,
        }
        return TemplateResponse(request, "admin/submissions/progress.html", context)

    def missing_view(self, request: HttpRequest, code: str) -> HttpResponse:
        """The eligible agents still missing: a page, or ?format=csv|xlsx to download."""
        self._require_view(request)
        week = _week_or_404(code)
        kind = request.GET.get("kind") or None
        if kind not in (None, *Kind.values):
            kind = None
        file_format = request.GET.get("format")
        if file_format in exports.FORMATS:
            data = exports.export(week=week, file_format=file_format, kind=kind)
            response = HttpResponse(data, content_type=exports.CONTENT_TYPES[file_format])
            name = exports.filename(week=week, file_format=file_format, kind=kind)
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        rows = exports.missing_rows(week=week, kind=kind)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Agentes faltantes na semana %(code)s") % {"code": week.code},
            "week": week,
            "kind": kind or "",
            "kinds": Kind.choices,
            "rows": rows[:MISSING_ROWS_SHOWN],
            "total": len(rows),
            "truncated": len(rows) > MISSING_ROWS_SHOWN,
        }
        return TemplateResponse(request, "admin/submissions/missing.html", context)


def _week_or_404(code: str) -> Week:
    if not is_week_code(code):
        raise Http404
    return get_object_or_404(Week, code=code)


def progress_by_class(week: Week) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per agent class: eligible, portfolio done, counterparties done, both, missing (any)."""
    agents = list(submission_selectors.eligible_agents(week=week).values_list("pk", "agent_class"))
    states = submission_selectors.current_submissions(week=week, agent_ids=[pk for pk, _ in agents])

    def done(pk: int, kind: str) -> bool:
        return bool((states.get((pk, kind)) or {}).get("is_current"))

    by_class: dict[str, dict[str, Any]] = {}
    for pk, agent_class in agents:
        row = by_class.setdefault(
            agent_class,
            {"eligible": 0, "portfolio": 0, "counterparties": 0, "both": 0, "missing": 0},
        )
        p, c = done(pk, Kind.PORTFOLIO), done(pk, Kind.COUNTERPARTIES)
        row["eligible"] += 1
        row["portfolio"] += p
        row["counterparties"] += c
        row["both"] += p and c
        row["missing"] += not (p and c)
    labels = dict(AgentClass.choices)
    rows = [
        {"agent_class": agent_class, "label": labels.get(agent_class, agent_class), **counts}
        for agent_class, counts in sorted(by_class.items())
    ]
    totals = {
        key: sum(r[key] for r in rows)
        for key in ("eligible", "portfolio", "counterparties", "both", "missing")
    }
    return rows, totals


@admin.register(Batch)
class BatchAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "week",
        "submitted_by",
        "submitted_at",
        "size_bytes",
        "receipt_short",
        "status",
        "file_format",
        "n_agents",
        "processed_at",
    )
    list_filter = ("status", "week", "file_format")
    search_fields = ("=receipt", "=submitted_by__username")
    list_select_related = ("week", "submitted_by")
    show_full_result_count = False
    ordering = ("-submitted_at",)
    fields = (
        "week",
        "submitted_by",
        "submitted_at",
        "size_bytes",
        "receipt",
        "status",
        "file_format",
        "processed_at",
        "declared_agents",
        "file_errors",
        "rows",
    )
    readonly_fields = fields
    exclude = ("envelope", "answer_token")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .defer("envelope", "answer_token")
            .annotate(agent_count=Count("agents", distinct=True))
        )

    @admin.display(description=_("agentes"), ordering="agent_count")
    def n_agents(self, obj: Batch) -> int:
        return obj.agent_count

    @admin.display(description=_("recibo"))
    def receipt_short(self, obj: Batch) -> str:
        return format_html('<span title="{}">{}…</span>', obj.receipt, obj.receipt[:12])

    @admin.display(description=_("agentes declarados"))
    def declared_agents(self, obj: Batch) -> str:
        return ", ".join(obj.agents.order_by("acronym").values_list("acronym", flat=True)) or "—"

    @admin.display(description=_("erros do arquivo"))
    def file_errors(self, obj: Batch) -> str:
        return errors_table(obj.errors)

    @admin.display(description=_("linhas do lote (envios por agente)"))
    def rows(self, obj: Batch) -> str:
        submissions = list(
            Submission.objects.filter(batch=obj)
            .defer("envelope")
            .select_related("agent")
            .order_by("agent__acronym", "kind")[: BATCH_ROWS_SHOWN + 1]
        )
        if not submissions:
            return "—"
        shown = submissions[:BATCH_ROWS_SHOWN]
        checked = checked_verdicts([s.pk for s in shown])
        body = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td><a href="{}">v{}</a></td><td>{}</td><td>{}</td></tr>',
            (
                (
                    s.agent.acronym,
                    s.get_kind_display(),
                    reverse("admin:submissions_submission_change", args=[s.pk]),
                    s.version,
                    status_label(checked[s.pk].status),
                    errors_table(checked[s.pk].errors),
                )
                for s in shown
            ),
        )
        more = (
            format_html("<p>{}</p>", gettext("… e outras linhas (veja a lista de envios)."))
            if len(submissions) > BATCH_ROWS_SHOWN
            else ""
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"
            "</thead><tbody>{}</tbody></table>{}",
            gettext("agente"),
            gettext("tipo"),
            gettext("versão"),
            gettext("situação (verificada)"),
            gettext("erros"),
            body,
            more,
        )
