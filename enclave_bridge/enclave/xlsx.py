"""The XLSX template agents may encrypt as it is, and its parser into the v2 payload dicts.

The layout (sheets, pt-BR headers and choice labels, one ``Sigla do agente`` column on every
data sheet so one workbook may cover many agents) and the cell → payload mapping are
``prudencial.domain.sheets``'; this module bounds and reads the file (openpyxl) and hands the
cell rows over. Errors carry the sheet and the Excel row number. The file is untrusted: ``check_archive`` bounds the cost of every part
openpyxl will read BEFORE openpyxl opens the file:

- the file's size, the zip members' count, declared sizes and compression ratios (central directory
  only, nothing inflated), and no duplicate member names;
- the parts are found the way openpyxl finds them (``[Content_Types].xml``, the workbook part, its
  relationships, each ``<sheet>``'s relationship target wherever it sits, ``xl/styles.xml``,
  ``docProps/core.xml`` / ``custom.xml``), checked against ``_rels/.rels``; a target that escapes
  the archive or is missing, a chartsheet and two sheets on one part are refused;
- each of those parts is streamed once through expat with a bounded count: XML elements per part and
  across the archive, nesting depth, attributes, text lengths, and per role rows, cells, ``<col>``
  and merged cells (worksheets), strings (shared strings), entries of each style list (styles),
  sheets and defined names (workbook); a DOCTYPE anywhere is refused (entity expansion).

So a zip bomb, a million-row sheet, a million shared strings or styles, or a sheet relocated outside
``xl/worksheets/`` is refused after streaming no more than the limit's worth of it, without being
loaded. The resolution mirrors openpyxl 3.1 (pinned): see ``_check_parts``.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.xml.constants import (
    ARC_CONTENT_TYPES,
    ARC_CORE,
    ARC_CUSTOM,
    ARC_ROOT_RELS,
    ARC_STYLE,
    ARC_WORKBOOK,
    REL_NS,
    SHARED_STRINGS,
    STYLES_TYPE,
    XLSM,
    XLSX,
    XLTM,
    XLTX,
)

from enclave_bridge.wire.protocol import E_TOO_LARGE, E_XLSX, ProtocolError
from prudencial.domain import formats, sheets
from prudencial.domain.calendar import is_week_code, parse_week_code
from prudencial.domain.market import BUCKET_COUNT

XLSX_MAGIC = b"PK\x03\x04"
MAX_XLSX_BYTES = 4 * 1024 * 1024
MAX_ZIP_MEMBERS = 64
MAX_MEMBER_BYTES = 24 * 1024 * 1024
MAX_TOTAL_BYTES = 48 * 1024 * 1024
MAX_RATIO = 100  # uncompressed / compressed, for members above RATIO_FLOOR
RATIO_FLOOR = 256 * 1024
# Per sheet, header included: one agent's fullest portfolio has 7 × 2 × 3 × 6 × 4 = 1,008
# contract rows (formats.max_contract_rows with the default six energy types).
MAX_ROWS = 1_100
MAX_COLS = 32
MAX_CELLS = 20_000
# Bounds on the XML parts openpyxl reads, checked by streaming them before openpyxl does. The
# template has 3 sheets, 7-10 <col>, 1-2 entries per style list, ~120 elements per part: each bound
# is far above what an edited copy of it needs and far below what costs openpyxl noticeable time.
MAX_SHEETS = 16  # <sheet> elements in the workbook part
MAX_DEFINED_NAMES = 1_000
MAX_SHARED_STRINGS = MAX_CELLS  # a valid file never needs more strings than cells
MAX_STYLE_ENTRIES = 1_000  # entries of each list in styles.xml (cellXfs, fonts, fills, ...)
MAX_COL_ENTRIES = 256  # <col> elements per sheet
MAX_MERGED_CELLS = 1_000  # <mergeCell> elements per sheet
MAX_SHEET_EXTRA_ELEMENTS = 10_000  # elements of a sheet outside <sheetData>
MAX_SHEET_ELEMENTS = MAX_ROWS + 5 * MAX_CELLS + MAX_SHEET_EXTRA_ELEMENTS  # c, v, f, is, t per cell
MAX_SHARED_STRING_ELEMENTS = 5 * MAX_SHARED_STRINGS  # si, t, and a few rich-text runs
MAX_STYLE_ELEMENTS = 20_000
MAX_WORKBOOK_ELEMENTS = 5_000
MAX_PACKAGE_ENTRIES = 1_000  # elements of [Content_Types].xml and of each .rels part
MAX_PROPERTY_ELEMENTS = 1_000  # docProps/core.xml, docProps/custom.xml
MAX_TOTAL_ELEMENTS = 250_000  # across every part scanned
MAX_DEPTH = 64  # element nesting; OOXML needs < 20
MAX_ATTRIBUTES = 64  # per element
MAX_VALUE_CHARS = 65_536  # one text run, or one element's attribute values (Excel: 32,767/cell)
MAX_PART_TEXT = 4 * 1024 * 1024  # characters of text in one part


@dataclass(frozen=True)
class XlsxLimits:
    """The bounds that depend on how many agents a workbook may cover. One envelope is one
    agent's (``SINGLE``, the module constants above); a batch file (op ``split``) may cover up
    to 2,000 agents (``BATCH``). Every other bound (depth, attributes, text runs, styles, sheets,
    package parts) is the same for both."""

    file_bytes: int = MAX_XLSX_BYTES
    member_bytes: int = MAX_MEMBER_BYTES
    total_bytes: int = MAX_TOTAL_BYTES
    rows: int = MAX_ROWS
    cells: int = MAX_CELLS
    total_elements: int = MAX_TOTAL_ELEMENTS
    part_text: int = MAX_PART_TEXT


SINGLE = XlsxLimits()
# A batch: ~135,000 cells for 1,000 agents (6 contract, 3 forecast, 1 PLA and 5 counterparty
# rows each); the bounds below allow 2,000 such agents with room, and the file must still fit an
# envelope's plaintext (6 MiB). openpyxl reads the full bound in about 10 s (docs/enclave.md).
BATCH = XlsxLimits(
    file_bytes=6 * 1024 * 1024,
    member_bytes=96 * 1024 * 1024,
    total_bytes=160 * 1024 * 1024,
    rows=50_000,
    cells=400_000,
    total_elements=2_500_000,
    part_text=32 * 1024 * 1024,
)


def is_xlsx(data: bytes) -> bool:
    return data[:4] == XLSX_MAGIC


@dataclass
class ParsedSheet:
    """A parsed payload with its Excel row map (``formats.validate(rows=...)``) and the errors
    found while reading (the file's, and the agent's cells that are no month, choice or number)."""

    payload: dict[str, Any]
    rows: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


def week_labels(week: str | None) -> tuple[str, ...]:
    """The bucket labels of a week: M+0 is the week code's month (202303001 → MAR/2023 …)."""
    if not is_week_code(week):
        return tuple(f"M+{i}" for i in range(BUCKET_COUNT))
    return sheets.bucket_labels(parse_week_code(week)[0])


