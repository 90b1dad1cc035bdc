"""Staff exports and pictures of a week's closing: the figures as CSV or XLSX, and the
network-risk pictures as PNG.

The rule of the results applies here as in the admin: staff see a result's figures only once
the agent has sent it (``LeverageDecision`` "sent" is its latest decision); of any other result
they see that it exists and its status, never a figure. One reader (``figure_rows``) serves the
admin's list page, its downloads and the exports; it asks ``visible`` for every figure.

The pictures are drawn on the host from what the enclave disclosed and the closing stored
(``Closing.network``, ``CommunityResult``): per community only, so no agent's unsent figure is
drawn (a community's mean is the enclave's published aggregate).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from prudencial.domain import alerts as alert_rules
from prudencial.domain.identifiers import format_cnpj
from prudencial.models import AgentClass
from prudencial.submissions.exports import csv_safe

FORMATS = ("csv", "xlsx")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "png": "image/png",
}
DECISION_PENDING = "pending"
DECISION_SENT = "sent"
DECISION_CANCELLED = "cancelled"
#: The result's own figures (LeverageResult fields), shown once sent.
RESULT_FIGURES = (
    "fa",
    "fa_risk",
    "res_fin_over_pla",
    "concentration_largest",
    "concentration_top_five",
)
#: The agent's published network figures (LeverageResult.network keys), shown once sent.
NETWORK_FIGURES = (
    "cvar_intrinsic",
    "cvar_propagated",
    "cvar_total",
    "community",
    "community_rank",
    "n_communities",
)

#: The agent's systemic figures per stress scenario (LeverageResult.systemic), shown once sent.
SYSTEMIC_AGENT_FIGURES = (
    "debtrank_impact",
    "debtrank_distress",
    "en_recovery",
    "en_default_wave",
    "en_credit_loss_over_capital",
)

#: The week's network summary shown to staff and agents (keys of Closing.network).
NETWORK_SUMMARY = ("n_agents", "n_communities", "n_propagators", "modularity", "n_scenarios")

# --- the rule ------------------------------------------------------------------------------------


def decision_of(result) -> str:
    """The result's current decision: its latest LeverageDecision's action, else pending.
    ``result.latest_action`` when the queryset annotated it (one query for a page)."""
    if hasattr(result, "latest_action"):
        return result.latest_action or DECISION_PENDING
    latest = result.decisions.order_by("-at", "-pk").values_list("action", flat=True).first()
    return latest or DECISION_PENDING


def visible(result, user) -> dict[str, Any] | None:
    """The figures of ``result`` that ``user`` (CCEE staff) may see: all of them once the agent
    sent it, else None (the result exists; its figures stay unseen)."""
    if decision_of(result) != DECISION_SENT:
        return None
    return figures_of(result)


def figures_of(result) -> dict[str, Any]:
    """Every published figure of a result (the ratios, its network indicators and its
    systemic figures per stress scenario)."""
    figures = {name: getattr(result, name) for name in RESULT_FIGURES}
    figures["network"] = dict(result.network or {})
    figures["systemic"] = dict(result.systemic or {})
    return figures


# --- the bands -----------------------------------------------------------------------------------


def alert_parameters(week) -> alert_rules.AlertParameters:
    """The week's band and limit rule (prudencial.services.parameters.alert_parameters over its
    RiskParameters; the domain's defaults for a week without parameters)."""
    from prudencial.services.parameters import alert_parameters as week_alert_parameters

    parameters = getattr(week, "parameters", None)
    if parameters is None:
        return alert_rules.check_alert_parameters({})
    return week_alert_parameters(parameters)


def breaches_of(figures: Mapping[str, Any] | None, params) -> list[alert_rules.Breach]:
    if not figures:
        return []
    return alert_rules.breaches(figures, params)


def breach_text(breaches: Iterable[alert_rules.Breach]) -> str:
    parts = []
    for b in breaches:
        if b.figure == alert_rules.FIGURE_FA:
            parts.append(
                _("FA na faixa %(band)s (≥ %(start)s)")
                % {"band": b.band, "start": _num(b.threshold)}
            )
        else:
            parts.append(
                _("%(figure)s acima do limite %(limit)s")
                % {"figure": figure_label(b.figure), "limit": _num(b.threshold)}
            )
    return "; ".join(parts)


