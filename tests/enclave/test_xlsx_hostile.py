"""Hostile workbooks (issue 7): every part openpyxl reads is bounded before openpyxl reads it.

Each workbook is the genuine template with one part replaced or added by hand-written XML, so only
the hostile part differs. None of the cases is refused by the central-directory checks (size,
ratio): the refusal comes from the streamed part scan, before ``load_workbook``.
"""

from __future__ import annotations

import io
import posixpath
import time
import zipfile
from collections.abc import Callable

import pytest

from enclave_bridge.enclave.xlsx import (
    MAX_RATIO,
    MAX_ROWS,
    MAX_XLSX_BYTES,
    RATIO_FLOOR,
    build_template,
    check_archive,
    parse_workbook,
)
from enclave_bridge.wire.protocol import E_TOO_LARGE, E_XLSX, ProtocolError
from prudencial.domain import formats

from .payloads import WEEK, agent

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
REL_TYPE = REL_NS + "/"
SHEET_HEAD = f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN_NS}">'
ROW_1 = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>Sigla do agente</t></is></c>'
    '<c r="B1" t="inlineStr"><is><t>CNPJ do agente</t></is></c></row>'
)
WHO = agent(41)
POSITION = {
    "bucket": 1,
    "submarket": "SE",
    "energy_type": "conventional",
    "resource_mwm": 12.5,
    "requirement_mwm": 4.0,
    "avg_purchase_price": 150.0,
    "avg_sale_price": 170.0,
}
LIMIT_SECONDS = 5  # generous: the refusals take milliseconds, the old code took seconds


def template() -> bytes:
    return build_template([formats.example_payload("portfolio", agent=WHO, week=WEEK)], week=WEEK)


def rebuild(
    edits: dict[str, Callable[[str], str] | str | bytes | None],
    *,
    stored: frozenset[str] = frozenset(),
    base: bytes | None = None,
) -> bytes:
    """The template with members edited (a function of the old text), replaced, added or dropped.

    Members in ``stored`` are not compressed, so a big repetitive part passes the ratio check and
    reaches the part scan (as a hostile file would, with a less compressible filler).
    """
    src = zipfile.ZipFile(io.BytesIO(base or template()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        names = src.namelist() + [n for n in edits if n not in src.namelist()]
        for name in names:
            edit = edits.get(name, ...)
            if edit is None:
                continue
            if edit is ...:
                data: bytes = src.read(name)
            elif callable(edit):
                data = edit(src.read(name).decode()).encode()
            else:
                data = edit.encode() if isinstance(edit, str) else edit
            method = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            dst.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data, method)
    return out.getvalue()


def add_sheet(target: str, name: str = "Notas") -> dict[str, Callable[[str], str]]:
    """Edits adding a fourth sheet whose part is ``target`` (as written in the workbook's rels)."""
    return {
        "xl/workbook.xml": lambda x: x.replace(
            "</sheets>", f'<sheet name="{name}" sheetId="9" state="visible" r:id="rId9" /></sheets>'
        ),
        "xl/_rels/workbook.xml.rels": lambda x: x.replace(
            "</Relationships>",
            f'<Relationship Type="{REL_TYPE}worksheet" Target="{target}" Id="rId9" />'
            "</Relationships>",
        ),
    }


def retarget_portfolio(target: str) -> dict[str, Callable[[str], str]]:
    return {
        "xl/_rels/workbook.xml.rels": lambda x: x.replace(
            'Target="/xl/worksheets/sheet2.xml"', f'Target="{target}"'
        )
    }


def with_shared_strings(count: int, path: str = "xl/sharedStrings.xml", *, rel: bool = True):
    """Edits adding a sharedStrings part of ``count`` distinct strings (~22 bytes each)."""
    body = "".join(f"<si><t>{i}</t></si>" for i in range(count))
    edits: dict[str, Callable[[str], str] | str | bytes | None] = {
        "[Content_Types].xml": lambda x: x.replace(
            "</Types>",
            f'<Override PartName="/{path}" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sharedStrings+xml" /></Types>',
        ),
        path: f'<sst xmlns="{MAIN_NS}" count="{count}" uniqueCount="{count}">{body}</sst>',
    }
    if rel:
        edits["xl/_rels/workbook.xml.rels"] = lambda x: x.replace(
            "</Relationships>",
            f'<Relationship Type="{REL_TYPE}sharedStrings" Target="/{path}" Id="rId8" />'
            "</Relationships>",
        )
    return edits


def rows_sheet(rows: int) -> str:
    return (
        SHEET_HEAD
        + "<sheetData>"
        + "".join(f'<row r="{r}"/>' for r in range(1, rows + 1))
        + ("</sheetData></worksheet>")
    )


def laughs(levels: int, root: str = "worksheet") -> str:
    """A DOCTYPE whose entities expand to 3 * 10**levels characters."""
    entities = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, levels + 1)
    )
    return f'<?xml version="1.0"?><!DOCTYPE {root} [{entities}]>'


