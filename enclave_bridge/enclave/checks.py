"""Envelope → verdict: decrypt, parse (JSON or the XLSX template), validate. Also the batch worker.

The same function runs in the request thread (single ``validate``) and in the process pool
(batches), so a batch item and a single envelope get exactly the same verdict. Pool workers get
the key set once, at start, through their initializer (a pipe inside the enclave), not per task.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from enclave_bridge.wire.protocol import (
    E_INTERNAL,
    E_PAYLOAD,
    JsonRefused,
    ProtocolError,
    describe_failure,
)
from prudencial.domain.formats import pla
from prudencial.risk.concentration import counterparty_concentration
from prudencial.risk.leverage import leverage_factor

from .disclosure import published_concentration, published_leverage
from .envelope import open_envelope
from .keys import KeyRing
from .validation import (
    KINDS,
    Outcome,
    check_expected,
    fast_validator,
    parse_json,
    validate_payload,
    validator,
)
from .xlsx import is_xlsx, parse_workbook

logger = logging.getLogger(__name__)


def check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ProtocolError("bad_request", f"kind must be one of {', '.join(KINDS)}")
    return kind


def check_envelope(keys: KeyRing, token: Any, kind: str, expected: dict[str, Any]) -> Outcome:
    """Decrypt and validate one envelope. Raises ProtocolError for envelope/file-level faults."""
    plaintext = open_envelope(token, keys)
    digest = keys.digest(plaintext)
    if is_xlsx(plaintext):
        sheet = parse_workbook(
            plaintext,
            kind,
            agent=expected["agent"],
            week=expected["week"],
            **_sheet_options(expected),
        )
        return validate_payload(
            kind,
            sheet.payload,
            expected,
            digest=digest,
            rows=sheet.rows,
            source_errors=sheet.errors,
        )
    try:
        payload = parse_json(plaintext)
    except JsonRefused as exc:
        return Outcome(
            status="rejected",
            errors=[{"field": "(payload)", "row": None, "rule": exc.rule}],
            digest=digest,
            summary={"kind": kind},
        )
    except (ValueError, UnicodeDecodeError):
        return Outcome(
            status="rejected",
            errors=[
                {
                    "field": "(payload)",
                    "row": None,
                    "rule": "must be UTF-8 JSON (finite numbers) or the XLSX template",
                }
            ],
            digest=digest,
            summary={"kind": kind},
        )
    if not isinstance(payload, dict):
        raise ProtocolError(E_PAYLOAD, "payload must be a JSON object")
    return validate_payload(kind, payload, expected, digest=digest, finite_checked=True)


def _sheet_options(expected: dict[str, Any]) -> dict[str, Any]:
    """The week's energy types (and bucket labels), when the host's binding carries them."""
    return {k: expected[k] for k in ("energy_types", "bucket_labels") if expected.get(k)}


# --- process-pool side -------------------------------------------------------------------------

_WORKER_KEYS: KeyRing | None = None


def init_worker(keyset_cbor: bytes, server_pid: int) -> None:
    """Pool initializer: rebuild the key ring in the worker process, and exit with the server."""
    global _WORKER_KEYS
    _WORKER_KEYS = KeyRing.from_cbor(keyset_cbor)
    threading.Thread(target=_exit_with, args=(server_pid,), daemon=True).start()
    # Pay the one-time costs here, at warm-up, not inside the first batch.
    for kind in KINDS:
        validator(kind)
        fast_validator(kind)


def _exit_with(server_pid: int) -> None:
    """Workers forked by the forkserver are not the server's children: if the server is killed
    they would wait on their task queue forever, holding key material. Poll and follow it."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the pid was reused by another user's process
            os._exit(0)


def check_chunk(
    items: list[tuple[int, dict[str, Any], Any, Any]],
    parameters: Any,
    request_id: Any = None,
) -> list[dict[str, Any]]:
    """Pool task: check_agents with the worker's key ring."""
    assert _WORKER_KEYS is not None, "pool worker started without keys"
    return check_agents(_WORKER_KEYS, items, parameters, request_id=request_id)


