"""What a file holds, read on the agent's machine with the domain package's own converters
(``prudencial.domain.formats`` and ``sheets``): the payloads by agent and the errors the
enclave would give, by field and row, before anything is encrypted or sent."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from prudencial.domain import formats, sheets

from .envelope import LocalFile
from .errors import PayloadError

Found = list[tuple[dict[str, Any], dict[str, Any] | None]]


def workbook_rows(data: bytes) -> dict[str, list[Sequence[Any]]]:
    """Every sheet's cell values, row 1 the headers, blank rows kept (Excel row numbers hold)."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), data_only=True)
    except Exception:
        raise PayloadError("xlsx_unreadable") from None
    try:
        return {
            ws.title: [list(r) for r in ws.iter_rows(min_row=1, values_only=True)]
            for ws in book.worksheets
        }
    finally:
        book.close()


def payloads_of(
    kind: str,
    file: LocalFile,
    *,
    week: str,
    bucket_labels: Sequence[str] | None,
    energy_types: Sequence[str] = formats.DEFAULT_ENERGY_TYPES,
    agents: Mapping[str, str] | None = None,
) -> tuple[Found, list[dict[str, Any]]]:
    """The payloads of ``kind`` in a file, each with its Excel row map, and the file's errors.

    JSON: one payload, or a ``prudencial/batch/v1`` document's items of that kind. XLSX: the
    template's rows, one payload per agent (needs the week's ``bucket_labels``; ``agents``
    maps acronyms to CNPJs for the counterparties sheet)."""
    if file.format == "xlsx":
        if bucket_labels is None:
            return [], []
        parsed = sheets.rows_to_payloads(
            kind,
            workbook_rows(file.data),
            week=week,
            bucket_labels=bucket_labels,
            agents=agents,
            energy_types=energy_types,
        )
        errors = list(parsed.errors)
        for found in parsed.agent_errors.values():
            errors.extend(found)
        return [
            (payload, parsed.rows.get((kind, acronym)))
            for acronym, payload in sorted(parsed.payloads(kind).items())
        ], errors
    doc = file.payload
    if isinstance(doc, Mapping) and doc.get("schema") == formats.BATCH_SCHEMA_ID:
        slots, errors = formats.split_batch(doc, week=week)
        return [
            (slot[kind], None) for _, slot in sorted(slots.items()) if slot.get(kind) is not None
        ], list(errors)
    if not isinstance(doc, Mapping):
        return [], [{"field": "", "row": None, "rule": "must be a JSON object"}]
    return [(dict(doc), None)], []


def batch_agents(
    file: LocalFile, *, week: str, bucket_labels: Sequence[str] | None
) -> tuple[list[str], list[dict[str, Any]]]:
    """The acronyms a batch file covers (either kind) and its file-level errors."""
    if file.format == "xlsx":
        if bucket_labels is None:
            raise PayloadError("no_parameters", week=week)
        parsed = sheets.rows_to_payloads(
            "all", workbook_rows(file.data), week=week, bucket_labels=bucket_labels
        )
        return parsed.agents, list(parsed.errors)
    doc = file.payload
    if not isinstance(doc, Mapping) or doc.get("schema") != formats.BATCH_SCHEMA_ID:
        return [], [{"field": "schema", "row": None, "rule": f"must be {formats.BATCH_SCHEMA_ID}"}]
    slots, errors = formats.split_batch(doc, week=week)
    return sorted(slots), list(errors)


def acronym_of(payload: Any) -> str | None:
    who = payload.get("agent") if isinstance(payload, Mapping) else None
    acronym = who.get("acronym") if isinstance(who, Mapping) else None
    return acronym if isinstance(acronym, str) else None
