"""Wire protocol between the host and the enclave, shared by both sides.

A frame is a 4-byte big-endian length followed by that many bytes of CBOR (RFC 8949) holding one
map. Requests are ``{"id", "op", "nonce", "args"}``. Answers echo ``id``, ``op`` and ``nonce`` and
carry exactly one of:

- ``"answer"``: a JWS compact serialization (ES256, P-256) over the JSON body
  ``{"id", "nonce", "op", "args_sha256", "ts", "result"}`` signed with the enclave's
  result-signing key (``args_sha256`` ties the answer to the exact args it answers);
- ``"result"``: an unsigned result, only for ``health``/``describe`` while the enclave is locked
  (it holds no signing key yet);
- ``"error"``: ``{"code", "message"}``; messages name fields and rules, never payload values.

The codec lives here (not in the server) so the host client decodes exactly what the enclave
encodes, and the signed-answer check is the same code wherever it runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk, jws

DEFAULT_MAX_FRAME = 8 * 1024 * 1024
HEADER = struct.Struct(">I")
NONCE_MIN_BYTES = 16
NONCE_MAX_BYTES = 64
MAX_ID_LENGTH = 128
MAX_ID_INT = 1 << 53
_ID_CHARS = re.compile(r"[A-Za-z0-9._:-]+")
OP_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_CBOR_DEPTH = 32
# ES256 (P-256), not ES384: the signature is on every answer, and P-384 signing (0.22 ms) was
# most of what put one envelope's validation above 1.5x a bare RSA-OAEP-256 decryption; P-256
# costs ~0.03 ms and is what WebCrypto verifies everywhere (docs/attestation.md §6).
SIGNING_ALG = "ES256"
SIGNING_CURVE = "P-256"
# Agents' envelopes: compact JWE with exactly these algorithms, and a protected header of these
# keys only. The enclave refuses anything else (enclave.envelope.read_header); the host checks
# the same set before storing an envelope (prudencial.submissions.services), so an envelope
# the enclave would refuse is refused at once.
ENVELOPE_ALG = "RSA-OAEP-256"
ENVELOPE_ENC = "A256GCM"
ENVELOPE_HEADER_KEYS = frozenset({"alg", "enc", "kid", "typ", "cty", "prd_reply"})
# The agent's reply key (docs/envelope.md): a public EC P-256 JWK of exactly these members, to
# which the enclave encrypts the confidential breakdown of a portfolio's leverage factor.
REPLY_HEADER_KEY = "prd_reply"
REPLY_JWK_KEYS = frozenset({"kty", "crv", "x", "y"})
_SIGNING_CURVE_NAME = "secp256r1"
_SIGNATURE_HALF = 32  # bytes of r and of s for P-256 (RFC 7518 §3.4)
# The ops a locked enclave (no keys yet, so nothing to sign with) runs; their errors and locked
# health answers are the only unsigned frames a client may accept.
LOCKED_OPS = frozenset({"health", "describe", "init", "unseal"})

# Error codes (stable: the host maps them to user-facing messages).
E_FRAME_TOO_LARGE = "frame_too_large"
E_MALFORMED = "malformed_frame"
E_BAD_REQUEST = "bad_request"
E_UNKNOWN_OP = "unknown_op"
E_REPLAY = "replayed_nonce"
E_IN_PROGRESS = "in_progress"
E_LOCKED = "locked"
E_ALREADY_UNLOCKED = "already_unlocked"
E_ENVELOPE = "envelope_invalid"
E_UNKNOWN_KID = "unknown_kid"
E_ALGORITHM = "algorithm_not_allowed"
E_DECRYPT = "decryption_failed"
E_TOO_LARGE = "payload_too_large"
E_XLSX = "xlsx_invalid"
E_PAYLOAD = "payload_unreadable"
E_SEAL = "sealing_failed"
E_BUSY = "busy"
E_INTERNAL = "internal_error"
E_UNKNOWN_REGISTRY = "unknown_registry"

# The public registry the host stages (op "registry"); see enclave/registry.py.
MAX_REGISTRY_ENTRIES = 100_000


class ProtocolError(Exception):
    """An error the peer should see as an error frame (code + message, never payload values)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        # Raised in the enclave's worker processes too: pickled back as (code, message).
        return ProtocolError, (self.code, self.message)


