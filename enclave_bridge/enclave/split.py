"""Op ``split``: one envelope holding a batch file (JSON ``prudencial/batch/v1`` or the
multi-agent XLSX template) → per agent, the verdicts on its portfolio and counterparties and each
payload re-encrypted as an envelope of its own.

The host says which agents the file covers (``agents``: the ones its user may submit for); a file
that names any other agent, or has no rows for one of them, is rejected whole — a file-level
error and no per-agent envelope — so a user cannot slip in a submission for an agent they do not
represent, and the host never stores a partial batch it did not announce. Each payload is judged
by the same rules as a single envelope (``formats.validate``: schema, business rules, the agent
and week binding, the registry's acronyms), and re-encrypted (RSA-OAEP-256 + A256GCM, compact
JWE) to the enclave's **current** envelope key: the host stores ciphertext it cannot read, and
the closing later opens it like any agent's envelope. The answer's ``format`` (``json`` or
``xlsx``) lets the host record a spreadsheet's submissions as such. A verdict's ``digest`` is the keyed digest
of the re-encrypted plaintext, so it equals the digest a later ``validate`` of that envelope gives.

Bounds: at most ``MAX_SPLIT_AGENTS`` agents in ``agents``; the envelope and plaintext limits of
envelope.py (8 Mi characters, 6 MiB); an XLSX file within ``xlsx.BATCH`` (6 MiB, 400,000 cells,
50,000 rows a sheet); a JSON file within ``MAX_BATCH_JSON_VALUES`` values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave_bridge.wire.protocol import (
    E_BAD_REQUEST,
    E_PAYLOAD,
    JsonRefused,
    ProtocolError,
    b64url,
)
from prudencial.domain import formats, sheets
from prudencial.domain.calendar import is_week_code

from .envelope import open_envelope
from .keys import CONTENT_ENC, ENVELOPE_ALG, KeyRing
from .validation import _summary as summary_of  # one summary for validate and split
from .validation import parse_json  # one strict JSON reader for an envelope and a batch file
from .xlsx import BATCH, is_xlsx, read_cells, week_labels

MAX_SPLIT_AGENTS = 2_000
# 2,000 agents of realistic size hold ~300,000 values; 1,000,000 leaves room and bounds the work
# (each value is walked by the schema once).
MAX_BATCH_JSON_VALUES = 1_000_000
MAX_FILE_ERRORS = 200
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


# --- args ------------------------------------------------------------------------------------------


def check_agents(raw: Any) -> list[dict[str, str]]:
    """The agents the host expects: 1 to MAX_SPLIT_AGENTS {acronym, cnpj}, each once."""
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_SPLIT_AGENTS:
        raise ProtocolError(
            E_BAD_REQUEST, f"agents must list 1 to {MAX_SPLIT_AGENTS} {{acronym, cnpj}}"
        )
    out: list[dict[str, str]] = []
    acronyms: set[str] = set()
    cnpjs: set[str] = set()
    for i, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("acronym"), str)
            or not isinstance(item.get("cnpj"), str)
            or not 0 < len(item["acronym"]) <= 40
            or len(item["cnpj"]) != 14
            or set(item) - {"acronym", "cnpj"}
        ):
            raise ProtocolError(
                E_BAD_REQUEST, f"agents[{i}] must be {{acronym: 1-40 characters, cnpj: 14}}"
            )
        if item["acronym"] in acronyms or item["cnpj"] in cnpjs:
            raise ProtocolError(E_BAD_REQUEST, f"agents[{i}] repeats an earlier agent")
        acronyms.add(item["acronym"])
        cnpjs.add(item["cnpj"])
        out.append({"acronym": item["acronym"], "cnpj": item["cnpj"]})
    return out


def check_week(raw: Any) -> str:
    if not is_week_code(raw):
        raise ProtocolError(E_BAD_REQUEST, "week must be a week code (YYYYMM + 3 digits)")
    return raw


# --- the split -------------------------------------------------------------------------------------


def encrypt_to(keys: KeyRing, plaintext: bytes) -> str:
    """A compact JWE (RSA-OAEP-256 + A256GCM) to the current envelope key: what an agent's
    software builds (docs/envelope.md §2), so ``open_envelope`` opens it like any other."""
    entry = keys.current
    header = {"alg": ENVELOPE_ALG, "enc": CONTENT_ENC, "kid": entry.kid}
    protected = b64url(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    cek, iv = os.urandom(32), os.urandom(12)
    wrapped = entry.private_key.public_key().encrypt(cek, _OAEP)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    return ".".join(
        (protected, b64url(wrapped), b64url(iv), b64url(sealed[:-16]), b64url(sealed[-16:]))
    )


def _file_error(field: str, rule: str, row: int | None = None) -> dict[str, Any]:
    return {"field": field, "row": row, "rule": rule}


def _rejected(errors: list[dict[str, Any]], digest: str) -> dict[str, Any]:
    shown = errors[:MAX_FILE_ERRORS]
    result: dict[str, Any] = {"status": "rejected", "errors": shown, "digest": digest, "agents": []}
    if len(errors) > len(shown):
        result["errors_truncated"] = True
    return result


def _from_json(plaintext: bytes, week: str) -> tuple[dict[str, dict[str, Any]], list, dict]:
    """{acronym: {kind: payload|None}}, file errors, {} (JSON has no Excel rows)."""
    try:
        doc = parse_json(plaintext, max_values=MAX_BATCH_JSON_VALUES)
    except JsonRefused as exc:
        return {}, [_file_error("(file)", exc.rule)], {}
    except (ValueError, UnicodeDecodeError):
        return (
            {},
            [_file_error("(file)", "must be UTF-8 JSON (finite numbers) or the XLSX template")],
            {},
        )
    if not isinstance(doc, dict):
        raise ProtocolError(E_PAYLOAD, "batch file must be a JSON object")
    found, errors = formats.split_batch(doc, week=week)
    return found, list(errors), {}


def _from_xlsx(
    plaintext: bytes,
    week: str,
    agents: Sequence[Mapping[str, str]],
    labels: Sequence[str],
    energy_types: Sequence[str],
) -> tuple[dict[str, dict[str, Any]], list, dict]:
    grid = read_cells(plaintext, BATCH)
    parsed = sheets.rows_to_payloads(
        "all",
        grid,
        week=week,
        bucket_labels=labels,
        agents={a["acronym"]: a["cnpj"] for a in agents},
        energy_types=energy_types,
    )
    found: dict[str, dict[str, Any]] = {}
    for acronym in parsed.agents:
        found[acronym] = {
            "portfolio": parsed.portfolios.get(acronym),
            "counterparties": parsed.counterparties.get(acronym),
        }
    extra = {
        "rows": parsed.rows,
        "agent_errors": parsed.agent_errors,
    }
    return found, list(parsed.errors), extra


def split_envelope(
    keys: KeyRing,
    token: Any,
    *,
    week: str,
    agents: Sequence[Mapping[str, str]],
    energy_types: Sequence[str] = formats.DEFAULT_ENERGY_TYPES,
    bucket_labels: Sequence[str] | None = None,
    registry: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The split's result (see the module docstring); ProtocolError for envelope-level faults."""
    plaintext = open_envelope(token, keys)
    file_digest = keys.digest(plaintext)
    labels = tuple(bucket_labels) if bucket_labels is not None else week_labels(week)
    # The file's format is no secret (the host records it as the submissions' channel).
    file_format = "xlsx" if is_xlsx(plaintext) else "json"
    if file_format == "xlsx":
        found, errors, extra = _from_xlsx(plaintext, week, agents, labels, energy_types)
    else:
        found, errors, extra = _from_json(plaintext, week)
    del plaintext
    if errors:
        return {**_rejected(errors, file_digest), "format": file_format}
    expected = {a["acronym"]: i for i, a in enumerate(agents)}
    foreign = [acronym for acronym in found if acronym not in expected]
    if foreign:
        # The file's acronyms are its own text: counted, never quoted.
        errors.append(
            _file_error(
                "agents",
                f"the file names {len(foreign)} agent(s) not listed for this batch: "
                "a batch covers exactly the agents it is submitted for",
            )
        )
    agent_errors = extra.get("agent_errors", {})
    for acronym, index in expected.items():
        slot = found.get(acronym) or {}
        if not any(slot.values()) and not agent_errors.get(acronym):
            errors.append(_file_error(f"agents[{index}]", "has no rows in the file"))
    if errors:
        return {**_rejected(errors, file_digest), "format": file_format}

    rows_of = extra.get("rows", {})
    out: list[dict[str, Any]] = []
    counts = {kind: {"accepted": 0, "rejected": 0} for kind in formats.KINDS}
    for who in agents:
        acronym = who["acronym"]
        slot = found.get(acronym) or {}
        entry: dict[str, Any] = {"acronym": acronym}
        for kind in formats.KINDS:
            payload = slot.get(kind)
            # The cells of this agent that are no month, choice or number, on this kind's
            # sheets: the verdict is those (as for a single envelope, rules run on clean cells).
            source = [
                e for e in agent_errors.get(acronym, []) if _sheet_of(e) in _KIND_SHEETS[kind]
            ]
            if payload is None and not source:
                entry[kind] = None
                continue
            found_errors = source or formats.validate(
                kind,
                payload,
                agent=who,
                week=week,
                energy_types=energy_types,
                registry=registry,
                rows=rows_of.get((kind, acronym)),
            )
            accepted = not found_errors
            counts[kind]["accepted" if accepted else "rejected"] += 1
            envelope, digest = _reencrypt(keys, kind, payload)
            entry[kind] = {
                "verdict": {
                    "status": "accepted" if accepted else "rejected",
                    "errors": found_errors[: formats.MAX_ERRORS],
                    "digest": digest,
                    "summary": summary_of(kind),
                },
                "envelope": envelope,
            }
        out.append(entry)
    return {
        "status": "accepted",
        "errors": [],
        "digest": file_digest,
        "format": file_format,
        "kid": keys.current.kid,
        "agents": out,
        "counts": {"agents": len(out), **counts},
    }


