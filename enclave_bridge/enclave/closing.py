"""The weekly closing's enclave ops (docs/enclave.md, "Closing"). A mixin of Service.

- ``closing_chunk`` ``{batch, closing, chunk, registry_sha256}``: a staged batch (batch_open /
  batch_add, the ``compute`` op's staging) is consumed: per agent the verdicts, FA and
  concentration (published figures only), the R$ breakdown sealed to the portfolio envelope's
  reply key (reply.py), and the chunk's network part sealed to the key ring (network_input.py).
  ``registry_sha256`` names the staged registry: the counterparties' acronym rule of
  ``validate`` is applied to the payloads the batch accepted (an unknown digest is
  ``unknown_registry``, as for ``validate``).
- ``parts_open`` / ``parts_add`` ``{parts, seq, items}``: network parts staged in frames under
  the limit (idempotent per seq), named ``{"staged": id}`` by ``closing_network``.
- ``closing_network`` ``{parameters, parts, trade_network, options, previous[, previous_week,
  closing]}``: the market from every part — edges the week's registered contracts when
  ``trade_network`` is a valid prudencial/contracts/v1 envelope, else the counterparties
  declarations — and the network model (``prudencial.risk.network.network_risk``), then the
  systemic measures on the same market (``options.systemic``, default enabled) and the
  communities' transition from ``previous`` (network_measures.py); published figures only.
  ``trade_network`` may also be a list of envelopes, or ``{"staged": id}`` of such a list staged
  with ``parts_open``/``parts_add``: one set of parts (``part`` 1..n of one set, in index
  order), concatenated under ``formats.MAX_TRADE_NETWORK_CONTRACTS``; any fault
  is an error naming ``trade_network[i]``.
- ``validate_trade_network`` ``{envelope, week[, part]}``: the signed verdict ``{status,
  errors, contracts}`` on a staff upload; the document's ``part`` must be the args' one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from enclave_bridge.wire.protocol import (
    E_BAD_REQUEST,
    E_PAYLOAD,
    JsonRefused,
    ProtocolError,
    Request,
    describe_failure,
)
from prudencial.domain import formats
from prudencial.domain.calendar import is_week_code
from prudencial.risk.concentration import counterparty_concentration
from prudencial.risk.leverage import leverage_factor

from .compute import mark_duplicates, parse_network, public_entries, run_market
from .envelope import open_envelope
from .network_input import (
    MAX_PART_CHARS,
    MAX_PARTS,
    agent_input,
    market_from_inputs,
    open_part,
    seal_part,
)
from .network_measures import systemic_answer, tracking_answer
from .reply import breakdown_document, seal_breakdown
from .split import check_week
from .validation import parse_json

logger = logging.getLogger(__name__)

# Ops whose answers the replay cache keeps (their input is consumed on the first run).
CLOSING_STATEFUL_OPS = frozenset({"closing_chunk", "closing_network"})
MAX_CLOSING_CHARS = 64
MAX_CHUNK_INDEX = 1_000_000
MAX_OPEN_PART_SETS = 4
PARTS_TTL_SECONDS = 1800.0
MAX_PREVIOUS = 100_000
TRADE_NETWORK_ERRORS_SHOWN = 20
# JSON values of a trade network: 4 keys of ≤ 6 values per contract, plus the envelope's own.
MAX_TRADE_NETWORK_VALUES = 8 * formats.MAX_TRADE_CONTRACTS + 64
_ANY_PART: Any = object()  # _trade_network without a part to match (closing_network's own checks)


@dataclass
class _Parts:
    items: dict[int, list[str]]
    touched: float
    chars: int = 0


def _check_closing(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_CLOSING_CHARS
        or not value.isprintable()
    ):
        raise ProtocolError(
            E_BAD_REQUEST, f"closing must be 1 to {MAX_CLOSING_CHARS} printable characters"
        )
    return value


def _check_chunk(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_CHUNK_INDEX:
        raise ProtocolError(E_BAD_REQUEST, f"chunk must be an integer in 0..{MAX_CHUNK_INDEX - 1}")
    return value


def _check_previous(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > MAX_PREVIOUS
        or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in value.items()
        )
    ):
        raise ProtocolError(
            E_BAD_REQUEST, "previous must map agent acronyms to last week's community (integer)"
        )
    return value


def apply_registry(entry: dict[str, Any], registry: Any) -> None:
    """The counterparties' acronym rule (formats.rule_errors with the registry) on a payload
    the batch accepted without it: a breach rejects the payload as ``validate`` would."""
    cps = entry["payloads"].get("counterparties")
    if registry is None or cps is None:
        return
    errors = formats.rule_errors(
        "counterparties",
        cps,
        agent=entry["agent"],
        week=cps["week"],
        registry=registry,
    )
    if errors:
        verdict = entry["verdicts"]["counterparties"]
        verdict["status"] = "rejected"
        verdict["errors"] = errors[: formats.MAX_ERRORS]
        del entry["payloads"]["counterparties"]
        entry["concentration"] = None


def _breakdown(entry: dict[str, Any], parameters: Any, request_id: Any) -> str | None:
    """The R$ breakdown sealed to the entry's reply key (None without one or on a failure of
    the engine, which is logged by type only: its message may quote a value)."""
    reply = entry.get("reply")
    portfolio = entry["payloads"].get("portfolio")
    if reply is None or portfolio is None or "error" in (entry.get("leverage") or {}):
        return None
    try:
        leverage = leverage_factor(portfolio, parameters)
        cps = entry["payloads"].get("counterparties")
        concentration = (
            counterparty_concentration(cps, formats.pla(portfolio)) if cps is not None else None
        )
        document = breakdown_document(parameters.week, entry["agent"], leverage, concentration)
        return seal_breakdown(reply, document)
    except Exception as exc:
        logger.warning("request=%s breakdown failed: %s", request_id, describe_failure(exc))
        return None


class ClosingOps:
    """closing_chunk / parts_open / parts_add / closing_network / validate_trade_network."""

    keys: Any
    pool: Any
    registries: Any
    _state_lock: threading.Lock
    _batches: dict[str, Any]

    def _part_sets(self) -> dict[str, _Parts]:
        sets = getattr(self, "_closing_parts", None)
        if sets is None:
            sets = self._closing_parts = {}
        return sets

    # --- chunks ---------------------------------------------------------------------------------

    def op_closing_chunk(self, req: Request) -> dict[str, Any]:
        started = time.perf_counter()
        keys = self.keys
        assert keys is not None
        closing = _check_closing(req.args.get("closing"))
        chunk = _check_chunk(req.args.get("chunk"))
        registry = self.registries.get(req.args.get("registry_sha256"))
        batch = self._batch(req.args.get("batch"))  # type: ignore[attr-defined]
        with self._state_lock:
            self._batches.pop(req.args["batch"], None)
        parameters, entries = batch.parameters, batch.entries()
        try:
            mark_duplicates(entries)
            inputs = []
            for entry in entries:
                apply_registry(entry, registry)
                entry["breakdown"] = _breakdown(entry, parameters, req.id)
                if "portfolio" in entry["payloads"] and "error" not in entry:
                    inputs.append(agent_input(entry, parameters))
            checked = time.perf_counter()
            part = (
                seal_part(keys, week=parameters.week, closing=closing, chunk=chunk, inputs=inputs)
                if inputs
                else None
            )
            agents = public_entries(entries)
            for item, entry in zip(agents, entries, strict=True):
                item["breakdown"] = entry["breakdown"]
            accepted = sum(1 for e in entries if "portfolio" in e["payloads"])
            return {
                "week": parameters.week,
                "closing": closing,
                "chunk": chunk,
                "parameters_sha256": batch.parameters_sha256,
                "agents": agents,
                "network_part": part,
                "counts": {
                    "agents": len(entries),
                    "accepted": accepted,
                    "rejected": len(entries) - accepted,
                },
                "timing_s": {
                    "closing": round(checked - started, 3),
                    "seal": round(time.perf_counter() - checked, 3),
                },
            }
        finally:
            entries.clear()  # plaintext payloads go as soon as the answer is built

    # --- staged parts ---------------------------------------------------------------------------

    def _purge_parts(self, now: float) -> None:
        sets = self._part_sets()
        for key in [k for k, p in sets.items() if now - p.touched > PARTS_TTL_SECONDS]:
            del sets[key]

    def op_parts_open(self, req: Request) -> dict[str, Any]:
        now = time.monotonic()
        with self._state_lock:
            self._purge_parts(now)
            sets = self._part_sets()
            if len(sets) >= MAX_OPEN_PART_SETS:
                raise ProtocolError(
                    E_BAD_REQUEST, f"at most {MAX_OPEN_PART_SETS} part sets may be open at once"
                )
            staged = uuid.uuid4().hex
            sets[staged] = _Parts({}, now)
        return {"parts": staged}

    def op_parts_add(self, req: Request) -> dict[str, Any]:
        """Add a frame of sealed parts under ``seq``; the same seq with the same parts again
        (a retry) is answered as the first time."""
        staged, seq, items = req.args.get("parts"), req.args.get("seq"), req.args.get("items")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < MAX_PARTS:
            raise ProtocolError(E_BAD_REQUEST, f"seq must be an integer in 0..{MAX_PARTS - 1}")
        if not isinstance(items, list) or not all(
            isinstance(p, str) and 0 < len(p) <= MAX_PART_CHARS for p in items
        ):
            raise ProtocolError(E_BAD_REQUEST, "items must be a list of sealed network parts")
        with self._state_lock:
            found = self._part_sets().get(staged) if isinstance(staged, str) else None
            if found is None:
                raise ProtocolError(E_BAD_REQUEST, "parts is unknown or expired")
            found.touched = time.monotonic()
            if seq in found.items:
                if found.items[seq] != items:
                    raise ProtocolError(E_BAD_REQUEST, "seq was already added with other parts")
            else:
                total = sum(len(v) for v in found.items.values()) + len(items)
                if total > MAX_PARTS:
                    raise ProtocolError(E_BAD_REQUEST, f"a closing has at most {MAX_PARTS} parts")
                found.items[seq] = list(items)
            count = sum(len(v) for v in found.items.values())
        return {"parts": staged, "seq": seq, "count": count}

    def _parts_of(self, raw: Any) -> list[str]:
        if isinstance(raw, dict) and set(raw) == {"staged"}:
            with self._state_lock:
                found = (
                    self._part_sets().pop(raw["staged"], None)
                    if isinstance(raw["staged"], str)
                    else None
                )
            if found is None:
                raise ProtocolError(E_BAD_REQUEST, "parts.staged is unknown or expired")
            return [p for seq in sorted(found.items) for p in found.items[seq]]
        if not isinstance(raw, list) or len(raw) > MAX_PARTS:
            raise ProtocolError(
                E_BAD_REQUEST,
                f"parts must be a list of at most {MAX_PARTS} sealed parts or {{staged: id}}",
            )
        return raw

    # --- the network ----------------------------------------------------------------------------

    def op_closing_network(self, req: Request) -> dict[str, Any]:
        started = time.perf_counter()
        keys = self.keys
        assert keys is not None
        parameters = self._pinned_parameters(req.args.get("parameters"))  # type: ignore[attr-defined]
        options = parse_network(req.args.get("options"), systemic=True)
        previous = _check_previous(req.args.get("previous"))
        previous_week = req.args.get("previous_week")
        if previous_week is not None and not is_week_code(previous_week):
            raise ProtocolError(
                E_BAD_REQUEST, "previous_week must be a week code (YYYYMM + 3 digits)"
            )
        closing = req.args.get("closing")
        if closing is not None:
            closing = _check_closing(closing)
        inputs: list[dict[str, Any]] = []
        seen: set[str] = set()
        duplicates = 0
        for index, token in enumerate(self._parts_of(req.args.get("parts"))):
            doc = open_part(keys, token, index, week=parameters.week)
            if closing is not None and doc.get("closing") != closing:
                raise ProtocolError(E_BAD_REQUEST, f"parts[{index}] was sealed for another closing")
            for agent in doc["agents"]:
                if agent["acronym"] in seen or agent["cnpj"] in seen:
                    duplicates += 1
                    continue
                seen.update((agent["acronym"], agent["cnpj"]))
                inputs.append(agent)
        opened = time.perf_counter()
        result: dict[str, Any] = {"week": parameters.week, "closing": closing}
        contracts = None
        token = req.args.get("trade_network")
        if isinstance(token, dict):  # a set of parts staged with parts_open / parts_add
            try:
                token = self._parts_of(token)
            except ProtocolError as exc:
                raise ProtocolError(exc.code, f"trade_network: {exc.message}") from None
        if isinstance(token, list):
            result.update(self._trade_network_set(token, parameters))
            contracts = result.pop("_contracts")
        elif token is not None:
            verdict, payload = self._trade_network(token, parameters.week, parameters)
            result["trade_network_receipt"] = hashlib.sha256(token.encode()).hexdigest()
            result["trade_network"] = {
                "status": verdict["status"],
                "errors": verdict["errors"][:TRADE_NETWORK_ERRORS_SHOWN],
                "contracts": verdict["contracts"],
            }
            if payload is not None:
                contracts = payload["contracts"]
        else:
            result["trade_network_receipt"] = None
        result["source"] = "trade_network" if contracts is not None else "counterparties"
        market, counts = market_from_inputs(
            inputs, parameters, options["horizon_buckets"], trade_network=contracts
        )
        counts["duplicate_agents"] = duplicates
        inputs.clear()
        summary, engine, scenarios = run_market(market, counts, parameters, options, raw=True)
        result.update(summary)
        networked = time.perf_counter()
        result["systemic"] = systemic_answer(
            market, engine, scenarios, options["systemic"], request_id=req.id
        )
        del engine, scenarios, market
        measured = time.perf_counter()
        result["tracking"] = tracking_answer(
            previous,
            result.get("agents"),
            week=parameters.week,
            previous_week=previous_week,
            threshold=options["tracking"]["threshold"],
        )
        result["timing_s"] = {
            "open": round(opened - started, 3),
            "network": round(networked - opened, 3),
            "systemic": round(measured - networked, 3),
            "tracking": round(time.perf_counter() - measured, 3),
        }
        return result

    # --- the trade network ----------------------------------------------------------------------

    def _trade_network_set(self, tokens: list[Any], parameters: Any) -> dict[str, Any]:
        """A trade network sent in parts (one set, in index order): every envelope opened and
        accepted, their ``part`` forming exactly one set 1..n of the closing's week, the
        contracts concatenated under MAX_TRADE_NETWORK_CONTRACTS. Any fault raises ProtocolError
        naming ``trade_network[i]``; ``_contracts`` carries the edges (popped by the caller)."""
        if not 0 < len(tokens) <= formats.MAX_TRADE_NETWORK_PARTS:
            raise ProtocolError(
                E_BAD_REQUEST,
                "trade_network must be one envelope or a list of 1 to "
                f"{formats.MAX_TRADE_NETWORK_PARTS} envelopes (one set, in index order)",
            )
        contracts: list[dict[str, Any]] = []
        receipts: list[str] = []
        set_id = None
        for i, token in enumerate(tokens):
            name = f"trade_network[{i}]"
            if not isinstance(token, str):
                raise ProtocolError(E_BAD_REQUEST, f"{name} must be a JWE compact string")
            try:
                verdict, payload = self._trade_network(token, parameters.week, parameters)
            except ProtocolError as exc:
                raise ProtocolError(exc.code, f"{name}: {exc.message}") from None
            if payload is None:
                fields = ", ".join(str(e.get("field")) for e in verdict["errors"][:5])
                raise ProtocolError(E_BAD_REQUEST, f"{name} was rejected ({fields})")
            part = payload.get("part")
            if part is None:
                raise ProtocolError(E_BAD_REQUEST, f"{name}.part is required in a set of parts")
            if set_id is None:
                set_id = part["set"]
            if part["set"] != set_id:
                raise ProtocolError(E_BAD_REQUEST, f"{name}.part.set must be the set of part 1")
            if part["count"] != len(tokens):
                raise ProtocolError(
                    E_BAD_REQUEST, f"{name}.part.count must be the {len(tokens)} parts sent"
                )
            if part["index"] != i + 1:
                raise ProtocolError(
                    E_BAD_REQUEST, f"{name}.part.index must be {i + 1} (one set, in index order)"
                )
            if len(contracts) + len(payload["contracts"]) > formats.MAX_TRADE_NETWORK_CONTRACTS:
                raise ProtocolError(
                    E_BAD_REQUEST,
                    f"{name}: a trade network has at most "
                    f"{formats.MAX_TRADE_NETWORK_CONTRACTS} contracts in all its parts",
                )
            contracts.extend(payload["contracts"])
            receipts.append(hashlib.sha256(token.encode()).hexdigest())
            del payload
        return {
            "trade_network_receipt": receipts[0],
            "trade_network": {
                "status": "accepted",
                "errors": [],
                "contracts": len(contracts),
                "set": set_id,
                "parts": len(receipts),
                "receipts": receipts,
            },
            "_contracts": contracts,
        }

    def _trade_network(
        self, token: Any, week: str, parameters: Any = None, *, part: Any = _ANY_PART
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(verdict {status, errors, contracts}, payload if accepted) of a trade network JWE;
        envelope-level faults raise ProtocolError (as validate does). ``part`` given (None: a
        whole network), the document's own ``part`` must be it, else it is rejected."""
        plaintext = open_envelope(token, self.keys)
        try:
            payload = parse_json(plaintext, max_values=MAX_TRADE_NETWORK_VALUES)
        except JsonRefused as exc:
            errors = [{"field": "(payload)", "row": None, "rule": exc.rule}]
            return {"status": "rejected", "errors": errors, "contracts": 0}, None
        except (ValueError, UnicodeDecodeError):
            errors = [{"field": "(payload)", "row": None, "rule": "must be UTF-8 JSON"}]
            return {"status": "rejected", "errors": errors, "contracts": 0}, None
        if not isinstance(payload, dict):
            raise ProtocolError(E_PAYLOAD, "payload must be a JSON object")
        labels = None if parameters is None else [b.label for b in parameters.buckets]
        errors = formats.contracts_errors(payload, week=week, bucket_labels=labels)
        if not errors and part is not _ANY_PART and payload.get("part") != part:
            rule = (
                "must be absent: the envelope was uploaded as a whole network"
                if part is None
                else "must be the part the envelope was uploaded as (set, index, count)"
            )
            errors = [{"field": "part", "row": None, "rule": rule}]
        if errors:
            return {"status": "rejected", "errors": errors, "contracts": 0}, None
        verdict = {"status": "accepted", "errors": [], "contracts": len(payload["contracts"])}
        return verdict, payload

    def op_validate_trade_network(self, req: Request) -> dict[str, Any]:
        """``{envelope, week[, part]}``: ``part`` (``{set, index, count}`` or absent/None for a
        whole network) is what the host stored with the upload; the document must carry it."""
        week = check_week(req.args.get("week"))
        part = req.args.get("part")
        if part is not None:
            errors = formats.contracts_part_errors(part)
            if errors:
                raise ProtocolError(
                    E_BAD_REQUEST, f"{errors[0]['field']} {errors[0]['rule']} (in the args)"
                )
        verdict, _ = self._trade_network(req.args.get("envelope"), week, part=part)
        return verdict
