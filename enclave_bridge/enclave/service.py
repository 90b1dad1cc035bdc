"""The enclave's operations, its key state (locked → unlocked) and replay protection.

Transport-independent: ``Service.handle(request)`` takes a parsed request and returns the answer
map the server frames. Every answer of an unlocked enclave is signed (JWS ES384) over the request
id, the request nonce, the op, a timestamp and the result.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cbor2

from enclave_bridge.wire.protocol import (
    E_ALREADY_UNLOCKED,
    E_BAD_REQUEST,
    E_BUSY,
    E_IN_PROGRESS,
    E_INTERNAL,
    E_LOCKED,
    E_REPLAY,
    E_SEAL,
    E_UNKNOWN_OP,
    LOCKED_OPS,
    ProtocolError,
    Request,
    answer_body,
    b64url,
    describe_failure,
)

from .checks import check_envelope, check_kind
from .compute import (
    CheckPool,
    check_batch,
    mark_duplicates,
    parse_items,
    parse_network,
    parse_parameters,
    public_entries,
    run_network,
)
from .keys import KeyRing, Sealer
from .validation import check_expected

logger = logging.getLogger(__name__)

VERSION = "1"
MAX_OPEN_BATCHES = 4
MAX_BATCH_ITEMS = 100_000
BATCH_TTL_SECONDS = 1800.0

SealerFactory = Callable[[dict[str, str] | None], Sealer]


@dataclass
class _Seen:
    req_id: str | int
    op: str
    digest: bytes
    expires: float
    answer: dict[str, Any] | None = None
    size: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class NonceCache:
    """Refuses a nonce seen within the window; replays the stored answer for a retried request.

    A retry (same nonce, same id, same op and args) is idempotent: it gets the first answer, or
    waits for it while the first attempt is still running. Anything else with a known nonce is a
    replay and is refused.
    """

    def __init__(self, window: float, max_entries: int = 200_000, max_bytes: int = 256 << 20):
        self.window = window
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Seen] = OrderedDict()
        self._bytes = 0

    def _expire(self, now: float) -> None:
        """Drop expired nonces only: evicting one still inside the window would let it replay."""
        while self._entries:
            nonce, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            self._entries.popitem(last=False)
            self._bytes -= entry.size

    def begin(self, req: Request, digest: bytes) -> dict[str, Any] | None:
        """None for a fresh nonce (caller must call finish); the stored answer for a retry."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            entry = self._entries.get(req.nonce)
            if entry is None:
                if len(self._entries) >= self.max_entries:
                    raise ProtocolError(
                        E_BUSY, "too many requests inside the replay window; retry later"
                    )
                self._entries[req.nonce] = _Seen(req.id, req.op, digest, now + self.window)
                return None
        if entry.req_id != req.id or entry.op != req.op or entry.digest != digest:
            raise ProtocolError(E_REPLAY, "nonce was already used by another request (replay)")
        if not entry.done.wait(timeout=120):
            raise ProtocolError(E_IN_PROGRESS, "the first attempt of this request is still running")
        if entry.answer is None:
            raise ProtocolError(E_REPLAY, "nonce was already used; its answer is no longer kept")
        return entry.answer

    def finish(self, nonce: bytes, answer: dict[str, Any] | None, size: int) -> None:
        """Store the answer (if it fits the byte budget) and wake any waiting retry."""
        with self._lock:
            entry = self._entries.get(nonce)
            if entry is None:
                return
            if answer is not None and self._bytes + size <= self.max_bytes:
                entry.answer, entry.size = answer, size
                self._bytes += size
        entry.done.set()

    def __len__(self) -> int:
        return len(self._entries)


