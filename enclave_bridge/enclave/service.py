"""The enclave's request dispatch: ``Service.handle(request)`` takes a parsed request and returns
the answer map the server frames. Every answer of an unlocked enclave is signed (JWS ES256) over
the request id, the request nonce, the op, the args' digest, a timestamp and the result.

Transport-independent. The concerns live apart: replay protection (replay.py), the key lifecycle
(lifecycle.py), batches and computation (batches.py); this module dispatches and signs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from enclave_bridge.wire.protocol import (
    E_BAD_REQUEST,
    E_BUSY,
    E_INTERNAL,
    E_LOCKED,
    E_UNKNOWN_OP,
    LOCKED_OPS,
    ProtocolError,
    Request,
    answer_body,
    describe_failure,
)

from .adherence import op_adherence
from .batches import BatchOps, _Batch
from .checks import check_envelope, check_kind
from .closing import CLOSING_STATEFUL_OPS, ClosingOps
from .compute import CheckPool
from .keys import KeyRing
from .lifecycle import KeyLifecycle, SealerFactory, _Signed
from .registry import RegistryStore
from .replay import STATEFUL_OPS, NonceCache
from .split import check_agents, check_week, split_task
from .validation import check_bucket_labels, check_energy_types, check_expected

logger = logging.getLogger(__name__)

VERSION = "1"
# Splits running at once: each holds a batch file's payloads (up to ~6 MiB of plaintext, some
# hundreds of MB parsed) in memory; more wait for a slot, or are told `busy` after SPLIT_WAIT_S.
SPLIT_SLOTS = 2
SPLIT_WAIT_S = 30.0


class Service(KeyLifecycle, BatchOps, ClosingOps):
    """The enclave's state and operations."""

    def __init__(
        self,
        *,
        nsm: Any,
        sealer_factory: SealerFactory,
        replay_window: float = 900.0,
        workers: int | None = None,
        limits: dict[str, Any] | None = None,
    ) -> None:
        self.nsm = nsm
        self.sealer_factory = sealer_factory
        self.keys: KeyRing | None = None
        self.nonces = NonceCache(replay_window)
        self.pool = CheckPool(workers)
        self.started = time.time()
        self.counts: Counter[str] = Counter()
        self.limits = limits or {}
        self._state_lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}
        self._week_parameters: dict[str, list[str]] = {}  # week → digests of its parameter sets
        self.registries = RegistryStore()
        self._split_slots = threading.BoundedSemaphore(SPLIT_SLOTS)
        self._ops: dict[str, Callable[[Request], Any]] = {
            "health": self.op_health,
            "describe": self.op_describe,
            "init": self.op_init,
            "unseal": self.op_unseal,
            "rotate": self.op_rotate,
            "attest": self.op_attest,
            "validate": self.op_validate,
            "registry": self.op_registry,
            "split": self.op_split,
            "batch_open": self.op_batch_open,
            "batch_add": self.op_batch_add,
            "compute": self.op_compute,
            "adherence": lambda req: op_adherence(self, req),
            "closing_chunk": self.op_closing_chunk,
            "parts_open": self.op_parts_open,
            "parts_add": self.op_parts_add,
            "closing_network": self.op_closing_network,
            "validate_trade_network": self.op_validate_trade_network,
        }

    # --- framing of answers ---------------------------------------------------------------------

    def handle(self, req: Request) -> dict[str, Any]:
        """Run one request and return its answer map; stateful ops go through the replay cache.

        The nonce entry a fresh stateful request opens is finished on every path (``finally``),
        so a retry of the same frame never waits on an attempt that died.
        """
        digest = req.args_digest
        handler = self._ops.get(req.op)
        if handler is None:
            return self._error(
                req,
                ProtocolError(
                    E_UNKNOWN_OP, f"unknown op; known ops: {', '.join(sorted(self._ops))}"
                ),
                digest,
            )
        if self.keys is None and req.op not in LOCKED_OPS:
            # Refused before the nonce is recorded: the host unlocks the enclave and resends the
            # same request (an agent's own attestation nonce included) without a replay refusal.
            return self._error(
                req,
                ProtocolError(E_LOCKED, "enclave is locked: send init (first boot) or unseal"),
                digest,
            )
        if req.op not in STATEFUL_OPS and req.op not in CLOSING_STATEFUL_OPS:
            return self._answer(req, handler, digest)
        try:
            cached = self.nonces.begin(req, digest.encode())
        except ProtocolError as exc:  # a replay or a full window: refused, and signed as such
            return self._error(req, exc, digest)
        if cached is not None:
            self.counts["retried"] += 1
            return cached
        answer: dict[str, Any] | None = None
        try:
            answer = self._answer(req, handler, digest)
        finally:
            self.nonces.finish(req.nonce, answer, _answer_size(answer))
        return answer

    def _answer(
        self, req: Request, handler: Callable[[Request], Any], digest: str
    ) -> dict[str, Any]:
        """Run the op; any failure becomes a (signed) error answer, never an escaping exception."""
        try:
            return self._run(req, handler, digest)
        except ProtocolError as exc:
            return self._error(req, exc, digest)
        except BaseException as exc:  # incl. a pyo3 PanicException: never end the thread
            logger.error(
                "op=%s id=%s failed unexpectedly: %s", req.op, req.id, describe_failure(exc)
            )
            return self._error(
                req,
                ProtocolError(E_INTERNAL, "the enclave failed to process the request"),
                digest,
            )

    def refusal(
        self,
        req_id: str | int | None,
        nonce: bytes | None,
        op: str | None,
        exc: ProtocolError,
        args_digest: str | None = None,
    ) -> dict[str, Any]:
        """An error answer, signed like any answer once the enclave holds keys, so nobody on the
        way can forge or alter an enclave's verdict (only a locked enclave's are unsigned). Also
        for a frame refused before it became a request (malformed, oversize, no slot), with
        whatever id, nonce and op were valid."""
        answer = error_answer(req_id, nonce, op, exc)
        keys = self.keys
        if keys is not None:
            body = answer_body(
                req_id=req_id,
                nonce=nonce or b"",
                op=op,
                result={"error": exc.to_dict()},
                args_digest=args_digest,
            )
            answer["answer"] = keys.sign(body)
        return answer

    def _error(self, req: Request, exc: ProtocolError, digest: str) -> dict[str, Any]:
        return self.refusal(req.id, req.nonce, req.op, exc, digest)

    def _run(self, req: Request, handler: Callable[[Request], Any], digest: str) -> dict[str, Any]:
        self.counts[req.op] += 1  # handle() has refused a locked enclave's other ops
        result = handler(req)
        if isinstance(result, _Signed):
            signer, result = result.keys, result.result
        else:
            signer = self.keys
        if signer is None:
            return {"id": req.id, "nonce": req.nonce, "op": req.op, "result": result}
        body = answer_body(
            req_id=req.id, nonce=req.nonce, op=req.op, result=result, args_digest=digest
        )
        return {"id": req.id, "nonce": req.nonce, "op": req.op, "answer": signer.sign(body)}

    # --- informational ---------------------------------------------------------------------------

    def op_health(self, req: Request) -> dict[str, Any]:
        return {
            "status": "ok",
            "state": "unlocked" if self.keys is not None else "locked",
            "uptime_s": round(time.time() - self.started, 3),
        }

    def op_describe(self, req: Request) -> dict[str, Any]:
        keys = self.keys
        return {
            "version": VERSION,
            "state": "unlocked" if keys is not None else "locked",
            "kid": keys.current.kid if keys else None,
            "kids": [e.kid for e in keys.envelope] if keys else [],
            "signing_kid": keys.signing.kid if keys else None,
            "pcrs": {str(i): v.hex() for i, v in sorted(self.nsm.pcrs().items()) if any(v)},
            "counts": dict(self.counts),
            "nonces_kept": len(self.nonces),
            "open_batches": len(self._batches),
            "registries": len(self.registries),
            "workers": self.pool.workers,
            "pools_lost": self.pool.lost,
            "limits": self.limits,
        }

    # --- validation and computation --------------------------------------------------------------

    def _registry(self, req: Request) -> Any:
        """The staged registry the args name (``registry_sha256``), or None when they name none
        (the acronym rule is then skipped); an unknown digest is ``unknown_registry``."""
        return self.registries.get(req.args.get("registry_sha256"))

    def op_registry(self, req: Request) -> dict[str, Any]:
        """Stage the public registry (CNPJ → acronym) under its canonical digest."""
        digest, count = self.registries.stage(req.args.get("entries"))
        return {"registry_sha256": digest, "entries": count}

    def op_validate(self, req: Request) -> dict[str, Any]:
        keys = self.keys
        assert keys is not None
        kind = check_kind(req.args.get("kind"))
        expected = check_expected(req.args.get("expected"))
        registry = self._registry(req)
        if registry is not None:
            if expected.get("registry") is not None:
                raise ProtocolError(
                    E_BAD_REQUEST, "name the registry by registry_sha256 or inline, not both"
                )
            expected["registry"] = registry
        outcome = check_envelope(keys, req.args.get("envelope"), kind, expected)
        return outcome.public()

    def op_split(self, req: Request) -> dict[str, Any]:
        """One batch file → per agent the verdicts and each payload re-encrypted (split.py)."""
        keys = self.keys
        assert keys is not None
        week = check_week(req.args.get("week"))
        agents = check_agents(req.args.get("agents"))
        energy_types = check_energy_types(req.args.get("energy_types"))
        labels = check_bucket_labels(req.args.get("bucket_labels"))  # None: the week's own
        registry = self._registry(req)
        options = {
            "week": week,
            "agents": agents,
            "energy_types": energy_types,
            "bucket_labels": labels,
            "registry": None if registry is None else dict(registry),
        }
        token = req.args.get("envelope")
        if not self._split_slots.acquire(timeout=SPLIT_WAIT_S):
            raise ProtocolError(E_BUSY, f"at most {SPLIT_SLOTS} splits run at once; retry later")
        try:
            # In a worker process: parsing a large workbook holds an interpreter lock for
            # seconds, which in this process would stall every other connection's validate.
            # Never here instead: a pool whose worker died (CheckPool.run) is dropped and the
            # request refused, since the input that killed a worker would kill the server.
            return self.pool.run(keys, split_task, token, options)
        finally:
            self._split_slots.release()


def error_answer(req_id: Any, nonce: Any, op: Any, exc: ProtocolError) -> dict[str, Any]:
    return {"id": req_id, "nonce": nonce, "op": op, "error": exc.to_dict()}


def _answer_size(answer: dict[str, Any] | None) -> int:
    token = answer.get("answer") if answer is not None else None
    return len(token) if isinstance(token, str) else 256
