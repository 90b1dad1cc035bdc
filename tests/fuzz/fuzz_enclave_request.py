#!/usr/bin/env python3
"""Atheris fuzz target: the enclave's request decoder and dispatcher (not part of `make test`).

    make fuzz                                    # FUZZ_SECONDS=600 by default
    .venv/bin/python tests/fuzz/fuzz_enclave_request.py tests/fuzz/crashes/<file>   # reproduce

Each input is one mode byte (``data[0] % 16``) and the mode's bytes:

- 0-7, a frame body for an UNLOCKED enclave; 8-9, for a LOCKED one. The body goes through the
  server's own ``EnclaveServer._serve_one`` (scan → decode → parse_request → Service.handle →
  encode_frame), with only the socket replaced: ``_read`` returns the body, ``_send`` keeps the
  answer frame.
- 10-13, structure-aware: atheris.FuzzedDataProvider builds one to three request maps (every op,
  mostly well-formed args built from real envelopes and week parameters, mutated leaf by leaf),
  encodes them with cbor2 and sends them through the same path to one service, so batches,
  retries and replays are reached and not only the decoder.
- 14-15, an envelope plaintext: the bytes (after a flag byte: bit 0 counterparties, bit 1 bind
  to another agent) are encrypted to the enclave's key and sent as a ``validate`` request, so the
  JSON and XLSX parsers and the validators see arbitrary plaintext.

A finding is raised (libFuzzer saves the input) for: an exception escaping the server's or the
service's handling (they log it and answer ``internal_error``: caught here through
``describe_failure``), any ``internal_error`` code in an answer, an item the batch checker could
not check, an FA or concentration that failed on an accepted payload with anything but the risk
engine's own ValueError (its refusal of inputs it cannot price), and an
answer frame that breaks the protocol: not a length-prefixed CBOR map of id/nonce/op plus
``result`` (unsigned, locked health/describe only), ``answer`` (JWS) or ``error`` (with ``answer``,
its signed copy, whenever the enclave holds keys); id/nonce/op not echoed; a signature that does
not verify with the enclave's signing key; a signed body bound to other id, nonce, op or args.
Time per input (-timeout=1) and memory (-rss_limit_mb=1024) are libFuzzer's own checks.

With FUZZ_KEEP_GOING=1 a finding is written once per signature to tests/fuzz/crashes/ (input and
a .txt with the traceback) and the run goes on; without it (reproducing) the finding is raised.

Harness-only substitutions (no enclave code is changed): the process pool is replaced by one
that checks inline (``CheckPool.check`` below INLINE_LIMIT does exactly that), ``_unlock`` sets
the keys without starting the pool's warm-up thread, new RSA envelope keys (init, rotate) come
from one pre-generated spare key instead of a 3072-bit key generation per request, KMS is a
simulation that knows one sealed blob, and the NSM is the project's SimulatedNsm on a dev PKI
made in a temporary directory (deleted once loaded).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import atheris

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["enclave_bridge.enclave", "prudencial.risk"]):
    from enclave_bridge.enclave import checks, compute, keys
    from enclave_bridge.enclave import server as server_module
    from enclave_bridge.enclave import service as service_module
    from enclave_bridge.enclave import validation as _validation  # noqa: F401 (instrumented)
    from enclave_bridge.enclave import xlsx as _xlsx  # noqa: F401 (instrumented)
    from enclave_bridge.wire import protocol

import cbor2  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from jwcrypto import jwe, jwk  # noqa: E402

from enclave_bridge.attestation import SimulatedNsm, create_dev_pki  # noqa: E402

MATERIAL = HERE / "material.cbor"
CRASHES = HERE / "crashes"
KEEP_GOING = os.environ.get("FUZZ_KEEP_GOING") == "1"
OPS = (
    "health",
    "describe",
    "init",
    "unseal",
    "rotate",
    "attest",
    "validate",
    "batch_open",
    "batch_add",
    "compute",
)
ANSWER_KEYS = {"id", "nonce", "op", "answer", "result", "error"}
SEALED_PREFIX = b"sim-kms:"


class Finding(Exception):
    """Something the enclave must never do with any input."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


# --- fixed material: key ring, envelopes, parameters ------------------------------------------