def figure_label(name: str) -> str:
    return {
        "fa": _("FA"),
        "fa_risk": _("FA de risco"),
        "res_fin_over_pla": _("RES_FIN / PLA"),
        "concentration_largest": _("concentração na maior contraparte"),
        "concentration_top_five": _("concentração nas cinco maiores"),
        "cvar_intrinsic": _("CVaR intrínseco"),
        "cvar_propagated": _("CVaR propagado"),
        "cvar_total": _("CVaR total"),
        "debtrank_impact": _("impacto DebtRank"),
        "debtrank_distress": _("estresse DebtRank"),
        "en_recovery": _("recuperação Eisenberg–Noe"),
        "en_default_wave": _("onda de default Eisenberg–Noe"),
        "en_credit_loss_over_capital": _("perda de crédito / capital"),
    }.get(name, name)


def _num(value: float, digits: int = 4) -> str:
    from prudencial.templatetags.prudencial_format import decimal_br

    return decimal_br(value, digits)


# --- the rows ------------------------------------------------------------------------------------


@dataclass
class FigureRow:
    """One agent's line of a closing: registry data, status and decision always; figures only
    when visible (``figures`` None otherwise)."""

    result_id: int
    acronym: str
    cnpj: str
    legal_name: str
    agent_class: str
    status: str
    status_label: str
    decision: str
    figures: dict[str, Any] | None
    breaches: list[alert_rules.Breach] = field(default_factory=list)

    @property
    def agent_class_label(self) -> str:
        return _choice(AgentClass, self.agent_class)

    @property
    def sent(self) -> bool:
        return self.figures is not None

    def figure(self, name: str) -> Any:
        if self.figures is None:
            return None
        if name in NETWORK_FIGURES:
            return (self.figures.get("network") or {}).get(name)
        return self.figures.get(name)