def _blob(value: Any, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (ValueError, binascii.Error) as exc:
            raise ProtocolError(E_BAD_REQUEST, f"{name} must be bytes or base64url") from exc
    raise ProtocolError(E_BAD_REQUEST, f"{name} must be bytes or base64url")


def _credentials(args: dict[str, Any]) -> dict[str, str] | None:
    """Optional AWS credentials the parent passes in (an enclave cannot reach instance metadata)."""
    creds = args.get("aws_credentials")
    if creds is None:
        return None
    names = {"access_key_id", "secret_access_key", "session_token"}
    if (
        not isinstance(creds, dict)
        or not {"access_key_id", "secret_access_key"} <= set(creds) <= names
        or not all(isinstance(v, str) for v in creds.values())
    ):
        raise ProtocolError(
            E_BAD_REQUEST,
            "aws_credentials must map access_key_id, secret_access_key[, session_token] to text",
        )
    return dict(creds)


@dataclass
class _Batch:
    """A staged batch: checked entries by chunk sequence number (chunks may arrive in parallel)."""

    parameters: Any
    parts: dict[int, list[dict[str, Any]]]
    touched: float
    reserved: int = 0

    def entries(self) -> list[dict[str, Any]]:
        return [entry for seq in sorted(self.parts) for entry in self.parts[seq]]


class Service:
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
        self._week_parameters: dict[str, str] = {}  # week → digest of its parameters
        self._ops: dict[str, Callable[[Request], Any]] = {
            "health": self.op_health,
            "describe": self.op_describe,
            "init": self.op_init,
            "unseal": self.op_unseal,
            "rotate": self.op_rotate,
            "attest": self.op_attest,
            "validate": self.op_validate,
            "batch_open": self.op_batch_open,
            "batch_add": self.op_batch_add,
            "compute": self.op_compute,
        }

    # --- framing of answers ---------------------------------------------------------------------

    def handle(self, req: Request) -> dict[str, Any]:
        """Run one request (with replay/idempotency) and return its answer map.

        The nonce entry a fresh request opens is finished on every path (``finally``), so a
        retry of the same frame never waits on an attempt that died.
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
        try:
            cached = self.nonces.begin(req, digest.encode())
        except ProtocolError as exc:  # a replay or a full window: refused, and signed as such
            return self._error(req, exc, digest)
        if cached is not None:
            self.counts["retried"] += 1
            return cached
        answer: dict[str, Any] | None = None
        try:
            try:
                answer = self._run(req, handler, digest)
            except ProtocolError as exc:
                answer = self._error(req, exc, digest)
            except BaseException as exc:  # incl. a pyo3 PanicException: never end the thread
                logger.error(
                    "op=%s id=%s failed unexpectedly: %s", req.op, req.id, describe_failure(exc)
                )
                answer = self._error(
                    req,
                    ProtocolError(E_INTERNAL, "the enclave failed to process the request"),
                    digest,
                )
        finally:
            self.nonces.finish(req.nonce, answer, _answer_size(answer))
        return answer

    def refusal(
        self, req_id: str | int | None, nonce: bytes | None, op: str | None, exc: ProtocolError
    ) -> dict[str, Any]:
        """An error answer for a frame refused before it became a request (malformed, oversize,
        no slot): signed once the enclave holds keys, with whatever id, nonce and op were valid."""
        answer = error_answer(req_id, nonce, op, exc)
        keys = self.keys
        if keys is not None:
            body = answer_body(
                req_id=req_id, nonce=nonce or b"", op=op, result={"error": exc.to_dict()}
            )
            answer["answer"] = keys.sign(body)
        return answer

    def _error(self, req: Request, exc: ProtocolError, digest: str) -> dict[str, Any]:
        """An error answer, signed like any answer once the enclave holds keys, so nobody on
        the way can forge or alter an enclave's verdict (only a locked enclave's are unsigned)."""
        answer = error_answer(req.id, req.nonce, req.op, exc)
        if self.keys is not None:
            body = answer_body(
                req_id=req.id,
                nonce=req.nonce,
                op=req.op,
                result={"error": exc.to_dict()},
                args_digest=digest,
            )
            answer["answer"] = self.keys.sign(body)
        return answer

    def _run(self, req: Request, handler: Callable[[Request], Any], digest: str) -> dict[str, Any]:
        keys = self.keys
        if keys is None and req.op not in LOCKED_OPS:
            raise ProtocolError(E_LOCKED, "enclave is locked: send init (first boot) or unseal")
        self.counts[req.op] += 1
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

    # --- key lifecycle ---------------------------------------------------------------------------

    def _sealer(self, req: Request) -> Sealer:
        try:
            return self.sealer_factory(_credentials(req.args))
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError(E_SEAL, f"cannot reach KMS ({type(exc).__name__})") from exc

    def _key_answer(self, keys: KeyRing, sealed: bytes | None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "kid": keys.current.kid,
            "kids": [e.kid for e in keys.envelope],
            "signing_kid": keys.signing.kid,
            "jwks": keys.public_jwks(),
        }
        if sealed is not None:
            result["sealed_keys"] = b64url(sealed)
        return result

    def _unlock(self, keys: KeyRing) -> None:
        self.keys = keys
        threading.Thread(target=self._warm, args=(keys,), daemon=True).start()

    def _warm(self, keys: KeyRing) -> None:
        try:
            self.pool.warm(keys)
        except Exception as exc:
            logger.error(
                "process pool failed to start (%s); batches run in the request thread",
                describe_failure(exc),
            )

    def op_init(self, req: Request) -> _Signed:
        """First boot: generate the key ring and return it sealed under KMS."""
        with self._state_lock:
            if self.keys is not None:
                raise ProtocolError(E_ALREADY_UNLOCKED, "enclave already holds keys")
            keys = KeyRing.generate()
            sealed = _seal(keys, self._sealer(req))
            self._unlock(keys)
        logger.info("keys generated: kid=%s signing_kid=%s", keys.current.kid, keys.signing.kid)
        return _Signed(keys, self._key_answer(keys, sealed))

    def op_unseal(self, req: Request) -> _Signed:
        """Next boots: load the key ring the host stored, through KMS (PCR-bound)."""
        blob = _blob(req.args.get("sealed_keys"), "sealed_keys")
        with self._state_lock:
            if self.keys is not None:
                raise ProtocolError(E_ALREADY_UNLOCKED, "enclave already holds keys")
            sealer = self._sealer(req)
            try:
                keys = KeyRing.unseal(sealer, blob)
            except ProtocolError:
                raise
            except Exception as exc:
                raise ProtocolError(
                    E_SEAL, f"sealed keys could not be unsealed ({_kms_reason(exc)})"
                ) from exc
            self._unlock(keys)
        logger.info("keys unsealed: kid=%s signing_kid=%s", keys.current.kid, keys.signing.kid)
        return _Signed(keys, self._key_answer(keys, None))

    def op_rotate(self, req: Request) -> _Signed:
        """New envelope key (older kept); answer signed by the signing key the host already trusts."""
        rotate_signing = req.args.get("rotate_signing", False)
        if not isinstance(rotate_signing, bool):
            raise ProtocolError(E_BAD_REQUEST, "rotate_signing must be a boolean")
        with self._state_lock:
            old = self.keys
            assert old is not None
            keys = old.rotated(rotate_signing=rotate_signing)
            sealed = _seal(keys, self._sealer(req))
            self._unlock(keys)
        logger.info("keys rotated: kid=%s signing_kid=%s", keys.current.kid, keys.signing.kid)
        return _Signed(old, self._key_answer(keys, sealed))

    def op_attest(self, req: Request) -> dict[str, Any]:
        """Attestation document binding the current envelope key, the JWKS and the caller's nonce."""
        keys = self.keys
        assert keys is not None
        document = self.nsm.attest(
            public_key=keys.current_spki(), user_data=keys.attestation_user_data(), nonce=req.nonce
        )
        return {"document": b64url(document), **self._key_answer(keys, None)}

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
            "workers": self.pool.workers,
            "limits": self.limits,
        }

    # --- validation and computation --------------------------------------------------------------

    def op_validate(self, req: Request) -> dict[str, Any]:
        keys = self.keys
        assert keys is not None
        kind = check_kind(req.args.get("kind"))
        expected = check_expected(req.args.get("expected"))
        outcome = check_envelope(keys, req.args.get("envelope"), kind, expected)
        return outcome.public()

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
        """Parse a week's parameters and pin them: within this enclave's lifetime a week is
        computed with one parameter set only, so the host cannot query the same envelopes
        under many crafted parameter sets and difference the published figures."""
        parameters = parse_parameters(raw)
        # Canonical CBOR, not JSON: the raw map may hold byte strings (ignored by the parser).
        digest = hashlib.sha256(cbor2.dumps(raw, canonical=True)).hexdigest()
        with self._state_lock:
            pinned = self._week_parameters.setdefault(parameters.week, digest)
        if pinned != digest:
            raise ProtocolError(
                E_BAD_REQUEST,
                f"week {parameters.week} was already computed with other parameters; "
                "a week's parameters cannot change between computations",
            )
        return parameters

    def op_batch_open(self, req: Request) -> dict[str, Any]:
        """Start a batch too large for one frame: parameters now, items in batch_add chunks."""
        parameters = self._pinned_parameters(req.args.get("parameters"))
        with self._state_lock:
            self._purge_batches(time.monotonic())
            if len(self._batches) >= MAX_OPEN_BATCHES:
                raise ProtocolError(E_BUSY, f"at most {MAX_OPEN_BATCHES} batches may be open")
            batch_id = uuid.uuid4().hex
            self._batches[batch_id] = _Batch(parameters, {}, time.monotonic())
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
        entries = check_batch(self.pool, self.keys, items, batch.parameters)
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
            entries = check_batch(self.pool, self.keys, items, parameters)
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


@dataclass
class _Signed:
    """A result to be signed with a specific key ring (the old one for rotate)."""

    keys: KeyRing
    result: Any


def _seal(keys: KeyRing, sealer: Sealer) -> bytes:
    try:
        return keys.seal(sealer)
    except Exception as exc:
        raise ProtocolError(E_SEAL, f"keys could not be sealed ({_kms_reason(exc)})") from exc


def _kms_reason(exc: Exception) -> str:
    """A KMS/sealing failure reason safe to report (error codes and type names only)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return f"KMS {code}"
    return type(exc).__name__


def error_answer(req_id: Any, nonce: Any, op: Any, exc: ProtocolError) -> dict[str, Any]:
    return {"id": req_id, "nonce": nonce, "op": op, "error": exc.to_dict()}


def _answer_size(answer: dict[str, Any] | None) -> int:
    token = answer.get("answer") if answer is not None else None
    return len(token) if isinstance(token, str) else 256