_material = cbor2.loads(MATERIAL.read_bytes())
RING = keys.KeyRing.from_cbor(_material["ring"])
SPARE_RSA = serialization.load_der_private_key(_material["spare_rsa"], password=None)
ENVELOPES: dict[str, str] = _material["envelopes"]
PARAMETERS: dict[str, Any] = _material["parameters"]
AGENTS: list[dict[str, str]] = _material["agents"]
WEEK: str = _material["week"]
SEALED: bytes = _material["sealed"]
PORTFOLIOS = [ENVELOPES[k] for k in ("p1", "p2", "p3", "p1_wrong_week", "tampered")]
COUNTERPARTIES = [ENVELOPES[k] for k in ("c1", "c2", "c3", "not_json", "unknown_kid")]
PUBLIC_JWK = jwk.JWK(**RING.current.public_jwk())

with tempfile.TemporaryDirectory(prefix="fuzz-devpki-") as _pki_dir:
    NSM = SimulatedNsm(create_dev_pki(_pki_dir), {0: hashlib.sha384(b"fuzz image").digest()})


def _spare_envelope_key() -> keys.KeyEntry:
    return keys.KeyEntry.from_private(SPARE_RSA, keys._now(), "enc", keys.ENVELOPE_ALG)


keys._new_envelope_key = _spare_envelope_key  # init/rotate without a 3072-bit keygen each


class SimSealer:
    """KMS stand-in: seals to a digest, unseals only the fixed ring's blob (KMS authenticates
    ciphertexts, so the enclave never parses a key set it did not seal)."""

    def seal(self, plaintext: bytes, *, context: dict[str, str]) -> bytes:
        return SEALED_PREFIX + hashlib.sha256(plaintext).digest()

    def unseal(self, blob: bytes, *, context: dict[str, str]) -> bytes:
        if blob != SEALED:
            raise ValueError("InvalidCiphertextException")
        return _material["ring"]


SEALER = SimSealer()


class InlinePool(compute.CheckPool):
    """The check pool, always inline (what it does below INLINE_LIMIT): no processes."""

    def __init__(self) -> None:
        super().__init__(1)

    def warm(self, keys: Any) -> None:
        return None

    def check(
        self, keys: Any, items: Any, parameters: Any, request_id: Any = None
    ) -> list[dict[str, Any]]:
        return checks.check_agents(keys, items, parameters, request_id=request_id)

    def _executor(self, keys: Any) -> Any:
        raise AssertionError("the fuzz target never starts a process pool")


# --- catching what the enclave swallows ---------------------------------------------------------

_caught: list[str] = []
_describe_failure = protocol.describe_failure


def _capture(exc: BaseException) -> str:
    _caught.append("".join(traceback.format_exception(exc)))
    return _describe_failure(exc)


service_module.describe_failure = _capture
server_module.describe_failure = _capture
_check_envelope = checks.check_envelope
_leverage_factor = checks.leverage_factor
_concentration = checks.counterparty_concentration


def _checked_envelope(*args: Any, **kwargs: Any) -> Any:
    try:
        return _check_envelope(*args, **kwargs)
    except protocol.ProtocolError:
        raise
    except Exception as exc:  # the batch checker turns this into "item could not be checked"
        _caught.append("".join(traceback.format_exception(exc)))
        raise


def _recording(fn: Any, what: str) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError:  # the engine refusing inputs it cannot price: answered per agent
            raise
        except Exception as exc:  # anything else is a bug checks.py hides as "not computed"
            _caught.append(
                f"{what} failed on an accepted payload:\n"
                + "".join(traceback.format_exception(exc))
            )
            raise

    return run


checks.check_envelope = _checked_envelope
checks.leverage_factor = _recording(_leverage_factor, "leverage_factor")
checks.counterparty_concentration = _recording(_concentration, "counterparty_concentration")
logging.disable(logging.CRITICAL)


# --- the server, minus the socket ---------------------------------------------------------------


class HarnessServer(server_module.EnclaveServer):
    """EnclaveServer._serve_one as is; _read hands it the body, _send keeps the answer frame."""

    def __init__(self, service: Any) -> None:  # no listening socket
        self.service = service
        self.max_frame = protocol.DEFAULT_MAX_FRAME
        self.read_timeout = 1.0
        self.body = b""
        self.sent: list[bytes] = []

    def _read(self, record: Any, first: bool) -> bytes | None:
        return self.body

    def _send(self, conn: Any, frame: bytes | dict[str, Any], record: Any = None) -> bool:
        if isinstance(frame, dict):
            frame = protocol.encode_frame(frame)
        self.sent.append(frame)
        return True