class FrameTooLarge(ProtocolError):
    """Declared frame length is over the limit; the body has not been read."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            E_FRAME_TOO_LARGE, f"frame of {length} bytes exceeds the limit of {limit} bytes"
        )
        self.length = length


class ConnectionClosed(Exception):
    """The peer closed the connection (cleanly between frames or in the middle of one)."""


@dataclass(frozen=True)
class Request:
    """A decoded, shape-checked request frame."""

    id: str | int
    op: str
    nonce: bytes
    args: dict[str, Any]
    # SHA-256 (hex) of the args exactly as they arrived; what a signed answer is bound to.
    args_digest: str = ""

    def __post_init__(self) -> None:
        if not self.args_digest:  # built in code, not from a frame: the canonical encoding
            object.__setattr__(self, "args_digest", args_sha256(self.args))


def encode_frame(message: dict[str, Any]) -> bytes:
    """Length-prefix one CBOR map."""
    body = cbor2.dumps(message)
    return HEADER.pack(len(body)) + body


def encode_request(
    *, req_id: str | int, op: str, nonce: bytes, args: dict[str, Any]
) -> tuple[bytes, str]:
    """One request frame and the ``args_sha256`` its signed answer must carry.

    The args are encoded once, canonically, and their bytes are both sent and hashed: the
    enclave hashes the args' bytes as they arrive, so the two digests agree by construction.
    """
    args_bytes = cbor2.dumps(args, canonical=True)
    body = b"".join(
        (
            b"\xa4",  # a map of four pairs
            cbor2.dumps("id"),
            cbor2.dumps(req_id),
            cbor2.dumps("op"),
            cbor2.dumps(op),
            cbor2.dumps("nonce"),
            cbor2.dumps(nonce),
            cbor2.dumps("args"),
            args_bytes,
        )
    )
    return HEADER.pack(len(body)) + body, hashlib.sha256(args_bytes).hexdigest()


def recv_exact(sock: socket.socket, size: int, *, deadline: float | None = None) -> bytes:
    """Read exactly ``size`` bytes or raise ConnectionClosed; with ``deadline`` (monotonic), the
    whole read must finish by then, so a peer trickling one byte at a time cannot hold it open."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"frame not complete in time ({got} of {size} bytes)")
            sock.settimeout(left)
        n = sock.recv_into(view[got:], min(size - got, 1 << 20))
        if n == 0:
            raise ConnectionClosed(f"peer closed after {got} of {size} bytes")
        got += n
    return bytes(buf)


def read_frame_bytes(
    sock: socket.socket, *, max_frame: int, body_timeout: float | None = None
) -> bytes | None:
    """Read one frame body. Returns None on a clean close before a header.

    The wait for a header uses the socket's current timeout (the idle timeout); once a frame has
    started, ``body_timeout`` bounds the rest of the frame as a whole (the read timeout). A frame over ``max_frame`` raises
    FrameTooLarge before its body is read, so a peer cannot make us allocate or wait for gigabytes.
    """
    first = sock.recv(HEADER.size)
    if not first:
        return None
    deadline = None if body_timeout is None else time.monotonic() + body_timeout
    if len(first) < HEADER.size:
        first += recv_exact(sock, HEADER.size - len(first), deadline=deadline)
    (length,) = HEADER.unpack(first)
    if length > max_frame:
        raise FrameTooLarge(length, max_frame)
    return recv_exact(sock, length, deadline=deadline)


# --- the frame scanner ----------------------------------------------------------------------------
# cbor2 decodes some tags natively (bignums 2/3, stringref 25/256, shareable 28/29, dates, ...)
# before any tag_hook runs: a 212-byte frame of nested shared references can expand to gigabytes.
# So every frame is walked once over its raw bytes before cbor2 builds anything: no tags, no
# indefinite lengths, no simple values but false/true/null, every declared length inside the frame,
# bounded depth and item count, finite floats. What passes decodes to plain values about the size
# of the frame, and every integer fits in 64 bits (each op bounds its own further).

MAX_CBOR_ITEMS = 1_000_000
_ARG_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
_SIMPLE_OK = frozenset({20, 21, 22, 25, 26, 27})  # false, true, null, half/single/double float
# Exponent bits all ones: NaN or Infinity, in half, single and double precision.
_FLOAT_EXPONENT = {25: 0x7C00, 26: 0x7F800000, 27: 0x7FF0000000000000}


def _malformed(message: str) -> ProtocolError:
    return ProtocolError(E_MALFORMED, message)