def _log_failure(what: str, index: int, kind: str, exc: BaseException, request_id: Any) -> None:
    """Type and place of a caught failure (describe_failure: never its message, which may quote
    a declared value), with the item and the request it belongs to."""
    logger.warning(
        "request=%s item=%s %s: %s failed: %s", request_id, index, kind, what, describe_failure(exc)
    )


def _verdict(
    keys: KeyRing,
    token: Any,
    kind: str,
    agent: dict[str, Any],
    parameters: Any,
    *,
    index: int = -1,
    request_id: Any = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(public verdict, payload if accepted); a fault is ``{"status": "error", "error": ...}``.
    The binding carries the week's energy types and bucket labels from its parameters."""
    try:
        expected = check_expected(
            {
                "agent": agent,
                "week": parameters.week,
                "energy_types": list(parameters.energy_types),
                "bucket_labels": [b.label for b in parameters.buckets],
            }
        )
        outcome = check_envelope(keys, token, kind, expected)
        return outcome.public(), outcome.payload
    except ProtocolError as exc:
        return {"status": "error", "error": exc.to_dict()}, None
    except Exception as exc:  # never let one item break the batch; say nothing about its content
        _log_failure("check", index, kind, exc, request_id)
        return {
            "status": "error",
            "error": {"code": E_INTERNAL, "message": "item could not be checked"},
        }, None


def check_agents(
    keys: KeyRing,
    items: list[tuple[int, dict[str, Any], Any, Any]],
    parameters: Any,
    *,
    request_id: Any = None,
) -> list[dict[str, Any]]:
    """Per agent (index, agent, portfolio JWE, counterparties JWE or None): verdicts, payloads,
    and — for an accepted portfolio — the leverage factor and concentration (RiskParameters).

    Both envelopes of an agent are handled in the same task, so FA and concentration are computed
    where the plaintext already is, in parallel, and the main process only assembles.
    """
    out = []
    for index, agent, portfolio_token, cps_token in items:
        ref = {"acronym": agent["acronym"], "cnpj": agent["cnpj"]}
        entry: dict[str, Any] = {
            "index": index,
            "verdicts": {},
            "payloads": {},
            "leverage": None,
            "concentration": None,
        }
        where = {"index": index, "request_id": request_id}
        verdict, portfolio = _verdict(keys, portfolio_token, "portfolio", ref, parameters, **where)
        entry["verdicts"]["portfolio"] = verdict
        cps = None
        if cps_token is not None:
            verdict, cps = _verdict(keys, cps_token, "counterparties", ref, parameters, **where)
            entry["verdicts"]["counterparties"] = verdict
        if portfolio is not None:
            entry["payloads"]["portfolio"] = portfolio
            entry["leverage"] = _leverage(leverage_factor, portfolio, parameters, where)
            if cps is not None:
                entry["payloads"]["counterparties"] = cps
                entry["concentration"] = _concentration(
                    counterparty_concentration, cps, pla(portfolio), where
                )
        elif cps is not None:
            entry["payloads"]["counterparties"] = cps
        out.append(entry)
    return out


def _leverage(
    leverage_factor: Any, portfolio: dict[str, Any], parameters: Any, where: dict[str, Any]
) -> dict[str, Any]:
    """The published figures only (disclosure.py); the detail stays inside."""
    try:
        result = leverage_factor(portfolio, parameters)
    except Exception as exc:
        _log_failure("leverage factor", where["index"], "portfolio", exc, where["request_id"])
        # Any failure stays this agent's; the risk engine's messages may quote values: keep them in.
        return {"error": "leverage factor could not be computed for this portfolio"}
    return published_leverage(result)


def _concentration(
    concentration: Any, cps: dict[str, Any], pla: float, where: dict[str, Any]
) -> dict[str, Any]:
    try:
        result = concentration(cps, pla)
    except Exception as exc:
        _log_failure("concentration", where["index"], "counterparties", exc, where["request_id"])
        return {"error": "concentration could not be computed"}
    return published_concentration(result)