def shared_strings_book() -> bytes:
    """The finding's case: 1.1 M shared strings in a ~3 MB workbook."""
    return rebuild(with_shared_strings(1_100_000))


def cell_xfs_book() -> bytes:
    """300k cellXfs entries in xl/styles.xml."""
    xfs = "<xf />" * 300_000
    styles = (
        f'<styleSheet xmlns="{MAIN_NS}"><fonts count="1"><font /></fonts><fills count="1"><fill />'
        '</fills><borders count="1"><border /></borders><cellStyleXfs count="1"><xf /></cellStyleXfs>'
        f'<cellXfs count="300000">{xfs}</cellXfs></styleSheet>'
    )
    return rebuild({"xl/styles.xml": styles}, stored=frozenset({"xl/styles.xml"}))


def relocated_sheet_book(target: str = "other/s.xml") -> bytes:
    """A fourth sheet of 100k rows, outside xl/worksheets/, found only through the rels."""
    member = target[1:] if target.startswith("/") else posixpath.normpath("xl/" + target)
    return rebuild({**add_sheet(target), member: rows_sheet(100_000)})


def many_cols_book() -> bytes:
    cols = "".join(f'<col min="{i}" max="{i}" width="9" />' for i in range(1, 16_385))
    return rebuild(
        {
            "xl/worksheets/sheet2.xml": lambda x: x.replace(
                x[x.index("<cols>") : x.index("</cols>")], "<cols>" + cols
            )
        }
    )


def laughs_book() -> bytes:
    """A 'billion laughs' workbook part (expat itself refuses it only after 8 MiB of output)."""
    return rebuild(
        {
            "xl/workbook.xml": lambda x: (
                laughs(9, "workbook")
                + x.replace(
                    "<definedNames />",
                    '<definedNames><definedName name="x">&l9;</definedName></definedNames>',
                )
            )
        }
    )


def small_laughs_book() -> bytes:
    """3 MB of entity expansion from a few hundred bytes, under expat's own amplification guard."""
    return rebuild(
        {"xl/worksheets/sheet2.xml": lambda x: laughs(6) + x.replace("<t>SE/CO</t>", "<t>&l6;</t>")}
    )


def assert_refused(data: bytes, code: str, *words: str, kind: str = "portfolio") -> str:
    """The file passes the central-directory checks, and parse_workbook refuses it quickly."""
    assert len(data) <= MAX_XLSX_BYTES
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            assert info.file_size <= RATIO_FLOOR or info.file_size <= MAX_RATIO * info.compress_size
    started = time.monotonic()
    with pytest.raises(ProtocolError) as refused:
        parse_workbook(data, kind)
    assert time.monotonic() - started < LIMIT_SECONDS
    assert refused.value.code == code
    for word in words:
        assert word in refused.value.message
    return refused.value.message


def test_a_million_shared_strings_are_refused_at_the_limit():
    data = shared_strings_book()
    message = assert_refused(data, E_TOO_LARGE, "shared strings", "xl/sharedStrings.xml", "20000")
    assert "<t>" not in message  # names the part and the limit, no cell text


def test_shared_strings_found_only_through_content_types_are_bounded():
    """openpyxl finds shared strings through [Content_Types].xml alone, wherever they sit."""
    data = rebuild(with_shared_strings(20_001, "xl/elsewhere/strings.xml", rel=False))
    assert_refused(data, E_TOO_LARGE, "xl/elsewhere/strings.xml", "strings")


def test_300k_cell_xfs_are_refused():
    assert_refused(cell_xfs_book(), E_TOO_LARGE, "styles part", "cellXfs", "1000")