def _choice(choices, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def status_label(status: str, decision: str) -> str:
    from prudencial.closing.models import ResultStatus

    return _choice(ResultStatus, status)


def decision_label(decision: str) -> str:
    return {
        DECISION_PENDING: _("pendente (o agente não enviou)"),
        DECISION_SENT: _("enviado à CCEE"),
        DECISION_CANCELLED: _("cancelado pelo agente"),
    }.get(decision, decision)


def annotate_decisions(queryset):
    """The queryset with ``latest_action`` (the latest LeverageDecision's action, or None)."""
    from django.db.models import OuterRef, Subquery

    from prudencial.closing.models import LeverageDecision

    latest = LeverageDecision.objects.filter(result=OuterRef("pk")).order_by("-at", "-pk")
    return queryset.annotate(latest_action=Subquery(latest.values("action")[:1]))


def figure_rows(*, closing, user) -> list[FigureRow]:
    """Every result of a closing, by acronym, with what ``user`` may see of it."""
    from prudencial.closing.models import LeverageResult

    params = alert_parameters(closing.week)
    results = annotate_decisions(
        LeverageResult.objects.filter(closing=closing)
        .select_related("agent", "closing__week")
        .defer("breakdown_jwe")
        .order_by("agent__acronym")
    )
    rows = []
    for result in results:
        figures = visible(result, user)
        decision = decision_of(result)
        rows.append(
            FigureRow(
                result_id=result.pk,
                acronym=result.agent.acronym,
                cnpj=format_cnpj(result.agent.cnpj),
                legal_name=result.agent.legal_name,
                agent_class=result.agent.agent_class,
                status=result.status,
                status_label=status_label(result.status, decision),
                decision=decision,
                figures=figures,
                breaches=breaches_of(figures, params),
            )
        )
    return rows


def headers() -> list[str]:
    return [
        _("Sigla"),
        _("CNPJ"),
        _("Razão social"),
        _("Classe"),
        _("Situação do resultado"),
        _("Decisão do agente"),
        _("FA"),
        _("FA de risco"),
        _("RES_FIN / PLA"),
        _("Concentração na maior contraparte"),
        _("Concentração nas cinco maiores"),
        _("CVaR intrínseco"),
        _("CVaR propagado"),
        _("CVaR total"),
        _("Comunidade"),
        _("Posição na rede"),
        _("Faixas e limites"),
    ]


def _position(row: FigureRow) -> str:
    rank, total = row.figure("community_rank"), row.figure("n_communities")
    if rank is None:
        return ""
    return _("%(k)s de %(n)s") % {"k": rank, "n": total if total is not None else "?"}


def _values(row: FigureRow, *, text: bool) -> list[Any]:
    """The row's cells; figures are numbers (XLSX) or pt-BR text (CSV), blank when unseen."""

    def number(name: str) -> Any:
        value = row.figure(name)
        if value is None:
            return ""
        return _num(float(value), 6) if text else float(value)

    community = row.figure("community")
    return [
        row.acronym,
        row.cnpj,
        row.legal_name,
        row.agent_class_label,
        row.status_label,
        str(decision_label(row.decision)),
        *(number(n) for n in RESULT_FIGURES),
        *(number(n) for n in ("cvar_intrinsic", "cvar_propagated", "cvar_total")),
        "" if community is None else str(community),
        _position(row),
        breach_text(row.breaches),
    ]


def csv_lines(rows: Iterable[FigureRow]) -> Iterator[str]:
    """UTF-8 with a BOM, ``;`` separated (Excel in pt-BR); no cell is ever a formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    buffer.write("\ufeff")
    for values in (headers(), *(_values(r, text=True) for r in rows)):
        writer.writerow([csv_safe(v) if isinstance(v, str) else v for v in values])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def write_xlsx(rows: Iterable[FigureRow], out: IO[bytes], *, closing) -> None:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(_("Resultados %(code)s") % {"code": closing.week.code})
    widths = (12, 20, 40, 18, 22, 26, 10, 10, 12, 14, 14, 12, 12, 12, 11, 12, 40)
    for index, width in enumerate(widths):
        ws.column_dimensions[_column(index)].width = width
    ws.freeze_panes = "A2"
    header = []
    for title in headers():
        cell = WriteOnlyCell(ws, value=title)
        cell.font = Font(bold=True)
        header.append(cell)
    ws.append(header)
    for row in rows:
        ws.append([_cell(ws, value) for value in _values(row, text=False)])
    notes = wb.create_sheet(_("Notas"))
    for line in notes_lines(closing):
        notes.append([_cell(notes, line)])
    wb.save(out)


def notes_lines(closing) -> list[str]:
    """What the file is: the week, the closing, its correction notice, the rule of figures."""
    lines = [
        _("Semana %(code)s, fechamento %(seq)s (%(state)s).")
        % {
            "code": closing.week.code,
            "seq": closing.sequence,
            "state": closing.get_state_display(),
        },
        _(
            "Os números de um resultado aparecem só depois que o agente o envia à CCEE; os "
            "demais resultados mostram apenas a situação."
        ),
    ]
    notice = getattr(closing, "correction_notice", None) if _has_notice(closing) else None
    if notice is not None:
        lines.append(
            _("Correção do fechamento %(prev)s: %(why)s")
            % {"prev": notice.supersedes.sequence, "why": notice.why}
        )
    return lines


def _has_notice(closing) -> bool:
    from django.core.exceptions import ObjectDoesNotExist

    try:
        return closing.correction_notice is not None
    except (ObjectDoesNotExist, AttributeError):
        return False


def _column(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def _cell(ws, value: Any) -> WriteOnlyCell:
    """Strings are always string cells (never a formula); numbers stay numbers."""
    cell = WriteOnlyCell(ws, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
    return cell


def export(*, closing, user, file_format: str) -> bytes:
    """The whole file of a closing's figures as ``user`` may see them."""
    if file_format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    rows = figure_rows(closing=closing, user=user)
    if file_format == "csv":
        return "".join(csv_lines(rows)).encode("utf-8")
    out = io.BytesIO()
    write_xlsx(rows, out, closing=closing)
    return out.getvalue()


def filename(*, closing, file_format: str) -> str:
    return f"resultados_{closing.week.code}_f{closing.sequence}.{file_format}"


# --- missing and late agents ---------------------------------------------------------------------


def publication_time(week):
    """When the week's results are published: deadline + CLOSING_PUBLICATION_DELAY_HOURS."""
    from datetime import timedelta

    hours = float(getattr(settings, "CLOSING_PUBLICATION_DELAY_HOURS", 48))
    return week.deadline + timedelta(hours=hours)


def missing_and_late(*, closing, now=None) -> dict[str, list[FigureRow]]:
    """``missing``: eligible agents with no accepted portfolio (result status missing);
    ``late``: computed results the agent has neither sent nor cancelled once the publication
    time has passed (before it they are ``pending``). No figure in either list."""
    from django.utils import timezone

    rows = figure_rows(closing=closing, user=None)
    due = publication_time(closing.week) <= (now or timezone.now())
    out: dict[str, list[FigureRow]] = {"missing": [], "late": [], "pending": []}
    for row in rows:
        row.figures, row.breaches = None, []
        if row.status == "missing":
            out["missing"].append(row)
        elif row.status in ("computed", "no_fa") and row.decision == DECISION_PENDING:
            out["late" if due else "pending"].append(row)
    return out


# --- pictures --------------------------------------------------------------------------------------


def community_rows(closing) -> list[Any]:
    from prudencial.closing.models import CommunityResult

    return list(CommunityResult.objects.filter(closing=closing).order_by("rank", "community"))


PICTURES = ("ranking", "sizes")


def network_png(closing, *, kind: str, lang: str = "pt") -> bytes:
    """A network-risk picture of the closing, PNG: ``ranking`` (each community's mean
    propagated, intrinsic and total CVaR by rank) or ``sizes`` (members and propagators by
    rank). Drawn with prudencial.risk_tools.plots' labels and number formats."""
    if kind not in PICTURES:
        raise ValueError(f"kind must be one of {', '.join(PICTURES)}")
    from prudencial.risk_tools import plots  # matplotlib: imported only when drawing

    rows = community_rows(closing)
    fig = (_ranking_figure if kind == "ranking" else _sizes_figure)(plots, rows, closing, lang)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    plots.plt.close(fig)
    return out.getvalue()


def evolution_png(tracking: Mapping[str, Any], *, lang: str = "pt") -> bytes:
    """The community-evolution picture (prudencial.risk_tools.plots.plot_community_evolution)
    of a ``selectors.community_tracking`` answer's aggregates, PNG: per community and lineage,
    never an agent."""
    from prudencial.risk_tools import plots  # matplotlib: imported only when drawing

    fig = plots.plot_community_evolution(dict(tracking), lang="en" if lang == "en" else "pt")
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    plots.plt.close(fig)
    return out.getvalue()


def debtrank_labels(systemic: Mapping[str, Any], withheld: str) -> dict[str, Any]:
    """A systemic summary as staff may see it (``selectors.systemic_summary``: names withheld as
    None) with every withheld name in DebtRank's top list drawn as ``withheld`` and a number,
    so two withheld agents never share a bar, and as ``withheld`` alone in the cover-2 pair
    (whether it is one of the bars is not known here); no acronym is guessed."""
    count = 0

    def label(acronym: Any) -> str:
        nonlocal count
        if acronym is not None:
            return str(acronym)
        count += 1
        return f"{withheld} {count}"

    out = dict(systemic)
    scenarios = {}
    for name, raw in (systemic.get("scenarios") or {}).items():
        scenario = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
        debtrank, cover2 = scenario.get("debtrank") or {}, scenario.get("cover2") or {}
        count = 0  # numbered per scenario, as each picture shows one
        if "top" in debtrank:
            debtrank["top"] = [{**t, "agent": label(t.get("agent"))} for t in debtrank["top"]]
        if cover2.get("agents"):
            cover2["agents"] = [withheld if a is None else str(a) for a in cover2["agents"]]
        scenarios[name] = scenario
    out["scenarios"] = scenarios
    out.pop("agents", None)  # per-agent rows are not part of this picture
    return out


def debtrank_png(
    systemic: Mapping[str, Any], *, scenario: str, withheld: str, lang: str = "pt"
) -> bytes:
    """The DebtRank picture (prudencial.risk_tools.plots.plot_debtrank) of one stress scenario
    of a closing's systemic summary, PNG: the largest impacts with the cover-2 pair, and the
    system's initial and propagated losses per scenario, with Eisenberg–Noe's defaults."""
    from prudencial.risk_tools import plots  # matplotlib: imported only when drawing

    fig = plots.plot_debtrank(
        debtrank_labels(systemic, withheld), scenario=scenario, lang="en" if lang == "en" else "pt"
    )
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    plots.plt.close(fig)
    return out.getvalue()


_PICTURE_TEXT = {
    "pt": {
        "ranking": "Comunidades da semana {code} por CVaR propagado médio",
        "sizes": "Comunidades da semana {code}: agentes e propagadores",
        "rank": "posição (1 = maior exposição)",
        "cvar": "CVaR médio (% do custo esperado)",
        "agents": "agentes",
        "propagated": "propagado",
        "intrinsic": "intrínseco",
        "total": "total",
        "members": "agentes",
        "propagators": "propagadores",
        "mean": "média da rede: {value}",
        "empty": "Sem comunidades (o modelo de rede não foi calculado)",
    },
    "en": {
        "ranking": "Communities of week {code} by mean propagated CVaR",
        "sizes": "Communities of week {code}: agents and propagators",
        "rank": "rank (1 = most exposed)",
        "cvar": "mean CVaR (% of expected cost)",
        "agents": "agents",
        "propagated": "propagated",
        "intrinsic": "intrinsic",
        "total": "total",
        "members": "agents",
        "propagators": "propagators",
        "mean": "network mean: {value}",
        "empty": "No communities (the network model was not computed)",
    },
}


def network_mean(closing) -> float | None:
    network = closing.network or {}
    value = network.get("network_mean")
    if value is None:
        value = (network.get("summary") or {}).get("network_mean")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _empty(plots, fig, ax, text) -> Any:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text["empty"], ha="center", va="center")
    return fig


