"""Staff exports: the eligible agents still missing for a week, as CSV or XLSX.

Registry data only (acronym, CNPJ, legal name, class, cadence) and which kinds are missing: no
envelope, receipt or verdict detail. One reader (``missing_rows``, over
``submissions.selectors.missing_agents``) for the admin's download and the management command
``export_missing``; the writers stream (CSV row by row, openpyxl ``write_only``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from prudencial.domain.identifiers import format_cnpj
from prudencial.models import AgentClass, ReportingCadence, Week
from prudencial.submissions import selectors
from prudencial.submissions.models import Kind

FORMATS = ("csv", "xlsx")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class MissingRow:
    acronym: str
    cnpj: str
    legal_name: str
    agent_class: str
    reporting_cadence: str
    portfolio_missing: bool
    counterparties_missing: bool

    @property
    def agent_class_label(self) -> str:
        return _label(AgentClass, self.agent_class)


def missing_rows(*, week: Week, kind: str | None = None) -> list[MissingRow]:
    """The eligible agents without a current accepted submission of ``kind`` (either kind when
    None), with which kinds they miss, by acronym."""
    agents = list(
        selectors.missing_agents(week=week, kind=kind).values_list(
            "pk", "acronym", "cnpj", "legal_name", "agent_class", "reporting_cadence"
        )
    )
    states = selectors.current_submissions(week=week, agent_ids=[a[0] for a in agents])

    def missing(agent_id: int, k: str) -> bool:
        return not (states.get((agent_id, k)) or {}).get("is_current")

    return [
        MissingRow(
            acronym=acronym,
            cnpj=format_cnpj(cnpj),
            legal_name=legal_name,
            agent_class=agent_class,
            reporting_cadence=cadence,
            portfolio_missing=missing(pk, Kind.PORTFOLIO),
            counterparties_missing=missing(pk, Kind.COUNTERPARTIES),
        )
        for pk, acronym, cnpj, legal_name, agent_class, cadence in agents
    ]


def headers() -> list[str]:
    return [
        _("Sigla"),
        _("CNPJ"),
        _("Razão social"),
        _("Classe"),
        _("Periodicidade"),
        _("Falta portfólio"),
        _("Falta contrapartes"),
    ]


def _label(choices, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def _values(row: MissingRow) -> list[str]:
    yes, no = _("sim"), _("não")
    return [
        row.acronym,
        row.cnpj,
        row.legal_name,
        _label(AgentClass, row.agent_class),
        _label(ReportingCadence, row.reporting_cadence),
        yes if row.portfolio_missing else no,
        yes if row.counterparties_missing else no,
    ]


#: A cell starting with one of these is read by spreadsheets as a formula (or a DDE call).
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    """A CSV field a spreadsheet shows as text: a leading = + - @ tab or CR gets a ``'``."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_LEADS) else value


def csv_lines(rows: Iterable[MissingRow]) -> Iterator[str]:
    """The CSV, one line at a time (UTF-8 with a BOM so Excel reads the accents; ``;`` as the
    separator, as Excel in pt-BR expects)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    buffer.write("\ufeff")
    for values in (headers(), *(_values(r) for r in rows)):
        writer.writerow([csv_safe(v) for v in values])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def write_csv(rows: Iterable[MissingRow], out: IO[str]) -> None:
    for line in csv_lines(rows):
        out.write(line)


def write_xlsx(rows: Iterable[MissingRow], out: IO[bytes], *, week: Week) -> None:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(_("Faltantes %(code)s") % {"code": week.code})
    for letter, width in zip("ABCDEFG", (14, 20, 50, 22, 14, 16, 18), strict=True):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = "A2"
    header = []
    for title in headers():
        cell = WriteOnlyCell(ws, value=title)
        cell.font = Font(bold=True)
        header.append(cell)
    ws.append(header)
    for row in rows:
        ws.append([_text_cell(ws, value) for value in _values(row)])
    wb.save(out)


def _text_cell(ws, value: str) -> WriteOnlyCell:
    """A string cell, whatever it starts with: never a formula (openpyxl makes one of "=...")."""
    cell = WriteOnlyCell(ws, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
    return cell


def export(*, week: Week, file_format: str, kind: str | None = None) -> bytes:
    """The whole file (the admin's download, the management command)."""
    if file_format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    rows = missing_rows(week=week, kind=kind)
    if file_format == "csv":
        return "".join(csv_lines(rows)).encode("utf-8")
    out = io.BytesIO()
    write_xlsx(rows, out, week=week)
    return out.getvalue()


def filename(*, week: Week, file_format: str, kind: str | None = None) -> str:
    return f"faltantes_{week.code}{'_' + kind if kind else ''}.{file_format}"