def test_unknown_element_flood_in_styles_is_bounded():
    flood = "<x:junk />" * 100_000
    styles = (
        f'<styleSheet xmlns="{MAIN_NS}" xmlns:x="urn:junk"><extLst>{flood}</extLst></styleSheet>'
    )
    data = rebuild({"xl/styles.xml": styles}, stored=frozenset({"xl/styles.xml"}))
    assert_refused(data, E_TOO_LARGE, "styles part", "XML elements")


@pytest.mark.parametrize("target", ["other/s.xml", "/xl/other/s.xml", "../elsewhere/s.bin"])
def test_a_sheet_relocated_through_the_rels_gets_the_row_limit(target):
    message = assert_refused(
        relocated_sheet_book(target), E_TOO_LARGE, "worksheet", "rows", str(MAX_ROWS)
    )
    assert "s." in message  # the relocated part is named


def test_a_relocated_portfolio_sheet_is_scanned_even_when_not_read():
    """The Portfolio sheet moved away and sent as kind counterparties: openpyxl still opens it."""
    data = rebuild({**retarget_portfolio("data/p.xml"), "xl/data/p.xml": rows_sheet(100_000)})
    assert_refused(data, E_TOO_LARGE, "xl/data/p.xml", "rows", kind="counterparties")


def test_many_col_entries_are_refused():
    assert_refused(many_cols_book(), E_TOO_LARGE, "worksheet", "<col> entries", "256")


def test_many_merged_cells_are_refused():
    merges = "".join(f'<mergeCell ref="H{r}:I{r}" />' for r in range(1, 1_002))
    data = rebuild(
        {
            "xl/worksheets/sheet1.xml": lambda x: x.replace(
                "</sheetData>", f'</sheetData><mergeCells count="1001">{merges}</mergeCells>'
            )
        }
    )
    assert_refused(data, E_TOO_LARGE, "merged cells", "1000")


def test_too_many_defined_names_are_refused():
    names = "".join(f'<definedName name="n{i}">Agente!$A$1</definedName>' for i in range(1_001))
    data = rebuild(
        {
            "xl/workbook.xml": lambda x: x.replace(
                "<definedNames />", f"<definedNames>{names}</definedNames>"
            )
        }
    )
    assert_refused(data, E_TOO_LARGE, "workbook part", "defined names")


def test_a_cell_longer_than_excel_allows_is_refused():
    data = rebuild(
        {"xl/worksheets/sheet2.xml": lambda x: x.replace("<t>SE/CO</t>", f"<t>{'x' * 70_000}</t>")}
    )
    message = assert_refused(data, E_TOO_LARGE, "text run")
    assert "xxx" not in message


def test_an_oversized_dimension_is_refused_not_crashed():
    """A 5,000-digit row number made the old int() raise ValueError (not a ProtocolError)."""
    data = rebuild(
        {"xl/worksheets/sheet2.xml": lambda x: x.replace('ref="A1:F2"', f'ref="A1:F{"9" * 5000}"')}
    )
    assert_refused(data, E_TOO_LARGE, f"declares more than {MAX_ROWS} rows")


@pytest.mark.parametrize("book", [laughs_book, small_laughs_book], ids=["billion", "3MB"])
def test_a_doctype_is_refused_before_any_entity_is_expanded(book):
    assert_refused(book(), E_XLSX, "DOCTYPE")


def test_a_doctype_is_refused_in_utf16_too():
    """A byte search for b'<!DOCTYPE' would miss this; expat sees the declaration."""
    text = laughs(6).replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    data = rebuild(
        {
            "xl/worksheets/sheet2.xml": lambda x: text + x.replace("<t>SE/CO</t>", "<t>&l6;</t>"),
        }
    )
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        part = zf.read("xl/worksheets/sheet2.xml").decode()
    data = rebuild({"xl/worksheets/sheet2.xml": part.encode("utf-16")}, base=data)
    assert_refused(data, E_XLSX, "DOCTYPE")


@pytest.mark.parametrize(
    ("target", "word"),
    [
        ("../../etc/passwd", "outside the archive"),
        ("/../etc/passwd", "outside the archive"),
        ("worksheets/absent.xml", "missing"),
    ],
)
def test_a_sheet_target_escaping_the_archive_or_missing_is_refused(target, word):
    assert_refused(rebuild(retarget_portfolio(target)), E_XLSX, word)