def build_template(
    payloads: Iterable[Mapping[str, Any]] = (),
    *,
    kind: str = "all",
    week: str | None = None,
    bucket_labels: Sequence[str] | None = None,
    agents: Iterable[Mapping[str, str]] = (),
    energy_types: Sequence[str] = formats.DEFAULT_ENERGY_TYPES,
) -> bytes:
    """The template workbook, optionally pre-filled with v2 payloads (any agents) or with one
    empty PLA row per agent of ``agents``; the host's styled, locked template is built from
    the same ``sheets.payloads_to_rows``."""
    payloads = list(payloads)
    if week is None and payloads:
        week = payloads[0].get("week")
    labels = tuple(bucket_labels) if bucket_labels is not None else week_labels(week)
    grid = sheets.payloads_to_rows(
        kind, payloads, bucket_labels=labels, agents=agents, energy_types=energy_types
    )
    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in grid.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(list(row))
        if name in sheets.COLUMNS:
            for cell in ws[1]:
                cell.font = Font(bold=True)
            for index, (_, header) in enumerate(sheets.COLUMNS[name], start=1):
                ws.column_dimensions[get_column_letter(index)].width = max(14, len(header) + 2)
            ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def check_archive(data: bytes, limits: XlsxLimits = SINGLE) -> None:
    """Refuse the file unless every part openpyxl will read is bounded in size and in entries.

    The central directory is checked first (nothing inflated), then the parts are resolved through
    the package's relationships and streamed once each with counted limits (``_check_parts``):
    openpyxl builds whole trees of most parts (styles, workbook, shared strings) before any of our
    own limits could apply, so the bounds must hold before ``load_workbook`` is called.
    """
    if len(data) > limits.file_bytes:
        raise ProtocolError(E_TOO_LARGE, f"XLSX file exceeds {limits.file_bytes} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, NotImplementedError, EOFError) as exc:
        # NotImplementedError: a "version needed to extract" or method zipfile does not know.
        raise ProtocolError(E_XLSX, "XLSX file is not a valid zip archive") from exc
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise ProtocolError(E_XLSX, f"XLSX archive has more than {MAX_ZIP_MEMBERS} members")
        total = 0
        for info in members:
            if info.file_size > limits.member_bytes:
                raise ProtocolError(
                    E_TOO_LARGE,
                    f"XLSX member declares more than {limits.member_bytes} uncompressed bytes",
                )
            total += info.file_size
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(
                info.compress_size, 1
            ):
                raise ProtocolError(
                    E_TOO_LARGE, f"XLSX member compression ratio exceeds {MAX_RATIO}:1"
                )
        if total > limits.total_bytes:
            raise ProtocolError(
                E_TOO_LARGE,
                f"XLSX archive declares more than {limits.total_bytes} uncompressed bytes",
            )
        _check_parts(archive, limits)


@dataclass(frozen=True)
class _Role:
    """What one kind of part may hold: its element cap and the per-tag caps (local names)."""

    name: str
    elements: int
    counted: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # tag -> (limit, what)
    lists: Mapping[str, int] = field(default_factory=dict)  # list tag -> limit on its children
    collect: frozenset[str] = frozenset()  # tags whose attributes the caller needs
    outside: tuple[str, int] | None = None  # (tag, cap on the elements not inside that tag)


_PACKAGE = _Role("package part", MAX_PACKAGE_ENTRIES, collect=frozenset({"Override", "Default"}))
_RELS = _Role("relationships part", MAX_PACKAGE_ENTRIES, collect=frozenset({"Relationship"}))
_PROPERTIES = _Role("properties part", MAX_PROPERTY_ELEMENTS)
_WORKBOOK = _Role(
    "workbook part",
    MAX_WORKBOOK_ELEMENTS,
    counted={"sheet": (MAX_SHEETS, "sheets"), "definedName": (MAX_DEFINED_NAMES, "defined names")},
    collect=frozenset({"sheet"}),
)


def _worksheet_role(limits: XlsxLimits) -> _Role:
    return _Role(
        "worksheet",
        limits.rows + 5 * limits.cells + MAX_SHEET_EXTRA_ELEMENTS,  # c, v, f, is, t per cell
        counted={
            "row": (limits.rows, "rows"),
            "c": (limits.cells, "cells"),
            "col": (MAX_COL_ENTRIES, "<col> entries"),
            "mergeCell": (MAX_MERGED_CELLS, "merged cells"),
        },
        outside=("sheetData", MAX_SHEET_EXTRA_ELEMENTS),
    )


def _shared_strings_role(limits: XlsxLimits) -> _Role:
    # A valid file never needs more strings than cells; si, t, and a few rich-text runs each.
    return _Role("shared strings part", 5 * limits.cells, counted={"si": (limits.cells, "strings")})


_WORKSHEET = _worksheet_role(SINGLE)
_SHARED_STRINGS = _shared_strings_role(SINGLE)
_STYLES = _Role(
    "styles part",
    MAX_STYLE_ELEMENTS,
    lists=dict.fromkeys(
        (
            "numFmts",
            "fonts",
            "fills",
            "borders",
            "cellStyleXfs",
            "cellXfs",
            "cellStyles",
            "dxfs",
            "tableStyles",
            "indexedColors",
            "mruColors",
        ),
        MAX_STYLE_ENTRIES,
    ),
)

_WORKBOOK_TYPES = (XLTM, XLTX, XLSM, XLSX)  # openpyxl's order of preference
_SHEET_RID = REL_NS + "}id"


@dataclass(frozen=True)
class _Rel:
    id: str
    type: str
    target: str  # the archive member name, resolved the way openpyxl resolves it


_Scan = Callable[[str, _Role], list[tuple[str, dict[str, str]]]]


def _label(name: str) -> str:
    """A part name fit for an error message (it comes from the archive: printable, short)."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "/._-[]") else "?" for c in name[:80])
    return clean + ("..." if len(name) > 80 else "")


def _check_parts(archive: zipfile.ZipFile, limits: XlsxLimits = SINGLE) -> None:
    """Resolve the parts openpyxl 3.1 reads (read-only, keep_links=False) and scan each of them.

    openpyxl finds the workbook and the shared strings through ``[Content_Types].xml``, reads
    ``xl/styles.xml``, ``docProps/core.xml`` and ``custom.xml`` at fixed names, and each sheet
    through the workbook's relationships (and that sheet's own ``.rels``). Those are scanned, as are
    the parts the relationships name for the same roles, so neither path can reach an unscanned
    part. Worksheets under ``xl/worksheets/`` that no sheet references are scanned too (as before):
    openpyxl ignores them, but refusing them would refuse files Excel writes after a sheet delete.
    """
    names = archive.namelist()
    present = set(names)
    if len(present) != len(names):
        raise ProtocolError(E_XLSX, "XLSX archive has duplicate member names")
    budget = [limits.total_elements]
    worksheet, shared_strings = (
        (_WORKSHEET, _SHARED_STRINGS)
        if limits == SINGLE
        else (_worksheet_role(limits), _shared_strings_role(limits))
    )

    def scan(name: str, role: _Role) -> list[tuple[str, dict[str, str]]]:
        if name not in present:
            raise ProtocolError(E_XLSX, f"XLSX {role.name} {_label(name)} is missing")
        return _scan_part(archive, name, role, budget, limits)

    manifest = scan(ARC_CONTENT_TYPES, _PACKAGE)
    overrides = [
        (a.get("PartName", ""), a.get("ContentType", "")) for t, a in manifest if t == "Override"
    ]
    defaults = {a.get("ContentType", "") for t, a in manifest if t == "Default"}
    workbook_part = next(
        (part[1:] for kind in _WORKBOOK_TYPES for part, ct in overrides if ct == kind), None
    )
    if workbook_part is None and defaults & set(_WORKBOOK_TYPES):
        workbook_part = ARC_WORKBOOK
    if workbook_part is None:
        raise ProtocolError(E_XLSX, "XLSX [Content_Types].xml names no workbook part")
    office = [r for r in _read_rels(ARC_ROOT_RELS, scan) if r.type.endswith("/officeDocument")]
    if len(office) != 1 or office[0].target != workbook_part:
        raise ProtocolError(
            E_XLSX, "XLSX _rels/.rels and [Content_Types].xml disagree on the workbook part"
        )

    workbook = scan(workbook_part, _WORKBOOK)
    folder, base = posixpath.split(workbook_part)
    workbook_rels_name = posixpath.join(folder, "_rels", f"{base}.rels")
    workbook_rels: dict[str, _Rel] = {}  # by Id, the last one winning (openpyxl's to_dict)
    if workbook_rels_name in present:
        workbook_rels = {rel.id: rel for rel in _read_rels(workbook_rels_name, scan)}

    sheets: dict[str, None] = {}  # ordered set: openpyxl's sheets first
    for _, attrs in workbook:
        rid = attrs.get(_SHEET_RID, attrs.get("id"))  # openpyxl falls back to a plain id
        rel = workbook_rels.get(rid or "")
        if rel is None:
            raise ProtocolError(E_XLSX, "XLSX workbook has a sheet without a relationship")
        if "chartsheet" in rel.type:
            raise ProtocolError(E_XLSX, "XLSX chartsheets are not accepted")
        if rel.target in sheets:
            raise ProtocolError(E_XLSX, f"XLSX sheets share the part {_label(rel.target)}")
        sheets[rel.target] = None
    for rel in workbook_rels.values():
        if rel.type.endswith("/worksheet"):
            sheets[rel.target] = None
    for name in names:
        if name.startswith("xl/worksheets/") and name.endswith(".xml"):
            sheets[name] = None

    shared = {part[1:] for part, ct in overrides if ct == SHARED_STRINGS}
    styles = {part[1:] for part, ct in overrides if ct == STYLES_TYPE}
    for rel in workbook_rels.values():
        if rel.type.endswith("/sharedStrings"):
            shared.add(rel.target)
        elif rel.type.endswith("/styles"):
            styles.add(rel.target)
    if ARC_STYLE in present:
        styles.add(ARC_STYLE)

    for name in sorted(styles):
        scan(name, _STYLES)
    for name in (ARC_CORE, ARC_CUSTOM):
        if name in present:
            scan(name, _PROPERTIES)
    for name in sorted(shared):
        scan(name, shared_strings)
    for name in sheets:
        scan(name, worksheet)
        folder, base = posixpath.split(name)
        rels_name = posixpath.join(folder, "_rels", f"{base}.rels")
        if rels_name in present:
            _read_rels(rels_name, scan)


def _read_rels(name: str, scan: _Scan) -> list[_Rel]:
    """The internal relationships of a .rels part, targets resolved as openpyxl resolves them.

    Relative targets are relative to the folder the .rels part describes, absolute ones start at the
    archive root. A target that leaves the archive is refused whatever its type; one that is not a
    member is refused when the caller reads it (``scan`` of a missing part).
    """
    parent = posixpath.split(posixpath.dirname(name))[0]
    rels: list[_Rel] = []
    for _, attrs in scan(name, _RELS):
        if attrs.get("TargetMode") == "External":
            continue
        target = attrs.get("Target", "")
        if target.startswith("/"):
            target = target[1:]
        else:
            target = posixpath.normpath(posixpath.join(parent, target))
        normal = posixpath.normpath(target)
        if not target or normal == ".." or normal.startswith(("../", "/")):
            raise ProtocolError(
                E_XLSX, f"XLSX relationship in {_label(name)} points outside the archive"
            )
        rels.append(_Rel(attrs.get("Id", ""), attrs.get("Type", ""), target))
    return rels


def _scan_part(
    archive: zipfile.ZipFile,
    name: str,
    role: _Role,
    budget: list[int],
    limits: XlsxLimits = SINGLE,
) -> list[tuple[str, dict[str, str]]]:
    """Stream one part through expat, counting against ``role``'s limits; stop at the first breach.

    expat (with no tree built) costs far less than openpyxl's reading of the same part, and stops
    at the limit, so a flood costs its first few thousand elements. A DOCTYPE is refused: the
    stdlib parser openpyxl uses expands internal entities (expat's own amplification guard only
    starts after 8 MiB of output). Returns the attributes of the elements ``role.collect`` names.
    """
    label = f"XLSX {role.name} {_label(name)}"
    found: list[tuple[str, dict[str, str]]] = []
    counts = dict.fromkeys(role.counted, 0)
    lists: list[list[Any]] = []  # [depth, tag, children] of the open style lists
    outside_tag, outside_cap = role.outside or ("", 0)
    state = {"elements": 0, "depth": 0, "outside": 0, "inside": 0, "run": 0, "text": 0}

    def too_large(what: str) -> ProtocolError:
        return ProtocolError(E_TOO_LARGE, f"{label}: {what}")

    def start(tag: str, attrs: dict[str, str]) -> None:
        state["elements"] += 1
        budget[0] -= 1
        depth = state["depth"] = state["depth"] + 1
        state["run"] = 0
        if state["elements"] > role.elements:
            raise too_large(f"more than {role.elements} XML elements")
        if budget[0] < 0:
            raise ProtocolError(
                E_TOO_LARGE,
                f"XLSX archive: more than {limits.total_elements} XML elements in its parts",
            )
        if depth > MAX_DEPTH:
            raise too_large(f"XML nested deeper than {MAX_DEPTH}")
        if len(attrs) > MAX_ATTRIBUTES:
            raise too_large(f"an element has more than {MAX_ATTRIBUTES} attributes")
        if attrs and sum(map(len, attrs.values())) > MAX_VALUE_CHARS:
            raise too_large(f"an element's attributes exceed {MAX_VALUE_CHARS} characters")
        local = tag.rpartition("}")[2]
        if local in counts:
            counts[local] += 1
            limit, what = role.counted[local]
            if counts[local] > limit:
                raise too_large(f"more than {limit} {what} (limit {limit})")
        if lists and lists[-1][0] == depth - 1:
            lists[-1][2] += 1
            _, list_tag, entries = lists[-1]
            if entries > role.lists[list_tag]:
                limit = role.lists[list_tag]
                raise too_large(f"{list_tag} has more than {limit} entries (limit {limit})")
        if local in role.lists:
            lists.append([depth, local, 0])
        if outside_tag:
            if state["inside"]:
                pass
            elif local == outside_tag:
                state["inside"] = depth
            else:
                state["outside"] += 1
                if state["outside"] > outside_cap:
                    raise too_large(f"more than {outside_cap} XML elements outside <{outside_tag}>")
        if local in role.collect:
            found.append((local, attrs))
        if local == "dimension" and role.name == "worksheet":
            _check_dimension(attrs.get("ref", ""), label, limits.rows)

    def end(tag: str) -> None:
        depth = state["depth"]
        if lists and lists[-1][0] == depth:
            lists.pop()
        if state["inside"] == depth:
            state["inside"] = 0
        state["depth"] = depth - 1
        state["run"] = 0

    def text(data: str) -> None:
        state["run"] += len(data)
        state["text"] += len(data)
        if state["run"] > MAX_VALUE_CHARS:
            raise too_large(f"a text run exceeds {MAX_VALUE_CHARS} characters")
        if state["text"] > limits.part_text:
            raise too_large(f"more than {limits.part_text} characters of text")

    def doctype(*_: Any) -> None:
        raise ProtocolError(E_XLSX, f"{label}: a DOCTYPE is not accepted")

    parser = expat.ParserCreate(None, "}")  # the namespace handling ElementTree uses
    parser.buffer_text = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    try:
        with archive.open(name) as source:
            while chunk := source.read(64 * 1024):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except ProtocolError:
        raise
    except (
        expat.ExpatError,
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        ValueError,
        LookupError,
    ) as exc:
        raise ProtocolError(E_XLSX, f"{label} is not readable XML") from exc
    return found


def _check_dimension(ref: str, label: str, max_rows: int = MAX_ROWS) -> None:
    last = ref.rpartition(":")[2]
    digits = "".join(c for c in last if c.isdigit())
    if digits and (len(digits) > 7 or int(digits) > max_rows):
        raise ProtocolError(
            E_TOO_LARGE, f"{label}: declares more than {max_rows} rows (limit {max_rows})"
        )


def read_cells(data: bytes, limits: XlsxLimits = SINGLE) -> dict[str, list[tuple[Any, ...]]]:
    """The data sheets' cell rows (row 1 the headers), bounded in rows, columns and cells;
    ``check_archive`` runs first, so openpyxl only ever opens a bounded file."""
    check_archive(data, limits)
    max_rows, max_cells = limits.rows, limits.cells
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(E_XLSX, "XLSX file cannot be read as a workbook") from exc
    grid: dict[str, list[tuple[Any, ...]]] = {}
    cells = 0
    try:
        for name in wb.sheetnames:
            if name not in sheets.DATA_SHEETS:
                continue  # Instruções, or a sheet of the agent's own: not read
            ws = wb[name]
            if ws.max_row is not None and ws.max_row > max_rows:
                raise ProtocolError(
                    E_TOO_LARGE,
                    f"sheet {name} declares more than {max_rows} rows (limit {max_rows})",
                )
            rows: list[tuple[Any, ...]] = []
            # Read-only openpyxl pads every row to max_col: ask for the sheet's declared width
            # (≤ MAX_COLS), or padding alone would count 32 cells a row against the cell bound.
            width = min(MAX_COLS, ws.max_column or MAX_COLS)
            for excel_row, values in enumerate(
                ws.iter_rows(min_row=1, max_col=width, values_only=True), start=1
            ):
                if excel_row > max_rows:
                    raise ProtocolError(E_TOO_LARGE, f"sheet {name} has more than {max_rows} rows")
                cells += len(values)
                if cells > max_cells:
                    raise ProtocolError(E_TOO_LARGE, f"workbook has more than {max_cells} cells")
                rows.append(tuple(values))
            grid[name] = rows
    finally:
        wb.close()
    return grid


def parse_workbook(
    data: bytes,
    kind: str,
    *,
    agent: Mapping[str, str] | None = None,
    week: str | None = None,
    bucket_labels: Sequence[str] | None = None,
    energy_types: Sequence[str] = formats.DEFAULT_ENERGY_TYPES,
) -> ParsedSheet:
    """Parse the template into one agent's ``portfolio`` or ``counterparties`` v2 payload.

    ``agent`` {acronym, cnpj} and ``week``: the envelope's binding (its CNPJ stands for the
    PLA sheet's when that cell is blank). A workbook whose data rows name another agent is
    refused here: a single envelope is one agent's (a batch file goes through split_batch).
    """
    grid = read_cells(data)
    labels = tuple(bucket_labels) if bucket_labels is not None else week_labels(week)
    agents = None if agent is None else {agent["acronym"]: agent["cnpj"]}
    parsed = sheets.rows_to_payloads(
        kind,
        grid,
        week=week,
        bucket_labels=labels,
        agents=agents,
        energy_types=energy_types,
    )
    errors = list(parsed.errors)
    found = parsed.payloads(kind)
    if errors:
        return ParsedSheet(payload={}, errors=errors)
    wanted = agent["acronym"] if agent is not None else next(iter(sorted(found)), None)
    others = [a for a in parsed.agents if a != wanted]
    if others:
        errors.append(
            {
                "field": f"column '{sheets.AGENT[1]}'",
                "row": None,
                "rule": "must name only the agent this envelope was submitted for",
            }
        )
    if wanted not in found:
        errors.append(
            {
                "field": f"sheet {sheets.SHEETS_BY_KIND[kind][0]}",
                "row": None,
                "rule": "must have rows for the agent this envelope was submitted for",
            }
        )
        return ParsedSheet(payload={}, errors=errors + parsed.agent_errors.get(wanted or "", []))
    errors += parsed.agent_errors.get(wanted, [])
    return ParsedSheet(
        payload=found[wanted], rows=parsed.rows.get((kind, wanted), {}), errors=errors
    )