def _skip_item(
    data: bytes, pos: int, depth: int, budget: int, limit: int = MAX_CBOR_ITEMS
) -> tuple[int, int]:
    """Walk one CBOR data item from ``pos``; return (position after it, items left in budget).

    Iterative (a stack of pending counts), so nesting cannot exhaust the Python stack.
    """
    size = len(data)
    pending = 1
    stack: list[int] = []
    while True:
        if pending == 0:
            if not stack:
                return pos, budget
            pending = stack.pop()
            continue
        pending -= 1
        budget -= 1
        if budget < 0:
            raise _malformed(f"frame holds more than {limit} CBOR items")
        if pos >= size:
            raise _malformed("frame body ends inside a CBOR item")
        initial = data[pos]
        pos += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            arg = info
        elif info <= 27:
            width = _ARG_BYTES[info]
            if pos + width > size:
                raise _malformed("frame body ends inside a CBOR item")
            arg = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        elif info == 31:
            raise _malformed("indefinite-length CBOR items are not allowed")
        else:
            raise _malformed("frame body is not well-formed CBOR (reserved additional info)")
        if major <= 1:  # unsigned / negative integer: at most 64 bits without bignum tags
            continue
        if major <= 3:  # byte / text string
            if arg > size - pos:
                raise _malformed("a CBOR string declares more bytes than the frame holds")
            pos += arg
            continue
        if major <= 5:  # array / map
            count = arg if major == 4 else 2 * arg
            if count > size - pos:  # every item takes at least one byte
                raise _malformed("a CBOR array or map declares more items than the frame holds")
            if count:
                if len(stack) + depth >= MAX_CBOR_DEPTH:
                    raise _malformed(f"frame nests deeper than {MAX_CBOR_DEPTH} levels")
                stack.append(pending)
                pending = count
            continue
        if major == 6:
            raise _malformed("CBOR tags are not allowed")
        if info not in _SIMPLE_OK:
            raise _malformed("only false, true, null and floats are allowed as CBOR simple values")
        if info >= 25 and arg & _FLOAT_EXPONENT[info] == _FLOAT_EXPONENT[info]:
            raise _malformed("CBOR floats must be finite (no NaN or Infinity)")


def scan_frame(body: bytes, *, max_items: int = MAX_CBOR_ITEMS) -> dict[str, tuple[int, int]]:
    """Check a frame body before decoding; return each top-level key's value span (start, end).

    The spans let the receiver hash the args exactly as they arrived (``args_sha256`` of an
    answer), rather than re-encoding what it decoded. ``max_items``: the enclave keeps the
    default; the host reading a large batch answer it asked for may allow more.
    """
    data = bytes(body)
    if not data:
        raise _malformed("frame body is empty")
    initial = data[0]
    major, info = initial >> 5, initial & 0x1F
    if major != 5:
        raise _malformed("frame body must be a CBOR map")
    if info == 31:
        raise _malformed("indefinite-length CBOR items are not allowed")
    if info < 24:
        pairs, pos = info, 1
    elif info <= 27:
        width = _ARG_BYTES[info]
        pairs, pos = int.from_bytes(data[1 : 1 + width], "big"), 1 + width
    else:
        raise _malformed("frame body is not well-formed CBOR (reserved additional info)")
    if pairs > 16:
        raise _malformed("a frame map has at most 16 fields")
    budget = max_items - 1
    spans: dict[str, tuple[int, int]] = {}
    for _ in range(pairs):
        key_start = pos
        pos, budget = _skip_item(data, pos, 1, budget, max_items)
        if not 0x60 <= data[key_start] <= 0x77:  # a short text string (< 24 bytes)
            raise _malformed("frame map keys must be short text strings")
        key = data[key_start + 1 : pos].decode("utf-8", "replace")
        start = pos
        pos, budget = _skip_item(data, pos, 1, budget, max_items)
        spans[key] = (start, pos)
    if pos != len(data):
        raise _malformed("frame body has bytes after its CBOR map")
    return spans