_KIND_SHEETS = {
    "portfolio": frozenset(sheets.SHEETS_BY_KIND["portfolio"]),
    "counterparties": frozenset(sheets.SHEETS_BY_KIND["counterparties"]),
}


def _sheet_of(error: Mapping[str, Any]) -> str | None:
    """The sheet an XLSX error names (``sheet Contratos column '...'``)."""
    field = str(error.get("field", ""))
    if not field.startswith("sheet "):
        return None
    rest = field[len("sheet ") :]
    return next((name for name in sheets.SHEETS if rest.startswith(name)), None)


def split_task(token: Any, options: dict[str, Any]) -> dict[str, Any]:
    """split_envelope in a pool worker, with the key ring the worker was started with."""
    from . import checks

    assert checks._WORKER_KEYS is not None, "pool worker started without keys"
    return split_envelope(checks._WORKER_KEYS, token, **options)


def _reencrypt(keys: KeyRing, kind: str, payload: Any) -> tuple[str | None, str | None]:
    """The payload's own envelope and the keyed digest of its plaintext; (None, None) for a
    rejected payload that is not JSON-serialisable (cells the parser could not convert)."""
    if payload is None:
        return None, None
    try:
        plaintext = formats.canonical_json(formats.normalize(kind, payload))
    except (TypeError, ValueError):
        return None, None
    return encrypt_to(keys, plaintext), keys.digest(plaintext)
