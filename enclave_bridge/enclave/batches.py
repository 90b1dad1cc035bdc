"""Batches: a week's envelopes staged in chunks (``batch_open`` + ``batch_add``) or sent inline,
then computed (``compute``: FA and concentration per agent, and the network model), with the
week's parameters pinned for the enclave's lifetime. A mixin of Service."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import cbor2

from enclave_bridge.wire.protocol import E_BAD_REQUEST, E_BUSY, ProtocolError, Request

from .compute import (
    check_batch,
    mark_duplicates,
    parse_items,
    parse_network,
    parse_parameters,
    public_entries,
    run_network,
)

MAX_OPEN_BATCHES = 4
MAX_BATCH_ITEMS = 100_000
BATCH_TTL_SECONDS = 1800.0
#: When all MAX_OPEN_BATCHES are open, one idle this long is dropped for a new one: a host worker
#: killed between batch_open and its compute leaves its batch behind, and four such leftovers
#: would otherwise refuse every batch (busy) until the TTL.
BATCH_EVICT_IDLE_SECONDS = 120.0
#: Distinct parameter sets one week may be computed with in an enclave's lifetime: the closing
#: and up to two corrections (docs/enclave.md § Parameter pinning). Each extra set lets the host
#: read the same envelopes under other parameters, so the number is small and fixed.
MAX_PARAMETER_SETS_PER_WEEK = 3


@dataclass
class _Batch:
    """A staged batch: checked entries by chunk sequence number (chunks may arrive in parallel)."""

    parameters: Any
    parts: dict[int, list[dict[str, Any]]]
    touched: float
    reserved: int = 0
    parameters_sha256: str = ""

    def entries(self) -> list[dict[str, Any]]:
        return [entry for seq in sorted(self.parts) for entry in self.parts[seq]]


class BatchOps:
    """batch_open / batch_add / compute over the staged or inline items."""

    keys: Any
    pool: Any
    _state_lock: threading.Lock
    _batches: dict[str, _Batch]
    _week_parameters: dict[str, list[str]]

    def _purge_batches(self, now: float) -> None:
        """Drop batches idle past the TTL (and their plaintext). Caller holds the state lock."""
        for key in [k for k, b in self._batches.items() if now - b.touched > BATCH_TTL_SECONDS]:
            del self._batches[key]

    def _batch(self, batch_id: Any) -> _Batch:
        now = time.monotonic()
        with self._state_lock:
            self._purge_batches(now)
            batch = self._batches.get(batch_id) if isinstance(batch_id, str) else None
            if batch is None:
                raise ProtocolError(E_BAD_REQUEST, "batch is unknown or expired")
            batch.touched = now
            return batch

    def _pinned_parameters(self, raw: Any) -> Any:
        return self._pin_parameters(raw)[0]

    def _pin_parameters(self, raw: Any) -> tuple[Any, str]:
        """Parse a week's parameters and pin them, with their digest: within this enclave's
        lifetime a week is computed with at most MAX_PARAMETER_SETS_PER_WEEK parameter sets (the
        closing and its corrections), so the host cannot query the same envelopes under many
        crafted parameter sets and difference the published figures."""
        parameters = parse_parameters(raw)
        # Canonical CBOR, not JSON: the raw map may hold byte strings (ignored by the parser).
        digest = hashlib.sha256(cbor2.dumps(raw, canonical=True)).hexdigest()
        with self._state_lock:
            pinned = self._week_parameters.setdefault(parameters.week, [])
            if digest not in pinned:
                if len(pinned) >= MAX_PARAMETER_SETS_PER_WEEK:
                    raise ProtocolError(
                        E_BAD_REQUEST,
                        f"week {parameters.week} was already computed with "
                        f"{MAX_PARAMETER_SETS_PER_WEEK} parameter sets (the closing and its "
                        "corrections); it takes no other",
                    )
                pinned.append(digest)
        return parameters, digest

    def op_batch_open(self, req: Request) -> dict[str, Any]:
        """Start a batch too large for one frame: parameters now, items in batch_add chunks."""
        parameters, digest = self._pin_parameters(req.args.get("parameters"))
        with self._state_lock:
            now = time.monotonic()
            self._purge_batches(now)
            if len(self._batches) >= MAX_OPEN_BATCHES:
                idle = min(self._batches, key=lambda k: self._batches[k].touched)
                if now - self._batches[idle].touched <= BATCH_EVICT_IDLE_SECONDS:
                    raise ProtocolError(E_BUSY, f"at most {MAX_OPEN_BATCHES} batches may be open")
                del self._batches[idle]
            batch_id = uuid.uuid4().hex
            self._batches[batch_id] = _Batch(
                parameters, {}, time.monotonic(), parameters_sha256=digest
            )
        return {"batch": batch_id, "week": parameters.week}

    def op_batch_add(self, req: Request) -> dict[str, Any]:
        """Check one chunk of a staged batch; ``seq`` orders chunks sent over parallel connections."""
        batch = self._batch(req.args.get("batch"))
        items = parse_items(req.args.get("items"))
        seq = req.args.get("seq")
        if seq is not None and (
            isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < MAX_BATCH_ITEMS
        ):
            raise ProtocolError(
                E_BAD_REQUEST, f"seq must be an integer from 0 to {MAX_BATCH_ITEMS - 1}"
            )
        with self._state_lock:
            if batch.reserved + len(items) > MAX_BATCH_ITEMS:
                raise ProtocolError(
                    E_BAD_REQUEST, f"a batch holds at most {MAX_BATCH_ITEMS} agents"
                )
            if seq is None:
                seq = max(batch.parts, default=-1) + 1
            if seq in batch.parts:
                raise ProtocolError(E_BAD_REQUEST, "seq was already added to this batch")
            batch.parts[seq] = []  # reserve the slot while the chunk is checked
            batch.reserved += len(items)
        assert self.keys is not None
        entries = check_batch(self.pool, self.keys, items, batch.parameters, req.id)
        with self._state_lock:
            batch.parts[seq] = entries
        return {
            "batch": req.args["batch"],
            "seq": seq,
            "added": len(entries),
            "accepted": sum(1 for e in entries if "portfolio" in e["payloads"]),
        }

    def op_compute(self, req: Request) -> dict[str, Any]:
        """FA + concentration per agent and the network model, for an inline or staged batch."""
        started = time.perf_counter()
        network = parse_network(req.args.get("network"))
        if "batch" in req.args:
            batch = self._batch(req.args["batch"])
            with self._state_lock:
                self._batches.pop(req.args["batch"], None)
            parameters, entries = batch.parameters, batch.entries()
        else:
            parameters = self._pinned_parameters(req.args.get("parameters"))
            items = parse_items(req.args.get("items"))
            if len(items) > MAX_BATCH_ITEMS:
                raise ProtocolError(
                    E_BAD_REQUEST, f"a batch holds at most {MAX_BATCH_ITEMS} agents"
                )
            assert self.keys is not None
            entries = check_batch(self.pool, self.keys, items, parameters, req.id)
        mark_duplicates(entries)
        checked = time.perf_counter()
        summary = run_network(entries, parameters, network)
        accepted = sum(1 for e in entries if "portfolio" in e["payloads"])
        result = {
            "week": parameters.week,
            "agents": public_entries(entries),
            "network": summary,
            "counts": {
                "agents": len(entries),
                "accepted": accepted,
                "rejected": len(entries) - accepted,
            },
            "timing_s": {
                "check": round(checked - started, 3),
                "network": round(time.perf_counter() - checked, 3),
            },
        }
        entries.clear()  # plaintext payloads go as soon as the answer is built
        return result