def decode_frame(
    body: bytes, *, max_items: int = MAX_CBOR_ITEMS
) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Scan, then decode one frame body into a plain map; also return the top-level value spans."""
    spans = scan_frame(body, max_items=max_items)
    try:
        message = cbor2.loads(
            body,
            max_depth=MAX_CBOR_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
            tag_hook=_refuse_tag,
        )
    except ProtocolError:
        raise
    except BaseException as exc:  # cbor2 raises several types (its Rust core may panic)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise ProtocolError(E_MALFORMED, "frame body is not valid CBOR") from exc
    if not isinstance(message, dict):
        raise ProtocolError(E_MALFORMED, "frame body must be a CBOR map")
    _check_plain(message)
    return message, spans


def decode_message(body: bytes, *, max_items: int = MAX_CBOR_ITEMS) -> dict[str, Any]:
    """Decode one frame body into a plain map (no tags, no duplicate keys, bounded depth)."""
    return decode_frame(body, max_items=max_items)[0]


def _check_plain(value: Any) -> None:
    """Second line behind scan_frame: only JSON-like values plus bytes, text keys (iterative)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, str | bytes | bool | int | float):
            continue
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise ProtocolError(E_MALFORMED, "map keys must be text strings")
            stack.extend(item.values())
        else:
            raise ProtocolError(E_MALFORMED, f"unsupported CBOR item of type {type(item).__name__}")


def _refuse_tag(decoder: Any, tag: Any) -> Any:
    raise ProtocolError(E_MALFORMED, "CBOR tags are not allowed")


def check_request_id(req_id: Any) -> str | int:
    """An id is an integer in [0, 2^53) (exact in JSON and JavaScript) or 1–128 characters of
    ``[A-Za-z0-9._:-]``: ids are echoed into signed JSON bodies and written to logs."""
    if isinstance(req_id, int) and not isinstance(req_id, bool):
        if not 0 <= req_id < MAX_ID_INT:
            raise ProtocolError(E_BAD_REQUEST, "id must be an integer from 0 to 2^53 - 1")
        return req_id
    if isinstance(req_id, str):
        if not 0 < len(req_id) <= MAX_ID_LENGTH or not _ID_CHARS.fullmatch(req_id):
            raise ProtocolError(
                E_BAD_REQUEST,
                f"id must have 1 to {MAX_ID_LENGTH} characters of A-Z, a-z, 0-9, '.', '_', ':', '-'",
            )
        return req_id
    raise ProtocolError(E_BAD_REQUEST, "id must be a text string or an integer")


def parse_request(message: dict[str, Any], args_digest: str = "") -> Request:
    """Check the request envelope's shape; the args are checked by each operation.

    ``args_digest`` is the hash of the args' bytes as received (``decode_frame``'s spans).
    """
    missing = [name for name in ("id", "op", "nonce") if name not in message]
    if missing:
        raise ProtocolError(E_BAD_REQUEST, f"request is missing field(s): {', '.join(missing)}")
    req_id, op, nonce = check_request_id(message["id"]), message["op"], message["nonce"]
    if not isinstance(op, str) or not OP_NAME.fullmatch(op):
        raise ProtocolError(E_BAD_REQUEST, "op must be 1 to 32 characters of a-z, 0-9, '_', '-'")
    if not isinstance(nonce, bytes) or not NONCE_MIN_BYTES <= len(nonce) <= NONCE_MAX_BYTES:
        raise ProtocolError(
            E_BAD_REQUEST,
            f"nonce must be a byte string of {NONCE_MIN_BYTES} to {NONCE_MAX_BYTES} bytes",
        )
    args = message.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError(E_BAD_REQUEST, "args must be a map")
    extra = sorted(set(message) - {"id", "op", "nonce", "args"})
    if extra:
        # Name only what looks like a field name: anything else is the sender's text, and error
        # messages end up in logs.
        shown = [name for name in extra if _KEY_SHOWN.fullmatch(name)]
        hidden = len(extra) - len(shown)
        names = ", ".join(shown + ([f"{hidden} other(s)"] if hidden else []))
        raise ProtocolError(E_BAD_REQUEST, f"unexpected request field(s): {names}")
    return Request(id=req_id, op=op, nonce=nonce, args=args, args_digest=args_digest)


def request_args_digest(body: bytes, spans: dict[str, tuple[int, int]]) -> str:
    """SHA-256 (hex) of the raw args bytes of a request frame (of an empty map when absent)."""
    start, end = spans.get("args", (0, 0))
    raw = body[start:end] if end > start and body[start:end] != b"\xf6" else b"\xa0"
    return hashlib.sha256(raw).hexdigest()


# --- strict JSON -----------------------------------------------------------------------------------
# JSON reaches the enclave inside envelopes (protected headers, payloads). Python's json accepts
# duplicate keys (the last wins: what a reviewer reads is not what is computed) and raises
# RecursionError on deep nesting; both become a refusal that names the rule.

