"""An evidence file's type, from its content (never its name), under bounds.

- PDF: starts with ``%PDF-<digit>.<digit>``, and its last KiB holds ``startxref`` and
  ``%%EOF`` (the trailer). An HTML page renamed .pdf has neither.
- XLSX: a zip (``PK\\x03\\x04``) whose directory is read without inflating anything: at most
  ``max_members`` entries, declared uncompressed total at most ``max_uncompressed``, no member
  compressed more than ``max_ratio``:1 (a zip bomb is refused from its directory), no absolute
  or ``..`` names; it must hold ``[Content_Types].xml`` declaring the spreadsheet main part and
  ``xl/workbook.xml``. Only ``[Content_Types].xml`` is read, and at most 256 KiB of it.

The name's extension must agree with the content: a PDF named .xlsx is refused.
"""

from __future__ import annotations

import io
import re
import zipfile

PDF = "pdf"
XLSX = "xlsx"
EXTENSIONS = {".pdf": PDF, ".xlsx": XLSX}
_PDF_HEADER = re.compile(rb"%PDF-[12]\.\d")
_TRAILER_BYTES = 1024
_CONTENT_TYPES = "[Content_Types].xml"
_WORKBOOK = "xl/workbook.xml"
_SHEET_MAIN = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_CONTENT_TYPES_MAX = 256 * 1024


class FileRefused(ValueError):
    """Why a file is refused: ``rule`` is a stable code, ``message`` says it in English
    (the host words the code in pt-BR)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def extension_type(name: str) -> str:
    lower = name.lower()
    for ext, kind in EXTENSIONS.items():
        if lower.endswith(ext):
            return kind
    raise FileRefused("extension", "the file name must end in .pdf or .xlsx")


def _is_pdf(content: bytes) -> bool:
    if not _PDF_HEADER.match(content[:16]):
        return False
    tail = content[-_TRAILER_BYTES:]
    return b"%%EOF" in tail and b"startxref" in tail


def _check_xlsx(content: bytes, max_members: int, max_uncompressed: int, max_ratio: int) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise FileRefused("xlsx_structure", "the file is not a readable zip (XLSX)") from exc
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise FileRefused("zip_members", f"an XLSX may hold at most {max_members} entries")
        total = 0
        for info in members:
            name = info.filename
            if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/"):
                raise FileRefused("zip_names", "an XLSX entry has an absolute or '..' name")
            total += info.file_size
            if info.file_size > max(info.compress_size, 1) * max_ratio:
                raise FileRefused(
                    "zip_ratio", f"an XLSX entry is compressed more than {max_ratio}:1 (zip bomb)"
                )
        if total > max_uncompressed:
            raise FileRefused(
                "zip_uncompressed",
                f"an XLSX may expand to at most {max_uncompressed} bytes (zip bomb)",
            )
        names = {info.filename for info in members}
        if _CONTENT_TYPES not in names or _WORKBOOK not in names:
            raise FileRefused(
                "xlsx_structure", "an XLSX must hold [Content_Types].xml and xl/workbook.xml"
            )
        try:
            with archive.open(_CONTENT_TYPES) as handle:
                declared = handle.read(_CONTENT_TYPES_MAX + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
            raise FileRefused("xlsx_structure", "[Content_Types].xml cannot be read") from exc
        if len(declared) > _CONTENT_TYPES_MAX or _SHEET_MAIN not in declared:
            raise FileRefused(
                "xlsx_structure", "[Content_Types].xml does not declare a spreadsheet workbook"
            )


def detect(
    content: bytes,
    name: str,
    *,
    max_bytes: int,
    max_members: int,
    max_uncompressed: int,
    max_ratio: int,
) -> str:
    """The file's type ("pdf" or "xlsx") when its content is one and its name agrees."""
    if not content:
        raise FileRefused("empty", "the file is empty")
    if len(content) > max_bytes:
        raise FileRefused("size", f"the file is larger than {max_bytes} bytes")
    claimed = extension_type(name)
    if content.startswith(b"PK\x03\x04"):
        _check_xlsx(content, max_members, max_uncompressed, max_ratio)
        found = XLSX
    elif _is_pdf(content):
        found = PDF
    else:
        raise FileRefused("content_type", "the content is neither a PDF nor an XLSX workbook")
    if found != claimed:
        raise FileRefused(
            "type_mismatch", f"the file is named .{claimed} but its content is {found.upper()}"
        )
    return found
