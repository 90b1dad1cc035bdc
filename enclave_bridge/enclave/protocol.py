"""Wire protocol between the host and the enclave, shared by both sides.

A frame is a 4-byte big-endian length followed by that many bytes of CBOR (RFC 8949) holding one
map. Requests are ``{"id", "op", "nonce", "args"}``. Answers echo ``id``, ``op`` and ``nonce`` and
carry exactly one of:

- ``"answer"``: a JWS compact serialization (ES384) over the JSON body
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
MAX_CBOR_DEPTH = 32
SIGNING_ALG = "ES384"
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


class ProtocolError(Exception):
    """An error the peer should see as an error frame (code + message, never payload values)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


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


def encode_frame(message: dict[str, Any]) -> bytes:
    """Length-prefix one CBOR map."""
    body = cbor2.dumps(message)
    return HEADER.pack(len(body)) + body


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


def _check_plain(value: Any, depth: int = 0) -> None:
    """Refuse CBOR tags and exotic types: the protocol only uses JSON-like values plus bytes."""
    if depth > MAX_CBOR_DEPTH:
        raise ProtocolError(E_MALFORMED, "frame nests too deeply")
    if value is None or isinstance(value, str | bytes | bool | int | float):
        return
    if isinstance(value, list):
        for item in value:
            _check_plain(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError(E_MALFORMED, "map keys must be text strings")
            _check_plain(item, depth + 1)
        return
    raise ProtocolError(E_MALFORMED, f"unsupported CBOR item of type {type(value).__name__}")


def decode_message(body: bytes) -> dict[str, Any]:
    """Decode one frame body into a plain map (no tags, no duplicate keys, bounded depth)."""
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
    except Exception as exc:  # cbor2 raises several types on bad input
        raise ProtocolError(E_MALFORMED, "frame body is not valid CBOR") from exc
    if not isinstance(message, dict):
        raise ProtocolError(E_MALFORMED, "frame body must be a CBOR map")
    _check_plain(message)
    return message


def _refuse_tag(decoder: Any, tag: Any) -> Any:
    raise ProtocolError(E_MALFORMED, "CBOR tags are not allowed")


def parse_request(message: dict[str, Any]) -> Request:
    """Check the request envelope's shape; the args are checked by each operation."""
    missing = [name for name in ("id", "op", "nonce") if name not in message]
    if missing:
        raise ProtocolError(E_BAD_REQUEST, f"request is missing field(s): {', '.join(missing)}")
    req_id, op, nonce = message["id"], message["op"], message["nonce"]
    if isinstance(req_id, bool) or not isinstance(req_id, str | int):
        raise ProtocolError(E_BAD_REQUEST, "id must be a text string or an integer")
    if isinstance(req_id, str) and not 0 < len(req_id) <= MAX_ID_LENGTH:
        raise ProtocolError(E_BAD_REQUEST, f"id must have 1 to {MAX_ID_LENGTH} characters")
    if not isinstance(op, str) or not op:
        raise ProtocolError(E_BAD_REQUEST, "op must be a non-empty text string")
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
        raise ProtocolError(E_BAD_REQUEST, f"unexpected request field(s): {', '.join(extra)}")
    return Request(id=req_id, op=op, nonce=nonce, args=args)


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


def answer_body(
    *, req_id: str | int, nonce: bytes, op: str, result: Any, args_digest: str | None = None
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
    """JWS compact serialization (RFC 7515: ES384, ``kid`` in the protected header) over ``body``.

    Built with ``cryptography`` rather than a jwcrypto JWS object, whose construction deep-copies
    its header registry on every call: that was a third of the enclave's per-envelope overhead
    over the RSA decryption. The format is checked where it matters: the host (and any agent)
    verifies every answer with jwcrypto.
    """
    key = signing_key.get_op_key("sign") if isinstance(signing_key, jwk.JWK) else signing_key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp384r1":
        raise ValueError("the answer-signing key must be a private EC P-384 key")
    protected = b64url(json.dumps({"alg": SIGNING_ALG, "kid": kid}).encode("utf-8"))
    signing_input = f"{protected}.{b64url(body)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA384())))
    # JWS carries the raw r || s, each 48 bytes for P-384 (RFC 7518 §3.4), not DER.
    return f"{signing_input}.{b64url(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"


class AnswerVerificationError(Exception):
    """A signed answer failed verification: forged, for another request, or stale."""


def verify_answer(
    token: str,
    signing_key: jwk.JWK,
    *,
    req_id: str | int,
    nonce: bytes,
    op: str,
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
            raise AnswerVerificationError(f"answer signed with {header.get('alg')!r}, not ES384")
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


def describe_failure(exc: BaseException) -> str:
    """Exception type and the innermost frame (file:line), never its message or locals."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{place}"
