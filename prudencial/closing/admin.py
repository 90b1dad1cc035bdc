"""Staff console of the weekly closing: what was computed, what is missing, what to do next.

- Fechamentos (``Closing``): state, progress "x of N", stage times, chunks, correction notices,
  the systemic measures and the communities' transition (checked against the signed answer);
  the community evolution over the last N weeks (picture, counts, each agent's history); per
  closing the network-risk panel (community ranking, network mean, pictures drawn on the
  host from what the enclave disclosed), the missing and late agents, the exports (CSV, XLSX);
  the actions "re-run (correction)" (asks the reason, calls ``services.closing_correct``) and
  "choose degraded rule" for a delayed closing (``services.closing_choose_degraded``).
- Resultados (``LeverageResult``): per week the FA results with filters (status, decision
  state, above the bands, agent class) and ordering. Staff see a result's figures only once the
  agent has sent it (``exports.visible``): an unsent result shows its status, and neither the
  bands filter nor the FA ordering can tell anything about its figures (both read the figures
  of sent results only).
- Redes de contratos (``TradeNetworkUpload``): the uploads of the week's trade network, with
  their verdict verified now; never the envelope.

Everything is read-only here except through the services. Every view asks a model permission:
the closing's view permission for the pages and exports, ``closing.change_closing`` for the
two actions; a staff member without it gets 403, an agent's user (not staff) never enters the
admin.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, F, FloatField, Q, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import translation
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from prudencial.admin.common import error_messages
from prudencial.closing import exports, trade_network
from prudencial.closing.models import (
    Closing,
    ClosingState,
    CorrectionNotice,
    DegradedRule,
    LeverageResult,
    TradeNetworkUpload,
)
from prudencial.models import Week
from prudencial.templatetags.prudencial_format import decimal_br, short_datetime

#: Seconds a drawn picture stays cached (a done closing never changes: a day is plenty).
PICTURE_CACHE_SECONDS = 24 * 3600
#: Rows listed on the missing/late page; the exports carry them all.
ROWS_SHOWN = 500
STAGES = ("gather", "ship", "compute", "verify", "store")
STAGE_LABELS = {
    "gather": _("reunir"),
    "ship": _("enviar ao enclave"),
    "compute": _("calcular"),
    "verify": _("verificar"),
    "store": _("gravar"),
}


class ReadOnlyMixin:
    """Rows written by the services: staff read them here and act through the services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _seconds(value: Any) -> str:
    try:
        return f"{decimal_br(float(value), 1)} s"
    except (TypeError, ValueError):
        return "—"


def _table(headers: list[Any], rows: list[tuple]) -> str:
    if not rows:
        return "—"
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    cells = "".join("<td>{}</td>" for _header in headers)
    body = format_html_join("", "<tr>" + cells + "</tr>", rows)
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


# --- closings ------------------------------------------------------------------------------------


class CorrectForm(forms.Form):
    why = forms.CharField(
        label=_("motivo da correção"),
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        min_length=10,
        max_length=4000,
        help_text=_("Obrigatório: fica na nota de correção, mostrada onde os resultados aparecem."),
    )