def test_a_workbook_part_other_than_the_package_rels_say_is_refused():
    """openpyxl follows [Content_Types].xml; _rels/.rels must name the same part."""
    data = rebuild(
        {"_rels/.rels": lambda x: x.replace('Target="xl/workbook.xml"', 'Target="xl/other.xml"')}
    )
    assert_refused(data, E_XLSX, "_rels/.rels")


def test_two_sheets_on_one_part_are_refused():
    """openpyxl would open (and size) the same part once per <sheet>."""
    assert_refused(rebuild(add_sheet("worksheets/sheet2.xml")), E_XLSX, "share the part")


def test_a_chartsheet_is_refused():
    """openpyxl reads a chartsheet's drawings and charts even in read-only mode."""
    data = rebuild(
        {
            "xl/_rels/workbook.xml.rels": lambda x: x.replace(
                "</Relationships>",
                f'<Relationship Type="{REL_TYPE}chartsheet" Target="chartsheets/c.xml" Id="rId9" />'
                "</Relationships>",
            ),
            "xl/workbook.xml": lambda x: x.replace(
                "</sheets>", '<sheet name="Chart" sheetId="9" r:id="rId9" /></sheets>'
            ),
            "xl/chartsheets/c.xml": f'<chartsheet xmlns="{MAIN_NS}" />',
        }
    )
    assert_refused(data, E_XLSX, "chartsheet")


def test_an_unreferenced_worksheet_is_still_scanned():
    """Parts under xl/worksheets/ that no sheet names are scanned too (documented choice)."""
    data = rebuild({"xl/worksheets/sheet9.xml": rows_sheet(MAX_ROWS + 1)})
    with pytest.raises(ProtocolError) as refused:
        check_archive(data)
    assert refused.value.code == E_TOO_LARGE and "sheet9.xml" in refused.value.message


def test_the_template_still_parses_to_the_same_payload():
    """Regression guard: the genuine template is accepted unchanged, byte for byte after
    canonicalisation (formats.canonical_json of formats.normalize)."""
    doc = formats.example_payload("portfolio", agent=WHO, week=WEEK)
    doc["contracts"].append(
        dict(doc["contracts"][0], bucket=2, submarket="NE", energy_type="incentivized_50")
    )
    doc["regulated_market_revenue_brl"] = 2.5
    sheet = parse_workbook(build_template([doc]), "portfolio", agent=WHO, week=WEEK)
    assert sheet.errors == []
    assert sheet.rows["contracts"] == {0: 2, 1: 3} and sheet.rows["equity"] == 2
    assert formats.canonical_json(sheet.payload) == formats.canonical_json(
        formats.normalize("portfolio", doc)
    )
    other = agent(42)
    cps = formats.example_payload("counterparties", agent=WHO, week=WEEK)
    cps["counterparties"] = [
        {
            "rank": 1,
            "cnpj": other["cnpj"],
            "acronym": other["acronym"],
            "mtm_m0_brl": 1.0,
            "mtm_m1_brl": 2.0,
            "mtm_m2_brl": 0.0,
            "mitigation_brl": 0.0,
            "mitigants": "",
        }
    ]
    parsed = parse_workbook(build_template([cps]), "counterparties", agent=WHO, week=WEEK)
    assert parsed.errors == [] and parsed.rows["counterparties"] == {0: 2}
    assert parsed.payload["counterparties"] == cps["counterparties"]


def test_the_fullest_single_agent_portfolio_fits_one_envelope():
    """Every (bucket, side, contract type, energy type, submarket) row an agent may declare fits
    the single-envelope bounds (MAX_ROWS), so no legitimate portfolio is too large to send."""
    doc = formats.example_payload("portfolio", agent=WHO, week=WEEK)
    row = doc["contracts"][0]
    doc["contracts"] = [
        dict(row, bucket=b, side=side, contract_type=ct, energy_type=et, submarket=sm)
        for b in range(7)
        for side in formats.SIDES
        for ct in formats.CONTRACT_TYPES
        for et in formats.DEFAULT_ENERGY_TYPES
        for sm in ("SE", "S", "NE", "N")
    ]
    assert len(doc["contracts"]) == formats.max_contract_rows(len(formats.DEFAULT_ENERGY_TYPES))
    sheet = parse_workbook(build_template([doc]), "portfolio", agent=WHO, week=WEEK)
    assert sheet.errors == []
    assert len(sheet.payload["contracts"]) == len(doc["contracts"])