def new_service(locked: bool) -> Any:
    svc = service_module.Service(nsm=NSM, sealer_factory=lambda credentials: SEALER, workers=1)
    svc.pool = InlinePool()
    svc._unlock = lambda ring: setattr(svc, "keys", ring)  # Service._unlock minus pool warm-up
    svc.signers = {}
    if not locked:
        svc.keys = RING
        svc.signers[RING.signing.kid] = RING.signing.private_key.public_key()
    handled: list[protocol.Request] = []
    handle = svc.handle

    def recording_handle(req: protocol.Request) -> dict[str, Any]:
        handled.append(req)
        return handle(req)

    svc.handle = recording_handle
    svc.handled = handled
    return svc


def serve(svc: Any, body: bytes) -> dict[str, Any]:
    """One frame through the server; check the answer; return it (decoded)."""
    server = HarnessServer(svc)
    server.body = body
    before = svc.keys
    svc.handled.clear()
    _caught.clear()
    server._serve_one(server_module._Connection(None), True)
    if _caught:
        raise Finding("exception inside the enclave", _caught[0])
    if svc.keys is not None and svc.keys.signing.kid not in svc.signers:
        # A retry gets the answer first signed, maybe by a key since rotated: any this
        # service has held counts (the host trusts each through the previous one).
        svc.signers[svc.keys.signing.kid] = svc.keys.signing.private_key.public_key()
    if len(server.sent) != 1:
        raise Finding("answer count", f"{len(server.sent)} frames sent for one request")
    request = svc.handled[0] if svc.handled else None
    return check_answer(server.sent[0], request, before is not None, list(svc.signers.values()))


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verify(token: Any, signers: list[Any]) -> dict[str, Any]:
    if not isinstance(token, str) or token.count(".") != 2:
        raise Finding("bad answer", "answer is not a compact JWS")
    head, payload, sig = token.split(".")
    try:
        header = json.loads(_b64url_decode(head))
    except ValueError as exc:
        raise Finding("bad answer", "JWS header is not base64url JSON") from exc
    if header.get("alg") != "ES256":
        raise Finding("bad answer", f"answer signed with {header.get('alg')!r}")
    raw = _b64url_decode(sig)
    if len(raw) != 64:
        raise Finding("bad answer", "ES256 signature is not 64 bytes")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    for public in signers:
        with contextlib.suppress(InvalidSignature):
            public.verify(der, f"{head}.{payload}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
            break
    else:
        raise Finding("bad answer", "answer signature does not verify with the enclave's key")
    try:
        return json.loads(_b64url_decode(payload))
    except ValueError as exc:
        raise Finding("bad answer", "signed body is not base64url JSON") from exc


def _internal_codes(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("code") == protocol.E_INTERNAL:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_answer(
    frame: bytes, request: protocol.Request | None, unlocked: bool, signers: list[Any]
) -> dict[str, Any]:
    if len(frame) < 4 or protocol.HEADER.unpack(frame[:4])[0] != len(frame) - 4:
        raise Finding("bad answer", "answer frame length prefix is wrong")
    answer = cbor2.loads(frame[4:])
    if not isinstance(answer, dict):
        raise Finding("bad answer", "answer is not a map")
    fields = set(answer)
    if not {"id", "nonce", "op"} <= fields or fields - ANSWER_KEYS:
        raise Finding("bad answer", f"answer fields {sorted(fields)}")
    has = {k for k in ("answer", "result", "error") if k in answer}
    if has not in ({"answer"}, {"result"}, {"error"}, {"error", "answer"}):
        raise Finding("bad answer", f"answer carries {sorted(has)}")
    if unlocked and "answer" not in has:
        raise Finding("bad answer", "an unlocked enclave sent an unsigned answer")
    if "result" in has and (unlocked or answer["op"] not in ("health", "describe")):
        raise Finding("bad answer", f"unsigned result for op {answer['op']!r}")
    if "error" in has:
        error = answer["error"]
        if not (isinstance(error, dict) and set(error) == {"code", "message"}):
            raise Finding("bad answer", "error is not {code, message}")
        if error["code"] == protocol.E_INTERNAL:
            raise Finding("internal_error answer", error["message"])
    if request is not None:
        echoed = (answer["id"], answer["nonce"], answer["op"])
        if echoed != (request.id, request.nonce, request.op):
            raise Finding("bad answer", "answer does not echo the request's id, nonce and op")
    else:
        if answer["id"] is not None:
            try:
                protocol.check_request_id(answer["id"])
            except protocol.ProtocolError as exc:
                raise Finding("bad answer", "refusal echoes an invalid id") from exc
        if answer["op"] is not None:  # server._safe echoes an op only when it is a valid *id*
            try:
                protocol.check_request_id(answer["op"])
            except protocol.ProtocolError as exc:
                raise Finding("bad answer", "refusal echoes an invalid op") from exc
        nonce = answer["nonce"]
        if nonce is not None and not (isinstance(nonce, bytes) and len(nonce) <= 64):
            raise Finding("bad answer", "refusal echoes an invalid nonce")
    if "answer" in has:
        body = _verify(answer["answer"], signers)
        nonce = answer["nonce"] if isinstance(answer["nonce"], bytes) else b""
        if (body.get("id"), body.get("nonce"), body.get("op")) != (
            answer["id"],
            protocol.b64url(nonce),
            answer["op"],
        ):
            raise Finding("bad answer", "signed body is bound to another id, nonce or op")
        if request is not None and body.get("args_sha256") != request.args_digest:
            raise Finding("bad answer", "signed body is bound to other args")
        if "error" in has and body.get("result") != {"error": answer["error"]}:
            raise Finding("bad answer", "signed error differs from the error field")
        if _internal_codes(body.get("result")):
            raise Finding(
                "internal_error inside a signed result", json.dumps(body["result"])[:2000]
            )
        answer["_result"] = body.get("result")
    elif "result" in has:
        answer["_result"] = answer["result"]
    return answer


# --- structure-aware requests --------------------------------------------------------------------


def fuzz_value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = fdp.ConsumeIntInRange(0, 10 if depth < 3 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeIntInRange(-5, 800)
    if kind == 3:
        return fdp.ConsumeInt(9)  # beyond 64 bits too (a bignum tag on the wire)
    if kind == 4:
        return fdp.ConsumeRegularFloat()
    if kind == 5:
        return fdp.ConsumeFloat()  # NaN and infinities too
    if kind == 6:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    if kind == 7:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 80))
    if kind == 8:
        return [fuzz_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    if kind == 9:
        return {
            fdp.ConsumeUnicodeNoSurrogates(8): fuzz_value(fdp, depth + 1)
            for _ in range(fdp.ConsumeIntInRange(0, 6))
        }
    return "x" * fdp.ConsumeIntInRange(0, 5000)


def mutate(value: Any, fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    """Mostly ``value`` unchanged (0 is the choice an exhausted provider makes); else leaves
    replaced, keys dropped or added, lists cut or grown."""
    if not fdp.remaining_bytes() or depth > 8:
        return value
    action = fdp.ConsumeIntInRange(0, 23)
    if action == 1:
        return fuzz_value(fdp)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            choice = fdp.ConsumeIntInRange(0, 15)
            if choice == 1:
                continue
            out[key] = mutate(item, fdp, depth + 1) if choice >= 2 and choice <= 5 else item
        if fdp.ConsumeIntInRange(0, 31) == 1:
            out[fdp.ConsumeUnicodeNoSurrogates(12)] = fuzz_value(fdp)
        return out
    if isinstance(value, list):
        out_list = [
            mutate(item, fdp, depth + 1) if fdp.ConsumeIntInRange(0, 7) == 1 else item
            for item in value
        ]
        choice = fdp.ConsumeIntInRange(0, 15)
        if choice == 1 and out_list:
            out_list.pop(fdp.ConsumeIntInRange(0, len(out_list) - 1))
        elif choice == 2:
            out_list.append(fuzz_value(fdp))
        elif choice == 3 and out_list:
            out_list.extend(out_list[: fdp.ConsumeIntInRange(1, 8)])
        return out_list
    if isinstance(value, str) and action == 2:
        cut = fdp.ConsumeIntInRange(0, len(value))
        return value[:cut] + fdp.ConsumeUnicodeNoSurrogates(4) + value[cut + 1 :]
    return value


def _pick(fdp: atheris.FuzzedDataProvider, options: list[Any]) -> Any:
    return options[fdp.ConsumeIntInRange(0, len(options) - 1)]


def _items(fdp: atheris.FuzzedDataProvider) -> list[dict[str, Any]]:
    out = []
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        n = fdp.ConsumeIntInRange(0, len(AGENTS) - 1)
        who = dict(AGENTS[n])
        klass = _pick(
            fdp,
            [
                None,
                "trader",
                "generator",
                "free_consumer",
                "self_producer",
                "distributor",
                "CS",
                "XX",
            ],
        )
        if klass is not None:
            who["class"] = klass
        portfolio = PORTFOLIOS[n] if fdp.ConsumeIntInRange(0, 3) else _pick(fdp, PORTFOLIOS)
        cps = _pick(fdp, [COUNTERPARTIES[n], None, *COUNTERPARTIES])
        out.append({"agent": who, "portfolio": portfolio, "counterparties": cps})
    return mutate(out, fdp)


def _network(fdp: atheris.FuzzedDataProvider) -> dict[str, Any]:
    options: dict[str, Any] = {}
    makers = {
        "scenarios": lambda: fdp.ConsumeIntInRange(1, 200),
        "seed": lambda: fdp.ConsumeIntInRange(0, 1 << 32),
        "community_method": lambda: _pick(fdp, ["fastgreedy", "louvain", "leiden", "x"]),
        "confidence": lambda: _pick(fdp, [0.95, 0.99, 0.5, fdp.ConsumeRegularFloat()]),
        "cascade": lambda: fdp.ConsumeBool(),
        "failure_probability": lambda: _pick(
            fdp, [0.1, fdp.ConsumeRegularFloat(), [0.1, 0.2], {"CM1": 0.5}]
        ),
        "pld_history": lambda: [
            fdp.ConsumeIntInRange(0, 1000) / 1.0 for _ in range(fdp.ConsumeIntInRange(1, 20))
        ],
        "horizon_buckets": lambda: fdp.ConsumeIntInRange(1, 7),
        "weeks_per_scenario": lambda: fdp.ConsumeIntInRange(0, 60),
        "block_length": lambda: fdp.ConsumeIntInRange(0, 60),
    }
    for key, make in makers.items():
        if fdp.ConsumeIntInRange(0, 3) == 1:
            options[key] = make()
    return mutate(options, fdp)


def _args(op: str, fdp: atheris.FuzzedDataProvider, state: dict[str, Any]) -> Any:
    expected = {"agent": dict(AGENTS[0]), "week": WEEK}
    if op == "validate":
        kind = _pick(fdp, ["portfolio", "counterparties"])
        pool = PORTFOLIOS if kind == "portfolio" else COUNTERPARTIES
        args = {
            "kind": kind,
            "envelope": pool[0] if fdp.ConsumeIntInRange(0, 2) else _pick(fdp, pool),
            "expected": mutate(expected, fdp),
        }
    elif op == "batch_open":
        args = {"parameters": mutate(PARAMETERS, fdp)}
    elif op == "batch_add":
        args = {"batch": state.get("batch") or "0" * 32, "items": _items(fdp)}
        seq = _pick(fdp, [None, 0, 1, fdp.ConsumeIntInRange(-2, 100_001)])
        if seq is not None:
            args["seq"] = seq
    elif op == "compute":
        args = {"network": _network(fdp)}
        if state.get("batch") and fdp.ConsumeBool():
            args["batch"] = state["batch"]
        else:
            args["parameters"] = mutate(PARAMETERS, fdp)
            args["items"] = _items(fdp)
    elif op in ("init", "unseal"):
        args = {}
        blob = _pick(fdp, [SEALED, protocol.b64url(SEALED), None, b"\x00" * 8])
        if blob is not None:
            args["sealed_keys"] = blob
        if fdp.ConsumeIntInRange(0, 3) == 1:
            args["aws_credentials"] = {"access_key_id": "AKIA", "secret_access_key": "s"}
    elif op == "rotate":
        args = {}
        flag = _pick(fdp, [None, False, True])
        if flag is not None:
            args["rotate_signing"] = flag
    else:
        args = {}
    return mutate(args, fdp)


def _request(fdp: atheris.FuzzedDataProvider, state: dict[str, Any]) -> dict[str, Any]:
    op = OPS[fdp.ConsumeIntInRange(0, len(OPS) - 1)]
    choice = fdp.ConsumeIntInRange(0, 15)
    if choice == 1:
        op = fdp.ConsumeUnicodeNoSurrogates(12)
    req_id = _pick(fdp, [state["n"], f"host-{state['n']}", fdp.ConsumeIntInRange(0, 1 << 53)])
    if fdp.ConsumeIntInRange(0, 15) == 1:
        req_id = fuzz_value(fdp)
    if state.get("nonce") and fdp.ConsumeIntInRange(0, 5) == 1:
        nonce = state["nonce"]  # a replay (or a retry if the rest matches)
    else:
        nonce = hashlib.sha256(fdp.ConsumeBytes(4) + bytes([state["n"]])).digest()[:16]
        if fdp.ConsumeIntInRange(0, 15) == 1:
            nonce = fuzz_value(fdp)
    state["n"] += 1
    state["nonce"] = nonce
    message = {"id": req_id, "op": op, "nonce": nonce, "args": _args(op, fdp, state)}
    return mutate(message, fdp) if fdp.ConsumeIntInRange(0, 7) == 1 else message


def _encode(message: dict[str, Any], fdp: atheris.FuzzedDataProvider) -> bytes:
    try:
        if fdp.ConsumeBool():
            return cbor2.dumps(message, canonical=True)
        return cbor2.dumps(message)
    except (TypeError, ValueError, cbor2.CBOREncodeError):
        return b"\xa0"


def run_structured(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    svc = new_service(locked=fdp.ConsumeIntInRange(0, 7) == 1)
    state: dict[str, Any] = {"n": 0}
    previous = b""
    for _ in range(1 + fdp.ConsumeIntInRange(0, 2)):
        if previous and fdp.ConsumeIntInRange(0, 7) == 1:
            body = previous  # the same frame again: a retry gets the first answer
        else:
            body = _encode(_request(fdp, state), fdp)
        answer = serve(svc, body)
        previous = body
        result = answer.get("_result")
        if isinstance(result, dict) and isinstance(result.get("batch"), str):
            state["batch"] = result["batch"]


def run_plaintext(data: bytes) -> None:
    flags, plaintext = (data[0], data[1:]) if data else (0, b"")
    kind = "counterparties" if flags & 1 else "portfolio"
    who = AGENTS[1] if flags & 2 else AGENTS[0]
    token = jwe.JWE(
        plaintext, protected={"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": RING.current.kid}
    )
    token.add_recipient(PUBLIC_JWK)
    body = protocol.encode_request(
        req_id=1,
        op="validate",
        nonce=b"\x07" * 16,
        args={
            "kind": kind,
            "envelope": token.serialize(compact=True),
            "expected": {"agent": who, "week": WEEK},
        },
    )[0][4:]
    serve(new_service(locked=False), body)


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 16, data[1:]
    if mode < 8:
        serve(new_service(locked=False), rest)
    elif mode < 10:
        serve(new_service(locked=True), rest)
    elif mode < 14:
        run_structured(rest)
    else:
        run_plaintext(rest)


_recorded: set[str] = set()


def TestOneInput(data: bytes) -> None:
    try:
        one_input(data)
    except Finding as finding:
        if not KEEP_GOING:
            raise
        # One file per bug: the kind, the innermost frame and the exception type, not its
        # message (which may carry values: "zip file version 14.5", "10.9", ...).
        lines = finding.detail.strip().splitlines()
        frames = [line.strip() for line in lines if line.strip().startswith('File "')]
        last = lines[-1].split(":")[0] if frames else finding.detail
        signature = hashlib.sha256(f"{finding.kind}|{frames[-1:]}|{last}".encode()).hexdigest()[:16]
        if signature in _recorded:
            return
        _recorded.add(signature)
        CRASHES.mkdir(exist_ok=True)
        if (CRASHES / f"finding-{signature}").exists():
            return
        (CRASHES / f"finding-{signature}").write_bytes(data)
        (CRASHES / f"finding-{signature}.txt").write_text(
            f"{finding.kind}\ninput (hex): {data.hex()}\n\n{finding.detail}\n", "utf-8"
        )
        print(f"FINDING {signature}: {finding.kind}", file=sys.stderr, flush=True)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
