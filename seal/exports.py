"""A cycle's results as XLSX (staff): per agent the state, total, points, penalties, level,
adherence (verified status only) and each criterion's points. Several cycles: one sheet per
cycle, in the order given. Text cells are never formulas."""

from __future__ import annotations

import io
from collections.abc import Iterable

from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from seal import selectors
from seal.models import Cycle, Evaluation


def _cell(ws, value):
    cell = WriteOnlyCell(ws, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # a string, whatever it starts with (never "=...")
    return cell


def sheet_title(cycle: Cycle) -> str:
    """The cycle's sheet name (a cycle code is a slug of at most 20 characters: always a valid,
    unique sheet name of at most 31)."""
    return str(_("Selo %(code)s") % {"code": cycle.code})[:31]


def cycle_results_xlsx(*, cycle: Cycle) -> bytes:
    return cycles_results_xlsx(cycles=[cycle])


def cycles_results_xlsx(*, cycles: Iterable[Cycle]) -> bytes:
    """One sheet per cycle."""
    wb = Workbook(write_only=True)
    for cycle in cycles:
        _cycle_sheet(wb, cycle)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _cycle_sheet(wb: Workbook, cycle: Cycle) -> None:
    evaluations = list(
        Evaluation.objects.filter(cycle=cycle)
        .select_related("agent", "catalogue_version")
        .prefetch_related("items__criterion")
        .order_by("agent__acronym")
    )
    codes: list[str] = []
    for evaluation in evaluations:
        for item in evaluation.items.all():
            if item.criterion.code not in codes:
                codes.append(item.criterion.code)
    ws = wb.create_sheet(sheet_title(cycle))
    ws.freeze_panes = "A2"
    headers = [
        _("Agente"),
        _("Razão social"),
        _("Situação"),
        _("Versão do catálogo"),
        _("Pontos dos critérios"),
        _("Penalidades obrigatórias"),
        _("Total"),
        _("Nível"),
        _("Publicada em"),
        _("Aderência ao risco"),
        *codes,
    ]
    header = []
    for title in headers:
        cell = WriteOnlyCell(ws, value=str(title))
        cell.font = Font(bold=True)
        header.append(cell)
    ws.append(header)
    for e in evaluations:
        breakdown = e.breakdown or {}
        adherence = selectors.adherence_for(e)
        by_code = {i.criterion.code: i.points_awarded for i in e.items.all()}
        ws.append(
            [
                _cell(ws, e.agent.acronym),
                _cell(ws, e.agent.legal_name),
                _cell(ws, str(e.get_state_display())),
                e.catalogue_version.number,
                breakdown.get("points"),
                breakdown.get("penalties"),
                e.total,
                e.level,
                _cell(ws, e.published_at.strftime("%d/%m/%Y %H:%M") if e.published_at else ""),
                _cell(ws, adherence.status if adherence else ""),
                *[by_code.get(code) for code in codes],
            ]
        )