def _ranking_figure(plots, rows, closing, lang):
    text = _PICTURE_TEXT["en" if lang == "en" else "pt"]
    fig, ax = plots.plt.subplots(figsize=(9, 4.8))
    if not rows:
        return _empty(plots, fig, ax, text)
    import numpy as np

    ranks = np.array([r.rank for r in rows])
    width = 0.27
    for offset, name, colour in (
        (-width, "mean_cvar_intrinsic", "#4c72b0"),
        (0.0, "mean_cvar_propagated", "#c44e52"),
        (width, "mean_cvar_total", "#8172b2"),
    ):
        values = np.array([-100.0 * float(getattr(r, name) or 0.0) for r in rows])
        ax.bar(ranks + offset, values, width, color=colour, label=text[name.split("_")[-1]])
    mean = network_mean(closing)
    if mean is not None:
        ax.axhline(-100.0 * mean, color="#333333", linewidth=1, linestyle="--",
                   label=text["mean"].format(value=plots._percent(-mean, 2, lang)))  # fmt: skip
    ax.set_xticks(ranks)
    ax.set_xlabel(text["rank"])
    ax.set_ylabel(text["cvar"])
    ax.yaxis.set_major_formatter(plots._axis_formatter(lang))
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_title(text["ranking"].format(code=closing.week.code))
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _sizes_figure(plots, rows, closing, lang):
    text = _PICTURE_TEXT["en" if lang == "en" else "pt"]
    fig, ax = plots.plt.subplots(figsize=(9, 4.8))
    if not rows:
        return _empty(plots, fig, ax, text)
    ranks = [r.rank for r in rows]
    ax.bar(ranks, [r.size for r in rows], color="#9ab0c9", label=text["members"])
    ax.bar(ranks, [r.propagators for r in rows], color="#c44e52", label=text["propagators"])
    ax.set_xticks(ranks)
    ax.set_xlabel(text["rank"])
    ax.set_ylabel(text["agents"])
    ax.yaxis.set_major_formatter(plots._axis_formatter(lang, 0))
    ax.set_title(text["sizes"].format(code=closing.week.code))
    ax.legend(fontsize=8)
    return fig