MAX_JSON_DEPTH = 32
# A full portfolio is about 500 values (56 positions × 8 fields); the XLSX template's cell limit is
# 20,000. Beyond this a document is refused before any schema walks it.
MAX_JSON_VALUES = 20_000
_KEY_SHOWN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class JsonRefused(ValueError):
    """JSON refused by a structural rule (``rule`` names it, never a value)."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):  # no key twice (the common case, at C speed)
        return out
    out = {}
    for key, value in pairs:
        if key in out:
            # A key is a field name, not a value; one that does not look like a name is not shown.
            shown = f"'{key}'" if _KEY_SHOWN.fullmatch(key) else "a key"
            raise JsonRefused(f"{shown} appears twice in the same object (duplicate keys)")
        out[key] = value
    return out


def json_shape_refusal(value: Any, max_depth: int, max_values: int) -> str | None:
    """The rule ``value`` breaks, or None: more than ``max_depth`` nested arrays/objects, or more
    than ``max_values`` values in all. One iterative walk over the containers only (scalars are
    counted by their container's length), stopping at the first breach."""
    if value.__class__ is not dict and value.__class__ is not list:
        return None
    stack = [(value, 1)]
    count = 1
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return f"nests deeper than {max_depth} levels"
        children = item.values() if item.__class__ is dict else item
        count += len(children)
        if count > max_values:
            return f"holds more than {max_values} values"
        inner = depth + 1
        stack.extend(
            (child, inner)
            for child in children
            if child.__class__ is dict or child.__class__ is list
        )
    return None


def strict_json_loads(
    text: str | bytes,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_values: int = MAX_JSON_VALUES,
    **hooks: Any,
) -> Any:
    """``json.loads`` that refuses duplicate keys, nesting deeper than ``max_depth`` and more than
    ``max_values`` values (JsonRefused), before anything walks the document (schema validation
    builds an error per value, so an unbounded document is unbounded work); other faults raise
    ValueError as json does. ``hooks``: parse_float etc."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_pairs, **hooks)
    except RecursionError as exc:
        raise JsonRefused(f"nests deeper than {max_depth} levels") from exc
    refusal = json_shape_refusal(value, max_depth, max_values)
    if refusal is not None:
        raise JsonRefused(refusal)
    return value


def b64url(data: bytes) -> str:
    """base64url without padding (JOSE, RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of b64url; accepts missing padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_json(value: Any) -> bytes:
    """The one JSON serialization used for digests and signed bodies."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def args_sha256(args: dict[str, Any]) -> str:
    """SHA-256 (hex) of the request args as canonical CBOR: what a signed answer was about."""
    return hashlib.sha256(cbor2.dumps(args, canonical=True)).hexdigest()


def registry_entries(entries: Any) -> list[dict[str, str]]:
    """The registry's canonical form: ``{cnpj, acronym}`` only, sorted by CNPJ."""
    return sorted(
        ({"cnpj": e["cnpj"], "acronym": e["acronym"]} for e in entries),
        key=lambda e: (str(e["cnpj"]), str(e["acronym"])),
    )


def registry_sha256(entries: Any) -> str:
    """SHA-256 (hex) of the registry's canonical JSON (``registry_entries``): the key the
    enclave stages it under and validations name. Host and enclave run this same code."""
    return hashlib.sha256(canonical_json(registry_entries(entries))).hexdigest()


def answer_body(
    *,
    req_id: str | int | None,
    nonce: bytes,
    op: str | None,
    result: Any,
    args_digest: str | None = None,
) -> bytes:
    """JSON body the enclave signs: binds the result to the request id, nonce, op, args and time.

    With ``args_digest`` (``args_sha256`` of the request's args) the answer is tied to the
    envelope, agent and week it judged: anyone holding those and the JWS can recompute the digest.
    """
    body = {"id": req_id, "nonce": b64url(nonce), "op": op, "ts": utc_timestamp(), "result": result}
    if args_digest is not None:
        body["args_sha256"] = args_digest
    return canonical_json(body)


def sign_answer(body: bytes, signing_key: jwk.JWK | ec.EllipticCurvePrivateKey, kid: str) -> str:
    """JWS compact serialization (RFC 7515: ES256, ``kid`` in the protected header) over ``body``.

    Built with ``cryptography`` rather than a jwcrypto JWS object, whose construction deep-copies
    its header registry on every call: that was a third of the enclave's per-envelope overhead
    over the RSA decryption. The format is checked where it matters: the host (and any agent)
    verifies every answer with jwcrypto.
    """
    key = signing_key.get_op_key("sign") if isinstance(signing_key, jwk.JWK) else signing_key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != _SIGNING_CURVE_NAME:
        raise ValueError(f"the answer-signing key must be a private EC {SIGNING_CURVE} key")
    protected = b64url(json.dumps({"alg": SIGNING_ALG, "kid": kid}).encode("utf-8"))
    signing_input = f"{protected}.{b64url(body)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    # JWS carries the raw r || s, each 32 bytes for P-256 (RFC 7518 §3.4), not DER.
    half = _SIGNATURE_HALF
    return f"{signing_input}.{b64url(r.to_bytes(half, 'big') + s.to_bytes(half, 'big'))}"


class AnswerVerificationError(Exception):
    """A signed answer failed verification: forged, for another request, or stale."""


def verify_answer(
    token: str,
    signing_key: jwk.JWK,
    *,
    req_id: str | int | None,
    nonce: bytes,
    op: str | None,
    args_digest: str | None = None,
    max_skew_seconds: float = 300.0,
) -> dict[str, Any]:
    """Verify a signed answer and its binding (and, with ``args_digest``, that it answers these
    args); return the body (with ``result``)."""
    verifier = jws.JWS()
    try:
        verifier.deserialize(token)
        header = verifier.jose_header
        if header.get("alg") != SIGNING_ALG:
            raise AnswerVerificationError(
                f"answer signed with {header.get('alg')!r}, not {SIGNING_ALG}"
            )
        if signing_key.get("kty") != "EC" or signing_key.get("crv") != SIGNING_CURVE:
            raise AnswerVerificationError(f"the answer-signing key must be EC {SIGNING_CURVE}")
        verifier.allowed_algs = [SIGNING_ALG]
        verifier.verify(signing_key)
    except AnswerVerificationError:
        raise
    except Exception as exc:
        raise AnswerVerificationError("answer signature does not verify") from exc
    try:
        body = json.loads(verifier.payload)
    except ValueError as exc:
        raise AnswerVerificationError("signed answer body is not JSON") from exc
    if body.get("id") != req_id:
        raise AnswerVerificationError("signed answer is for another request id")
    if body.get("nonce") != b64url(nonce):
        raise AnswerVerificationError("signed answer does not echo the request nonce")
    if body.get("op") != op:
        raise AnswerVerificationError("signed answer is for another operation")
    if args_digest is not None and body.get("args_sha256") != args_digest:
        raise AnswerVerificationError("signed answer is for other request args")
    try:
        ts = datetime.fromisoformat(str(body.get("ts")).replace("Z", "+00:00"))
    except ValueError as exc:
        raise AnswerVerificationError("signed answer has no valid timestamp") from exc
    if abs((datetime.now(UTC) - ts).total_seconds()) > max_skew_seconds:
        raise AnswerVerificationError("signed answer timestamp is outside the allowed skew")
    return body


def reply_key_problem(value: Any) -> str | None:
    """Why a ``prd_reply`` header value is not an acceptable reply key (None: it is): a map of
    exactly kty EC, crv P-256 and x, y (32-byte base64url coordinates of a point on the curve).
    The same rule on the host (before storing an envelope) and in the enclave."""
    if not isinstance(value, dict) or set(value) != REPLY_JWK_KEYS:
        return "prd_reply must be a public JWK with exactly kty, crv, x and y"
    if value["kty"] != "EC" or value["crv"] != SIGNING_CURVE:
        return "prd_reply must be an EC key on P-256 (kty EC, crv P-256)"
    coords = []
    for name in ("x", "y"):
        text = value[name]
        if (
            not isinstance(text, str)
            or len(text) != 43
            or not re.fullmatch(r"[A-Za-z0-9_-]+", text)
        ):
            return f"prd_reply.{name} must be 32 bytes in base64url (43 characters)"
        coords.append(int.from_bytes(b64url_decode(text), "big"))
    try:
        ec.EllipticCurvePublicNumbers(coords[0], coords[1], ec.SECP256R1()).public_key()
    except ValueError:
        return "prd_reply must be a point on the P-256 curve"
    return None


def describe_failure(exc: BaseException) -> str:
    """Exception type and the innermost frame (file:line), never its message or locals."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{place}"