class DegradedForm(forms.Form):
    rule = forms.ChoiceField(label=_("regra degradada"))
    confirm = forms.BooleanField(
        label=_("Entendo que os números serão marcados como obtidos por regra degradada."),
    )

    def __init__(self, *args: Any, rules: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["rule"].choices = rules


def degraded_rules() -> list[tuple[str, str]]:
    """The documented degraded rules (``closing.models.DegradedRule``)."""
    return [(str(value), str(label)) for value, label in DegradedRule.choices]


@admin.register(Closing)
class ClosingAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "week",
        "sequence",
        "state",
        "is_current",
        "progress",
        "network_source",
        "started_by_name",
        "created_at",
        "finished_at",
        "pages",
    )
    list_filter = ("state", "is_current", "network_source", "week")
    list_select_related = ("week", "started_by")
    search_fields = ("=week__code",)
    search_help_text = _("Código exato da semana.")
    ordering = ("-week__code", "-sequence")
    show_full_result_count = False
    actions = ["rerun_correction", "choose_degraded", "restart_failed"]
    fields = (
        "week",
        "sequence",
        "state",
        "is_current",
        "progress",
        "supersedes",
        "started_by",
        "reason",
        "network_source",
        "parameters_version",
        "parameters_sha256",
        "stage_times_table",
        "chunks_table",
        "notices",
        "error_code",
        "error_message",
        "warnings_text",
        "delayed_at",
        "degraded_rule",
        "systemic_table",
        "tracking_table",
        "created_at",
        "finished_at",
        "pages",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .defer("network", "parameters", "network_token", "systemic", "tracking")
        )

    def has_correct_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("closing.run_closing")

    # --- columns ---------------------------------------------------------------------------

    @admin.display(description=_("avisos"))
    def warnings_text(self, obj: Closing) -> str:
        """What the closing went on despite (e.g. verdicts that did not verify, counted missing)."""
        items = [w for w in (obj.warnings or []) if isinstance(w, dict)]
        if not items:
            return "—"
        return format_html_join(
            "", "<p><strong>{}</strong>: {}</p>", ((w.get("code"), w.get("message")) for w in items)
        )

    @admin.display(description=_("progresso"))
    def progress(self, obj: Closing) -> str:
        return gettext("%(done)s de %(total)s agentes") % {
            "done": obj.agents_done,
            "total": obj.agents_total,
        }

    @admin.display(description=_("iniciado por"), ordering="started_by__username")
    def started_by_name(self, obj: Closing) -> str:
        return obj.started_by.get_username() if obj.started_by_id else gettext("agendamento")

    @admin.display(description=_("tempo por etapa"))
    def stage_times_table(self, obj: Closing) -> str:
        times = obj.stage_times or {}
        return _table(
            [STAGE_LABELS[s] for s in STAGES],
            [tuple(_seconds(times.get(s)) for s in STAGES)],
        )

    @admin.display(description=_("lotes ao enclave"))
    def chunks_table(self, obj: Closing) -> str:
        rows = [
            (
                c.index,
                c.get_state_display(),
                len(c.agent_ids or []),
                c.attempts,
                c.address or "—",
                short_datetime(c.done_at) if c.done_at else "—",
            )
            for c in obj.chunks.order_by("index").only(
                "index", "state", "agent_ids", "attempts", "address", "done_at", "closing_id"
            )
        ]
        return _table(
            [
                gettext("lote"),
                gettext("situação"),
                gettext("agentes"),
                gettext("tentativas"),
                gettext("enclave"),
                gettext("concluído em"),
            ],
            rows,
        )

    @admin.display(description=_("notas de correção"))
    def notices(self, obj: Closing) -> str:
        return notices_html(obj)

    @admin.display(description=_("medidas sistêmicas"))
    def systemic_table(self, obj: Closing) -> str:
        return systemic_html(obj)

    @admin.display(description=_("evolução das comunidades (semana anterior → esta)"))
    def tracking_table(self, obj: Closing) -> str:
        return transition_html(obj)

    @admin.display(description=_("páginas"))
    def pages(self, obj: Closing) -> str:
        links = [
            (
                reverse("admin:closing_leverageresult_changelist")
                + f"?closing__id__exact={obj.pk}",
                gettext("resultados"),
            ),
            (reverse("admin:closing_closing_network", args=[obj.pk]), gettext("painel da rede")),
            (
                reverse("admin:closing_closing_communities") + f"?until={obj.week.code}",
                gettext("evolução das comunidades"),
            ),
            (
                reverse("admin:closing_closing_missing", args=[obj.pk]),
                gettext("faltantes e atrasados"),
            ),
            (reverse("admin:closing_closing_export", args=[obj.pk, "xlsx"]), "XLSX"),
            (reverse("admin:closing_closing_export", args=[obj.pk, "csv"]), "CSV"),
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    # --- actions -------------------------------------------------------------------------------

    def _one(self, request: HttpRequest, queryset) -> Closing | None:
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            self.message_user(
                request, gettext("Escolha exatamente um fechamento."), messages.WARNING
            )
            return None
        return chosen[0]

    @admin.action(description=_("Refazer (correção)"), permissions=["correct"])
    def rerun_correction(self, request: HttpRequest, queryset):
        closing = self._one(request, queryset)
        if closing is not None:
            return HttpResponseRedirect(reverse("admin:closing_closing_correct", args=[closing.pk]))
        return None

    @admin.action(
        description=_("Escolher regra degradada (fechamento atrasado)"), permissions=["correct"]
    )
    def choose_degraded(self, request: HttpRequest, queryset):
        closing = self._one(request, queryset)
        if closing is not None:
            return HttpResponseRedirect(
                reverse("admin:closing_closing_degraded", args=[closing.pk])
            )
        return None

    @admin.action(description=_("Iniciar de novo (fechamento com falha)"), permissions=["correct"])
    def restart_failed(self, request: HttpRequest, queryset):
        """A failed closing from the beginning (closing_start); a failed correction is corrected
        again (its page asks why)."""
        closing = self._one(request, queryset)
        if closing is None:
            return None
        if closing.state != ClosingState.FAILED:
            self.message_user(
                request,
                gettext("Só um fechamento com falha pode ser iniciado de novo."),
                messages.WARNING,
            )
            return None
        if closing.sequence != 1:
            return HttpResponseRedirect(reverse("admin:closing_closing_correct", args=[closing.pk]))
        from prudencial.closing import services

        try:
            started = services.closing_start(week=closing.week, by=request.user)
        except ValidationError as exc:
            for line in error_messages(exc):
                self.message_user(request, line, messages.ERROR)
            return None
        self.message_user(
            request,
            gettext("Fechamento %(ref)s iniciado de novo.") % {"ref": started.reference},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:closing_closing_change", args=[started.pk]))

    # --- pages ---------------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/correct/", view(self.correct_view), name="closing_closing_correct"),
            path("<int:pk>/degraded/", view(self.degraded_view), name="closing_closing_degraded"),
            path("<int:pk>/network/", view(self.network_view), name="closing_closing_network"),
            path(
                "<int:pk>/network/<str:kind>.png",
                view(self.picture_view),
                name="closing_closing_picture",
            ),
            path(
                "<int:pk>/network/debtrank/<str:scenario>.png",
                view(self.debtrank_picture_view),
                name="closing_closing_debtrank_picture",
            ),
            path("<int:pk>/missing/", view(self.missing_view), name="closing_closing_missing"),
            path("communities/", view(self.communities_view), name="closing_closing_communities"),
            path(
                "communities/evolution.png",
                view(self.communities_picture_view),
                name="closing_closing_communities_picture",
            ),
            path(
                "<int:pk>/export/<str:file_format>/",
                view(self.export_view),
                name="closing_closing_export",
            ),
            *super().get_urls(),
        ]

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def _require_correct(self, request: HttpRequest) -> None:
        if not (self.has_view_permission(request) and self.has_correct_permission(request)):
            raise PermissionDenied

    def _closing(self, pk: int) -> Closing:
        return get_object_or_404(Closing.objects.select_related("week__parameters"), pk=pk)

    def _context(self, request: HttpRequest, closing: Closing, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "closing": closing,
            "change_url": reverse("admin:closing_closing_change", args=[closing.pk]),
        }

    def correct_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Re-run a week's closing as a correction: asks why, then closing_correct."""
        self._require_correct(request)
        closing = self._closing(pk)
        form = CorrectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            from prudencial.closing import services

            try:
                new = services.closing_correct(
                    week=closing.week, by=request.user, why=form.cleaned_data["why"]
                )
            except ValidationError as exc:
                for line in error_messages(exc):
                    form.add_error(None, line)
            else:
                self.message_user(
                    request,
                    gettext("Correção iniciada: fechamento %(seq)s da semana %(code)s.")
                    % {"seq": new.sequence, "code": closing.week.code},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:closing_closing_change", args=[new.pk]))
        context = {
            **self._context(
                request,
                closing,
                gettext("Refazer o fechamento da semana %(code)s (correção)")
                % {"code": closing.week.code},
            ),
            "form": form,
        }
        return TemplateResponse(request, "admin/closing/correct.html", context)

    def degraded_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """For a delayed closing only: choose one of the documented degraded rules."""
        self._require_correct(request)
        closing = self._closing(pk)
        if closing.state != ClosingState.DELAYED:
            self.message_user(
                request,
                gettext("Só um fechamento atrasado aceita regra degradada (situação: %(state)s).")
                % {"state": closing.get_state_display()},
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse("admin:closing_closing_change", args=[pk]))
        form = DegradedForm(request.POST or None, rules=degraded_rules())
        if request.method == "POST" and form.is_valid():
            from prudencial.closing import services

            try:
                services.closing_choose_degraded(
                    closing=closing, rule=form.cleaned_data["rule"], by=request.user
                )
            except ValidationError as exc:
                for line in error_messages(exc):
                    form.add_error(None, line)
            else:
                self.message_user(
                    request,
                    gettext("Regra degradada escolhida: %(rule)s.")
                    % {"rule": dict(degraded_rules()).get(form.cleaned_data["rule"])},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:closing_closing_change", args=[pk]))
        context = {
            **self._context(
                request,
                closing,
                gettext("Regra degradada para o fechamento da semana %(code)s")
                % {"code": closing.week.code},
            ),
            "form": form,
        }
        return TemplateResponse(request, "admin/closing/degraded.html", context)

    def network_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The network-risk panel: community ranking, network mean, pictures."""
        self._require_view(request)
        closing = self._closing(pk)
        network = closing.network or {}
        communities = exports.community_rows(closing)
        context = {
            **self._context(
                request,
                closing,
                gettext("Risco de rede da semana %(code)s") % {"code": closing.week.code},
            ),
            "communities": communities,
            "n_trading": sum(not c.isolated for c in communities),
            "network_mean": exports.network_mean(closing),
            "summary": {
                k: network.get(k) for k in exports.NETWORK_SUMMARY if network.get(k) is not None
            },
            "source": closing.get_network_source_display(),
            "skipped": network.get("skipped"),
            "pictures": [
                reverse("admin:closing_closing_picture", args=[closing.pk, kind])
                for kind in exports.PICTURES
            ],
            "notices": notices_html(closing),
            "systemic": systemic_html(closing),
            "debtrank_pictures": [
                reverse("admin:closing_closing_debtrank_picture", args=[closing.pk, name])
                for name in _systemic_scenarios(closing)
            ],
            "transition": transition_html(closing),
            "communities_url": reverse("admin:closing_closing_communities")
            + f"?until={closing.week.code}",
        }
        return TemplateResponse(request, "admin/closing/network.html", context)

    def picture_view(self, request: HttpRequest, pk: int, kind: str) -> HttpResponse:
        """A PNG of the panel, drawn once per closing, picture and language, then cached."""
        self._require_view(request)
        if kind not in exports.PICTURES:
            raise Http404
        closing = self._closing(pk)
        lang = "en" if (translation.get_language() or "").startswith("en") else "pt"
        key = f"closing:{closing.pk}:{closing.state}:{kind}:{lang}"
        data = cache.get(key)
        if data is None:
            data = exports.network_png(closing, kind=kind, lang=lang)
            if closing.state == ClosingState.DONE:
                cache.set(key, data, PICTURE_CACHE_SECONDS)
        response = HttpResponse(data, content_type=exports.CONTENT_TYPES["png"])
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def debtrank_picture_view(self, request: HttpRequest, pk: int, scenario: str) -> HttpResponse:
        """The DebtRank picture of one stress scenario (PNG, the request's language), drawn
        only from systemic measures that verify against the signed answer, names of results
        not sent withheld (the staff rule). Not cached: names appear as results are sent."""
        from prudencial.closing import selectors
        from prudencial.closing.signatures import SignatureChecker

        self._require_view(request)
        closing = self._closing(pk)
        if scenario not in _systemic_scenarios(closing):
            raise Http404
        if not SignatureChecker().check_closing(closing).verified:
            return HttpResponse(
                gettext("Assinatura do enclave: NÃO confere — não use estes números."),
                status=409,
                content_type="text/plain; charset=utf-8",
            )
        summary = selectors.systemic_summary(closing, names=selectors.sent_acronyms(closing))
        lang = "en" if (translation.get_language() or "").startswith("en") else "pt"
        data = exports.debtrank_png(
            summary, scenario=scenario, withheld=gettext("(não enviado)"), lang=lang
        )
        response = HttpResponse(data, content_type=exports.CONTENT_TYPES["png"])
        response["Cache-Control"] = "private, no-store"
        return response

    def _tracking_query(self, request: HttpRequest) -> dict[str, Any]:
        """weeks (1..MAX_TRACKING_WEEKS, default 8), until (a week code) and agent from the
        query string; anything else is ignored, a bad value falls back to the default."""
        from prudencial.closing import selectors
        from prudencial.domain.calendar import is_week_code

        try:
            weeks = int(request.GET.get("weeks", selectors.DEFAULT_TRACKING_WEEKS))
        except ValueError:
            weeks = selectors.DEFAULT_TRACKING_WEEKS
        weeks = max(1, min(weeks, selectors.MAX_TRACKING_WEEKS))
        until = request.GET.get("until") or None
        agent = (request.GET.get("agent") or "").strip().upper()[:40] or None
        return {
            "weeks": weeks,
            "until": until if until and is_week_code(until) else None,
            "agent": agent,
        }

    def communities_view(self, request: HttpRequest) -> HttpResponse:
        """The communities of the last N weeks' current closings: the evolution picture, the
        transitions' counts and each agent's history (a week's community shown only when the
        agent sent that week's result)."""
        from urllib.parse import urlencode

        from prudencial.closing import selectors

        self._require_view(request)
        query = self._tracking_query(request)
        found = selectors.community_tracking(**query)
        histories = sorted(found["agents"].items())
        picture = {k: v for k, v in query.items() if k != "agent" and v is not None}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Evolução das comunidades"),
            "query": query,
            "max_weeks": selectors.MAX_TRACKING_WEEKS,
            "tracking": found["tracking"],
            "counts": [
                (c["from"], c["to"], [c.get(k, 0) for k in EVENT_KINDS])
                for c in found["tracking"].get("counts", [])
            ],
            "event_labels": [EVENT_LABELS[k] for k in EVENT_KINDS],
            "closings": found["closings"],
            "unverified": found["unverified"],
            "weeks": found["tracking"].get("weeks", []),
            "histories": histories[:ROWS_SHOWN],
            "histories_total": len(histories),
            "picture": reverse("admin:closing_closing_communities_picture")
            + ("?" + urlencode(picture) if picture else ""),
        }
        return TemplateResponse(request, "admin/closing/communities.html", context)

    def communities_picture_view(self, request: HttpRequest) -> HttpResponse:
        """The community-evolution picture (PNG, pt-BR or English by the request's language),
        drawn from the same tracking as the page."""
        from prudencial.closing import selectors

        self._require_view(request)
        query = dict(self._tracking_query(request), agent=None)
        lang = "en" if (translation.get_language() or "").startswith("en") else "pt"
        tracking = selectors.community_tracking(**query)["tracking"]
        data = exports.evolution_png(tracking, lang=lang)
        response = HttpResponse(data, content_type=exports.CONTENT_TYPES["png"])
        response["Cache-Control"] = "private, max-age=300"
        return response

    def missing_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Agents missing (no accepted portfolio) and late (result neither sent nor cancelled
        past the publication time)."""
        self._require_view(request)
        closing = self._closing(pk)
        groups = exports.missing_and_late(closing=closing)
        context = {
            **self._context(
                request,
                closing,
                gettext("Agentes faltantes e atrasados na semana %(code)s")
                % {"code": closing.week.code},
            ),
            "groups": [
                (
                    gettext("Faltantes (sem portfólio aceito)"),
                    groups["missing"][:ROWS_SHOWN],
                    len(groups["missing"]),
                ),
                (
                    gettext("Atrasados (resultado não enviado nem cancelado após a publicação)"),
                    groups["late"][:ROWS_SHOWN],
                    len(groups["late"]),
                ),
                (
                    gettext("Aguardando o agente (antes da publicação)"),
                    groups["pending"][:ROWS_SHOWN],
                    len(groups["pending"]),
                ),
            ],
            "publication": exports.publication_time(closing.week),
        }
        return TemplateResponse(request, "admin/closing/missing.html", context)

    def export_view(self, request: HttpRequest, pk: int, file_format: str) -> HttpResponse:
        """The week's figures as CSV or XLSX (sent results' figures only)."""
        self._require_view(request)
        if file_format not in exports.FORMATS:
            raise Http404
        closing = self._closing(pk)
        data = exports.export(closing=closing, user=request.user, file_format=file_format)
        response = HttpResponse(data, content_type=exports.CONTENT_TYPES[file_format])
        name = exports.filename(closing=closing, file_format=file_format)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


EVENT_KINDS = ("continuation", "split", "merge", "birth", "death")
EVENT_LABELS = {
    "continuation": _("continuações"),
    "split": _("divisões"),
    "merge": _("fusões"),
    "birth": _("nascimentos"),
    "death": _("extinções"),
}


def _fraction(value: Any, digits: int = 4) -> str:
    try:
        return decimal_br(float(value), digits)
    except (TypeError, ValueError):
        return "—"


def _systemic_scenarios(closing: Closing) -> list[str]:
    """The stress scenarios of the closing's systemic measures (none when skipped or absent)."""
    systemic = closing.systemic or {}
    if "skipped" in systemic:
        return []
    return [str(name) for name in (systemic.get("scenarios") or {})]


def _signature_line(signature) -> str:
    if signature.verified:
        return format_html("<p>{}</p>", gettext("Assinatura do enclave: confere."))
    if signature.status == "unsigned":
        return format_html("<p>{}</p>", gettext("Sem resposta assinada da rede."))
    return format_html(
        '<p class="errornote">{} {}</p>',
        gettext("Assinatura do enclave: NÃO confere — não use estes números."),
        signature.reason,
    )


def systemic_html(closing: Closing) -> str:
    """The closing's systemic measures per stress scenario, checked against the signed
    answer; an agent whose result was not sent is not named (staff rule)."""
    from prudencial.closing import selectors
    from prudencial.closing.signatures import SignatureChecker

    if not closing.systemic:
        return "—"
    if "skipped" in closing.systemic:
        return format_html(
            "{}: {}", gettext("Não calculadas"), closing.systemic.get("skipped") or ""
        )
    signature = SignatureChecker().check_closing(closing)
    summary = selectors.systemic_summary(closing, names=selectors.sent_acronyms(closing))
    withheld = gettext("(não enviado)")

    def name(acronym: Any) -> str:
        return withheld if acronym is None else str(acronym)

    rows = []
    for key, s in (summary.get("scenarios") or {}).items():
        dr, en, c2 = s.get("debtrank") or {}, s.get("eisenberg_noe") or {}, s.get("cover2") or {}
        quantile = s.get("quantile")
        rows.append(
            (
                key if quantile is None else f"{key} (q = {_fraction(quantile, 2)})",
                _fraction(dr.get("system_initial")),
                _fraction(dr.get("system_final")),
                _fraction(dr.get("system_propagated")),
                f"{dr.get('distressed', '—')} / {dr.get('defaulted', '—')}",
                f"{en.get('defaults', '—')} ({en.get('fundamental', '—')} + "
                f"{en.get('contagious', '—')})",
                _fraction(en.get("unpaid_share")),
                " + ".join(name(a) for a in c2.get("agents") or []) or "—",
                _fraction(c2.get("loss"))
                + ("" if c2.get("certified") else " ≤ " + _fraction(c2.get("bound"))),
                ", ".join(
                    f"{name(t.get('agent'))} {_fraction(t.get('impact'))}"
                    for t in (dr.get("top") or [])[:5]
                )
                or "—",
            )
        )
    table = _table(
        [
            gettext("cenário"),
            gettext("DebtRank: choque inicial"),
            gettext("DebtRank: final"),
            gettext("DebtRank: propagado"),
            gettext("agentes em estresse / em default"),
            gettext("defaults Eisenberg–Noe (fundamentais + por contágio)"),
            gettext("parcela não paga"),
            gettext("par cover-2"),
            gettext("perda cover-2"),
            gettext("maior impacto DebtRank"),
        ],
        rows,
    )
    note = format_html(
        '<p class="help">{}</p>',
        gettext(
            "Frações do capital do sistema (capital = %(fraction)s × custo esperado de cada "
            "agente). Agentes cujo resultado não foi enviado não são nomeados."
        )
        % {"fraction": _fraction(summary.get("capital_fraction"), 2)},
    )
    return format_html("{}{}{}", _signature_line(signature), table, note)


def transition_html(closing: Closing) -> str:
    """The enclave's signed transition from the previous week's communities to this week's."""
    from prudencial.closing.signatures import SignatureChecker

    tracking = closing.tracking or {}
    if not tracking:
        return "—"
    if "skipped" in tracking:
        return format_html("{}: {}", gettext("Não calculada"), tracking.get("skipped") or "")
    counts = tracking.get("counts") or {}
    communities = tracking.get("communities") or {}
    agents = tracking.get("agents") or {}
    table = _table(
        [
            gettext("de → para"),
            gettext("comunidades (antes / agora)"),
            gettext("agentes em comunidades (antes / agora / em ambas)"),
            *[EVENT_LABELS[k] for k in EVENT_KINDS],
        ],
        [
            (
                f"{tracking.get('from')} → {tracking.get('to')}",
                f"{communities.get('previous', '—')} / {communities.get('current', '—')}",
                f"{agents.get('previous', '—')} / {agents.get('current', '—')} / "
                f"{agents.get('stayed', '—')}",
                *[counts.get(k, 0) for k in EVENT_KINDS],
            )
        ],
    )
    return format_html("{}{}", _signature_line(SignatureChecker().check_closing(closing)), table)


def notices_html(closing: Closing) -> str:
    """The correction notices of this closing and of the ones that superseded it."""
    notices = list(
        CorrectionNotice.objects.filter(Q(closing=closing) | Q(supersedes=closing))
        .select_related("closing", "supersedes", "by")
        .order_by("at")
    )
    if not notices:
        return "—"
    rows = [
        (
            short_datetime(n.at),
            f"{n.supersedes.sequence} → {n.closing.sequence}",
            n.by.get_username() if n.by_id else "—",
            n.why,
            changes_text(n.what_changed),
        )
        for n in notices
    ]
    return _table(
        [
            gettext("quando"),
            gettext("fechamento"),
            gettext("por"),
            gettext("motivo"),
            gettext("o que mudou"),
        ],
        rows,
    )


def changes_text(what_changed: Any) -> str:
    """``[{field, before, after}]`` (or submission changes) as one line each."""
    items = (
        what_changed if isinstance(what_changed, list) else (what_changed or {}).get("changes", [])
    )
    lines = []
    for item in items or []:
        if isinstance(item, dict) and "field" in item:
            lines.append(f"{item.get('field')}: {item.get('before')} → {item.get('after')}")
        else:
            lines.append(str(item))
    return "; ".join(lines) or "—"


# --- results -------------------------------------------------------------------------------------


class WeekFilter(admin.SimpleListFilter):
    title = _("semana")
    parameter_name = "week"

    def lookups(self, request, model_admin):
        codes = Week.objects.filter(closings__isnull=False).distinct().order_by("-code")
        return [(c, c) for c in codes.values_list("code", flat=True)[:60]]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(closing__week__code=value) if value else queryset


class CurrentClosingFilter(admin.SimpleListFilter):
    """By default only the results of each week's current closing (not superseded ones)."""

    title = _("fechamento")
    parameter_name = "current"

    def lookups(self, request, model_admin):
        return [("all", _("todos, inclusive substituídos"))]

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": _("vigente de cada semana"),
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        if self.value() == "all" or request.GET.get("closing__id__exact"):
            return queryset
        return queryset.filter(closing__is_current=True)


class DecisionFilter(admin.SimpleListFilter):
    title = _("decisão do agente")
    parameter_name = "decision"

    def lookups(self, request, model_admin):
        return [
            (exports.DECISION_PENDING, _("pendente")),
            (exports.DECISION_SENT, _("enviado")),
            (exports.DECISION_CANCELLED, _("cancelado")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == exports.DECISION_PENDING:
            return queryset.filter(latest_action__isnull=True)
        if value in (exports.DECISION_SENT, exports.DECISION_CANCELLED):
            return queryset.filter(latest_action=value)
        return queryset


class AboveBandsFilter(admin.SimpleListFilter):
    """Sent results in an FA band or above a concentration limit of their week (the rule of
    prudencial.domain.alerts). Unsent results are never matched: a filter on their figures
    would tell staff something about figures they may not see."""

    title = _("faixas e limites (resultados enviados)")
    parameter_name = "bands"

    def lookups(self, request, model_admin):
        return [("above", _("em faixa do FA ou acima de limite")), ("within", _("dentro"))]

    def queryset(self, request, queryset):
        value = self.value()
        if value not in ("above", "within"):
            return queryset
        sent = queryset.filter(latest_action=exports.DECISION_SENT)
        above = Q(pk__in=[])
        weeks = Week.objects.filter(pk__in=sent.values("closing__week_id")).select_related(
            "parameters"
        )
        for week in weeks:
            rule = exports.alert_parameters(week)
            lowest = min(b.start for b in rule.fa_bands)
            above |= Q(closing__week_id=week.pk) & (
                Q(fa__gte=lowest)
                | Q(concentration_largest__gt=rule.concentration_limit_largest)
                | Q(concentration_top_five__gt=rule.concentration_limit_top_five)
            )
        return sent.filter(above) if value == "above" else sent.exclude(above)


class LeverageResultChangeList(ChangeList):
    """Attaches to each result of the page what the user may see of it (``exports.visible``)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        for result in self.result_list:
            result._visible_figures = exports.visible(result, request.user)


@admin.register(LeverageResult)
class LeverageResultAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "week_code",
        "agent_acronym",
        "agent_class",
        "status",
        "decision",
        "fa_shown",
        "fa_risk_shown",
        "concentration_shown",
        "bands",
        "closing_link",
    )
    list_filter = (
        CurrentClosingFilter,
        WeekFilter,
        "status",
        DecisionFilter,
        AboveBandsFilter,
        "agent__agent_class",
    )
    search_fields = ("=agent__acronym",)
    search_help_text = _("Sigla exata do agente.")
    list_select_related = ("agent", "closing__week__parameters")
    list_per_page = 100
    show_full_result_count = False
    ordering = ("closing__week__code", "agent__acronym")
    fields = (
        "week_code",
        "closing_link",
        "agent_acronym",
        "agent_class",
        "status",
        "decision",
        "figures_table",
        "bands",
        "error_text",
        "notices",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        qs = exports.annotate_decisions(
            super().get_queryset(request).defer("breakdown_jwe", "var_share_by_bucket", "error")
        )
        # Sorting by FA reads sent results' figures only: unsent ones sort as "no figure".
        return qs.annotate(
            visible_fa=Case(
                When(latest_action=exports.DECISION_SENT, then=F("fa")),
                default=None,
                output_field=FloatField(),
            )
        )

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj = exports.annotate_decisions(
                LeverageResult.objects.filter(pk=obj.pk).select_related(
                    "agent", "closing__week__parameters"
                )
            ).first()
            obj._visible_figures = exports.visible(obj, request.user)
        return obj

    def get_changelist(self, request, **kwargs):
        return LeverageResultChangeList

    def _visible(self, obj: LeverageResult) -> dict[str, Any] | None:
        """What the request's user may see, attached by the change list or get_object; an
        object nobody attached figures to shows none (fail closed)."""
        return getattr(obj, "_visible_figures", None)

    @admin.display(description=_("semana"), ordering="closing__week__code")
    def week_code(self, obj: LeverageResult) -> str:
        return obj.closing.week.code

    @admin.display(description=_("fechamento"))
    def closing_link(self, obj: LeverageResult) -> str:
        url = reverse("admin:closing_closing_change", args=[obj.closing_id])
        label = gettext("nº %(seq)s") % {"seq": obj.closing.sequence}
        if not obj.closing.is_current:
            label += " " + gettext("(substituído)")
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description=_("agente"), ordering="agent__acronym")
    def agent_acronym(self, obj: LeverageResult) -> str:
        return obj.agent.acronym

    @admin.display(description=_("classe"), ordering="agent__agent_class")
    def agent_class(self, obj: LeverageResult) -> str:
        return obj.agent.get_agent_class_display()

    @admin.display(description=_("decisão"), ordering="latest_action")
    def decision(self, obj: LeverageResult) -> str:
        return str(exports.decision_label(exports.decision_of(obj)))

    def _figure(self, obj: LeverageResult, name: str, digits: int = 4) -> str:
        figures = self._visible(obj)
        if figures is None:
            return gettext("não enviado")
        value = figures.get(name)
        return "—" if value is None else decimal_br(float(value), digits)

    @admin.display(description=_("FA"), ordering=F("visible_fa").desc(nulls_last=True))
    def fa_shown(self, obj: LeverageResult) -> str:
        return self._figure(obj, "fa")

    @admin.display(description=_("FA de risco"))
    def fa_risk_shown(self, obj: LeverageResult) -> str:
        return self._figure(obj, "fa_risk")

    @admin.display(description=_("concentração (maior / 5 maiores)"))
    def concentration_shown(self, obj: LeverageResult) -> str:
        figures = self._visible(obj)
        if figures is None:
            return gettext("não enviado")
        return " / ".join(
            "—" if figures.get(n) is None else decimal_br(float(figures[n]), 4)
            for n in ("concentration_largest", "concentration_top_five")
        )

    @admin.display(description=_("faixas e limites"))
    def bands(self, obj: LeverageResult) -> str:
        figures = self._visible(obj)
        if figures is None:
            return "—"
        found = exports.breaches_of(figures, exports.alert_parameters(obj.closing.week))
        return exports.breach_text(found) or gettext("dentro")

    @admin.display(description=_("números do resultado"))
    def figures_table(self, obj: LeverageResult) -> str:
        figures = self._visible(obj)
        if figures is None:
            return gettext(
                "O resultado existe; seus números aparecem quando o agente o enviar à CCEE."
            )
        network = figures.get("network") or {}
        rows = [
            (
                exports.figure_label(n),
                "—" if figures.get(n) is None else decimal_br(float(figures[n]), 6),
            )
            for n in exports.RESULT_FIGURES
        ] + [
            (exports.figure_label(n), decimal_br(float(network[n]), 6))
            for n in ("cvar_intrinsic", "cvar_propagated", "cvar_total")
            if network.get(n) is not None
        ]
        if network.get("community_rank") is not None:
            rows.append(
                (
                    gettext("posição na rede"),
                    gettext("%(k)s de %(n)s")
                    % {"k": network["community_rank"], "n": network.get("n_communities", "?")},
                )
            )
        for scenario, values in sorted((figures.get("systemic") or {}).items()):
            rows += [
                (
                    f"{exports.figure_label(n)} ({scenario})",
                    "—" if values.get(n) is None else decimal_br(float(values[n]), 4),
                )
                for n in exports.SYSTEMIC_AGENT_FIGURES
            ]
        return _table([gettext("número"), gettext("valor")], rows)

    @admin.display(description=_("erro"))
    def error_text(self, obj: LeverageResult) -> str:
        error = LeverageResult.objects.filter(pk=obj.pk).values_list("error", flat=True).first()
        if not error:
            return "—"
        return f"{error.get('code', '')}: {error.get('message', '')}"

    @admin.display(description=_("notas de correção"))
    def notices(self, obj: LeverageResult) -> str:
        return notices_html(obj.closing)


# --- correction notices and trade network uploads ----------------------------------------------


@admin.register(CorrectionNotice)
class CorrectionNoticeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("week_code", "sequences", "by", "at", "why")
    list_select_related = ("closing__week", "supersedes", "by")
    ordering = ("-at",)
    fields = ("week_code", "sequences", "by", "at", "why", "changes")
    readonly_fields = fields

    @admin.display(description=_("semana"), ordering="closing__week__code")
    def week_code(self, obj: CorrectionNotice) -> str:
        return obj.closing.week.code

    @admin.display(description=_("fechamento"))
    def sequences(self, obj: CorrectionNotice) -> str:
        return f"{obj.supersedes.sequence} → {obj.closing.sequence}"

    @admin.display(description=_("o que mudou"))
    def changes(self, obj: CorrectionNotice) -> str:
        return changes_text(obj.what_changed)


@admin.register(TradeNetworkUpload)
class TradeNetworkUploadAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "week",
        "submitted_by",
        "submitted_at",
        "size_bytes",
        "receipt_short",
        "correction",
        "part_set",
        "part_index",
        "part_count",
        "status",
        "contracts",
    )
    list_filter = ("week", "correction")
    list_select_related = ("week", "submitted_by")
    search_fields = ("=receipt", "=part_set")
    ordering = ("-submitted_at",)
    fields = (
        "week",
        "submitted_by",
        "submitted_at",
        "size_bytes",
        "receipt",
        "correction",
        "part_set",
        "part_index",
        "part_count",
        "status",
        "verified",
        "contracts",
        "errors_table",
    )
    readonly_fields = fields
    exclude = ("envelope",)

    def _checked(self, obj: TradeNetworkUpload):
        checked = getattr(obj, "_checked", None)
        if checked is None:
            full = TradeNetworkUpload.objects.select_related("week", "verdict").get(pk=obj.pk)
            checked = obj._checked = trade_network.checked_verdict(full)
        return checked

    @admin.display(description=_("situação (verificada)"))
    def status(self, obj: TradeNetworkUpload) -> str:
        return str(trade_network.status_label(self._checked(obj).status))

    @admin.display(description=_("assinatura do enclave verificada"), boolean=True)
    def verified(self, obj: TradeNetworkUpload) -> bool:
        return self._checked(obj).verified

    @admin.display(description=_("contratos"))
    def contracts(self, obj: TradeNetworkUpload) -> Any:
        count = self._checked(obj).contracts
        return "—" if count is None else count

    @admin.display(description=_("erros"))
    def errors_table(self, obj: TradeNetworkUpload) -> str:
        from prudencial.submissions.admin import errors_table

        return errors_table(self._checked(obj).errors)

    @admin.display(description=_("recibo"))
    def receipt_short(self, obj: TradeNetworkUpload) -> str:
        return format_html('<span title="{}">{}…</span>', obj.receipt, obj.receipt[:12])

    def get_queryset(self, request):
        return super().get_queryset(request).defer("envelope")
