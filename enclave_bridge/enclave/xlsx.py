"""The XLSX template agents may encrypt as it is, and its parser into the JSON payload dicts.

Workbook layout (every sheet: one header row in row 1, data from row 2; headers in pt-BR, matched
case-insensitively; the payload field name is accepted as a header too):

- ``Agente``: one data row — Sigla do agente, CNPJ do agente, Semana, Patrimônio líquido ajustado
  (R$), Receita do mercado regulado (R$). Both payload kinds read it.
- ``Portfolio``: one row per (bucket, submercado, tipo de energia) — the ``positions``.
- ``Contrapartes``: up to five rows — the ``counterparties``.

The same workbook can be sent twice (kind ``portfolio`` and kind ``counterparties``). Errors carry
the Excel row number. The file is untrusted: its size, the zip members' declared sizes and
compression ratios are checked BEFORE openpyxl opens it, the sheet's declared dimension and then
the streamed row and cell counts are bounded, so a zip bomb or a million-row sheet is refused
without being inflated or loaded.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from .protocol import E_TOO_LARGE, E_XLSX, ProtocolError

XLSX_MAGIC = b"PK\x03\x04"
MAX_XLSX_BYTES = 4 * 1024 * 1024
MAX_ZIP_MEMBERS = 64
MAX_MEMBER_BYTES = 24 * 1024 * 1024
MAX_TOTAL_BYTES = 48 * 1024 * 1024
MAX_RATIO = 100  # uncompressed / compressed, for members above RATIO_FLOOR
RATIO_FLOOR = 256 * 1024
MAX_ROWS = 500  # per sheet, header included
MAX_COLS = 32
MAX_CELLS = 20_000

SHEET_AGENT = "Agente"
SHEET_PORTFOLIO = "Portfolio"
SHEET_COUNTERPARTIES = "Contrapartes"

# (payload field, pt-BR header) in column order.
AGENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("acronym", "Sigla do agente"),
    ("cnpj", "CNPJ do agente"),
    ("week", "Semana"),
    ("adjusted_equity", "Patrimônio líquido ajustado (R$)"),
    ("regulated_market_revenue", "Receita do mercado regulado (R$)"),
)
PORTFOLIO_COLUMNS: tuple[tuple[str, str], ...] = (
    ("bucket", "Bucket (M+n)"),
    ("submarket", "Submercado"),
    ("energy_type", "Tipo de energia"),
    ("resource_mwm", "Recurso (MWm)"),
    ("requirement_mwm", "Requisito (MWm)"),
    ("avg_purchase_price", "Preço médio de compra (R$/MWh)"),
    ("avg_sale_price", "Preço médio de venda (R$/MWh)"),
)
COUNTERPARTY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("cnpj", "CNPJ da contraparte"),
    ("acronym", "Sigla da contraparte"),
    ("mtm_m0", "MtM M0 (R$)"),
    ("mtm_m1", "MtM M1 (R$)"),
    ("mtm_m2", "MtM M2 (R$)"),
    ("mitigation_amount", "Valor mitigado (R$)"),
    ("mitigants", "Mitigadores"),
    ("volume_m0", "Volume M0 (MWm)"),
    ("volume_m1", "Volume M1 (MWm)"),
    ("volume_m2", "Volume M2 (MWm)"),
)
OPTIONAL_COLUMNS = {"volume_m0", "volume_m1", "volume_m2", "regulated_market_revenue"}
ENERGY_TYPES = {
    "convencional": "conventional",
    "conventional": "conventional",
    "incentivada": "incentivized",
    "incentivized": "incentivized",
}
SUBMARKETS = {"SE": "SE", "SE/CO": "SE", "SECO": "SE", "S": "S", "NE": "NE", "N": "N"}


def is_xlsx(data: bytes) -> bool:
    return data[:4] == XLSX_MAGIC


@dataclass
class ParsedSheet:
    """A parsed payload with its Excel row map and the structural errors found while reading."""

    payload: dict[str, Any]
    rows: dict[int, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


def build_template(
    *,
    agent: dict[str, str] | None = None,
    week: str | None = None,
    adjusted_equity: float | None = None,
    regulated_market_revenue: float | None = None,
    positions: Iterable[dict[str, Any]] = (),
    counterparties: Iterable[dict[str, Any]] = (),
) -> bytes:
    """The template workbook, optionally pre-filled (the host offers it for download)."""
    wb = Workbook()
    ws_agent = wb.active
    ws_agent.title = SHEET_AGENT
    agent = agent or {}
    _write_sheet(
        ws_agent,
        AGENT_COLUMNS,
        [
            {
                "acronym": agent.get("acronym"),
                "cnpj": agent.get("cnpj"),
                "week": week,
                "adjusted_equity": adjusted_equity,
                "regulated_market_revenue": regulated_market_revenue,
            }
        ],
    )
    _write_sheet(wb.create_sheet(SHEET_PORTFOLIO), PORTFOLIO_COLUMNS, list(positions))
    rows = []
    for cp in counterparties:
        row = dict(cp)
        for i, volume in enumerate(cp.get("volume_mwm") or ()):
            row[f"volume_m{i}"] = volume
        rows.append(row)
    _write_sheet(wb.create_sheet(SHEET_COUNTERPARTIES), COUNTERPARTY_COLUMNS, rows)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _write_sheet(ws: Any, columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]) -> None:
    ws.append([header for _, header in columns])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for index, (_, header) in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(index)].width = max(14, len(header) + 2)
    ws.freeze_panes = "A2"
    for row in rows:
        if any(row.get(name) is not None for name, _ in columns):
            ws.append([row.get(name) for name, _ in columns])


def check_archive(data: bytes) -> None:
    """Refuse oversized files and zip bombs from the central directory alone (nothing inflated)."""
    if len(data) > MAX_XLSX_BYTES:
        raise ProtocolError(E_TOO_LARGE, f"XLSX file exceeds {MAX_XLSX_BYTES} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ProtocolError(E_XLSX, "XLSX file is not a valid zip archive") from exc
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise ProtocolError(E_XLSX, f"XLSX archive has more than {MAX_ZIP_MEMBERS} members")
        total = 0
        for info in members:
            if info.file_size > MAX_MEMBER_BYTES:
                raise ProtocolError(
                    E_TOO_LARGE,
                    f"XLSX member declares more than {MAX_MEMBER_BYTES} uncompressed bytes",
                )
            total += info.file_size
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(
                info.compress_size, 1
            ):
                raise ProtocolError(
                    E_TOO_LARGE, f"XLSX member compression ratio exceeds {MAX_RATIO}:1"
                )
        if total > MAX_TOTAL_BYTES:
            raise ProtocolError(
                E_TOO_LARGE, f"XLSX archive declares more than {MAX_TOTAL_BYTES} uncompressed bytes"
            )
        for info in members:
            if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                _prescan_sheet(archive, info)


def _prescan_sheet(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Count rows and cells by streaming the sheet XML, stopping at the limit.

    openpyxl (even read-only) parses a whole sheet that lacks a <dimension> element when it opens
    the workbook, so a million-row sheet must be stopped here, before openpyxl sees it.
    """
    rows = cells = 0
    try:
        with archive.open(info) as source:
            for _, element in ElementTree.iterparse(source, events=("start",)):
                tag = element.tag.rpartition("}")[2]
                if tag == "row":
                    rows += 1
                    if rows > MAX_ROWS:
                        raise ProtocolError(
                            E_TOO_LARGE, f"a sheet has more than {MAX_ROWS} rows (limit {MAX_ROWS})"
                        )
                elif tag == "c":
                    cells += 1
                    if cells > MAX_CELLS:
                        raise ProtocolError(E_TOO_LARGE, f"a sheet has more than {MAX_CELLS} cells")
                elif tag == "dimension":
                    _check_dimension(element.get("ref", ""))
    except ProtocolError:
        raise
    except (ElementTree.ParseError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ProtocolError(E_XLSX, "XLSX worksheet is not readable XML") from exc


def _check_dimension(ref: str) -> None:
    last = ref.rpartition(":")[2]
    digits = "".join(c for c in last if c.isdigit())
    if digits and int(digits) > MAX_ROWS:
        raise ProtocolError(
            E_TOO_LARGE, f"a sheet declares more than {MAX_ROWS} rows (limit {MAX_ROWS})"
        )


def _norm(text: Any) -> str:
    return " ".join(str(text).split()).casefold() if text is not None else ""


def _read_sheet(
    wb: Any, name: str, columns: tuple[tuple[str, str], ...], errors: list[dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """Rows of one sheet as (excel_row, {field: value}); bounded in rows, columns and cells."""
    if name not in wb.sheetnames:
        errors.append({"field": f"sheet {name}", "row": None, "rule": "is required"})
        return []
    ws = wb[name]
    if ws.max_row is not None and ws.max_row > MAX_ROWS:
        raise ProtocolError(
            E_TOO_LARGE, f"sheet {name} declares more than {MAX_ROWS} rows (limit {MAX_ROWS})"
        )
    by_header = {_norm(header): fname for fname, header in columns}
    by_header.update({_norm(fname): fname for fname, _ in columns})
    positions: dict[str, int] = {}
    out: list[tuple[int, dict[str, Any]]] = []
    cells = 0
    for excel_row, values in enumerate(
        ws.iter_rows(min_row=1, max_col=MAX_COLS, values_only=True), start=1
    ):
        if excel_row > MAX_ROWS:
            raise ProtocolError(E_TOO_LARGE, f"sheet {name} has more than {MAX_ROWS} rows")
        cells += len(values)
        if cells > MAX_CELLS:
            raise ProtocolError(E_TOO_LARGE, f"workbook has more than {MAX_CELLS} cells")
        if excel_row == 1:
            for col, value in enumerate(values):
                fname = by_header.get(_norm(value))
                if fname is not None and fname not in positions:
                    positions[fname] = col
            for fname, header in columns:
                if fname not in positions and fname not in OPTIONAL_COLUMNS:
                    errors.append(
                        {
                            "field": f"sheet {name} column '{header}'",
                            "row": 1,
                            "rule": "is required",
                        }
                    )
            continue
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        row = {
            fname: (values[col] if col < len(values) else None) for fname, col in positions.items()
        }
        out.append((excel_row, row))
    if not positions:
        errors.append({"field": f"sheet {name}", "row": 1, "rule": "must start with a header row"})
    return out


def _text(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _cnpj(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{int(value):014d}"
    if isinstance(value, str):
        return "".join(c for c in value if c not in ".-/ ").upper()
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().upper().removeprefix("M+")
        if text.isdigit():
            return int(text)
    return value


def _number(value: Any) -> Any:
    """Numeric cells stay numbers; an empty cell is 0 (a blank volume or price means none)."""
    return 0 if value is None else value


def parse_workbook(data: bytes, kind: str) -> ParsedSheet:
    """Parse the template into a ``portfolio`` or ``counterparties`` payload dict."""
    check_archive(data)
    errors: list[dict[str, Any]] = []
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(E_XLSX, "XLSX file cannot be read as a workbook") from exc
    try:
        agent_rows = _read_sheet(wb, SHEET_AGENT, AGENT_COLUMNS, errors)
        if kind == "portfolio":
            rows = _read_sheet(wb, SHEET_PORTFOLIO, PORTFOLIO_COLUMNS, errors)
        else:
            rows = _read_sheet(wb, SHEET_COUNTERPARTIES, COUNTERPARTY_COLUMNS, errors)
    finally:
        wb.close()
    head = agent_rows[0][1] if agent_rows else {}
    if len(agent_rows) != 1:
        errors.append(
            {"field": f"sheet {SHEET_AGENT}", "row": None, "rule": "must have exactly one data row"}
        )
    agent = {"acronym": _text(head.get("acronym")), "cnpj": _cnpj(head.get("cnpj"))}
    week = _text(head.get("week"))
    row_map: dict[int, int] = {}
    if kind == "portfolio":
        positions = []
        for index, (excel_row, row) in enumerate(rows):
            row_map[index] = excel_row
            submarket = _text(row.get("submarket"))
            energy = _text(row.get("energy_type"))
            positions.append(
                {
                    "bucket": _integer(row.get("bucket")),
                    "submarket": SUBMARKETS.get(submarket.upper(), submarket)
                    if isinstance(submarket, str)
                    else submarket,
                    "energy_type": ENERGY_TYPES.get(energy.casefold(), energy)
                    if isinstance(energy, str)
                    else energy,
                    "resource_mwm": _number(row.get("resource_mwm")),
                    "requirement_mwm": _number(row.get("requirement_mwm")),
                    "avg_purchase_price": _number(row.get("avg_purchase_price")),
                    "avg_sale_price": _number(row.get("avg_sale_price")),
                }
            )
        payload: dict[str, Any] = {
            "schema": "prudencial/portfolio/v1",
            "agent": agent,
            "week": week,
            "adjusted_equity": head.get("adjusted_equity"),
            "regulated_market_revenue": _number(head.get("regulated_market_revenue")),
            "positions": positions,
        }
    else:
        counterparties = []
        for index, (excel_row, row) in enumerate(rows):
            row_map[index] = excel_row
            entry = {
                "cnpj": _cnpj(row.get("cnpj")),
                "acronym": _text(row.get("acronym")),
                "mtm_m0": row.get("mtm_m0"),
                "mtm_m1": row.get("mtm_m1"),
                "mtm_m2": row.get("mtm_m2"),
                "mitigation_amount": _number(row.get("mitigation_amount")),
                "mitigants": _text(row.get("mitigants")) or "",
            }
            volumes = [row.get(f"volume_m{i}") for i in range(3)]
            if any(v is not None for v in volumes):
                entry["volume_mwm"] = [_number(v) for v in volumes]
            counterparties.append(entry)
        payload = {
            "schema": "prudencial/counterparties/v1",
            "agent": agent,
            "week": week,
            "counterparties": counterparties,
        }
    return ParsedSheet(payload=payload, rows=row_map, errors=errors)
