"""An evidence file's type comes from its content, under bounds (pure)."""

from __future__ import annotations

import io
import zipfile

import pytest

from seal.filetypes import FileRefused, detect

LIMITS = {
    "max_bytes": 2 * 1024 * 1024,
    "max_members": 2000,
    "max_uncompressed": 100 * 1024 * 1024,
    "max_ratio": 100,
}

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\nstartxref\n9\n%%EOF\n"
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


def xlsx_bytes() -> bytes:
    from openpyxl import Workbook

    out = io.BytesIO()
    wb = Workbook()
    wb.active["A1"] = "Demonstração"
    wb.save(out)
    return out.getvalue()


def zip_bomb() -> bytes:
    """A zip with the XLSX parts, and one member of 50 MB of zeros (≈50 KB compressed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        )
        z.writestr("xl/workbook.xml", b"<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (50 * 1024 * 1024))
    return out.getvalue()


def test_a_pdf_and_an_xlsx_are_recognised():
    assert detect(PDF, "balanco.pdf", **LIMITS) == "pdf"
    assert detect(xlsx_bytes(), "dfs.XLSX", **LIMITS) == "xlsx"


@pytest.mark.parametrize(
    ("content", "name", "rule"),
    [
        (PDF, "balanco.xlsx", "type_mismatch"),  # a PDF named .xlsx
        (HTML, "balanco.pdf", "content_type"),  # an HTML page named .pdf
        (b"%PDF-1.4 no trailer", "x.pdf", "content_type"),
        (b"PK\x03\x04garbage", "x.xlsx", "xlsx_structure"),
        (PDF, "balanco.exe", "extension"),
        (b"", "x.pdf", "empty"),
    ],
)
def test_a_file_that_lies_about_its_type_is_refused(content, name, rule):
    with pytest.raises(FileRefused) as exc:
        detect(content, name, **LIMITS)
    assert exc.value.rule == rule


def test_a_zip_bomb_is_refused_from_its_directory():
    with pytest.raises(FileRefused) as exc:
        detect(zip_bomb(), "dfs.xlsx", **LIMITS)
    assert exc.value.rule == "zip_ratio"


def test_a_plain_zip_is_not_an_xlsx():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(FileRefused) as exc:
        detect(out.getvalue(), "x.xlsx", **LIMITS)
    assert exc.value.rule == "xlsx_structure"


def test_too_many_members_and_too_large_are_refused():
    with pytest.raises(FileRefused) as exc:
        detect(xlsx_bytes(), "x.xlsx", **{**LIMITS, "max_members": 2})
    assert exc.value.rule == "zip_members"
    with pytest.raises(FileRefused) as exc:
        detect(PDF, "x.pdf", **{**LIMITS, "max_bytes": 10})
    assert exc.value.rule == "size"
