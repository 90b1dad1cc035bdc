"""Opening agents' envelopes: JWE compact, RSA-OAEP-256 + A256GCM only, key chosen by kid.

The protected header is checked before any private-key operation, so a wrong algorithm or an
unknown kid is reported as such (and costs nothing), and compression (``zip``) is refused:
decompression bombs are not our problem if we never inflate.
"""

from __future__ import annotations

import threading
from typing import Any

from jwcrypto import jwe

from enclave_bridge.wire.protocol import (
    E_ALGORITHM,
    E_DECRYPT,
    E_ENVELOPE,
    E_TOO_LARGE,
    E_UNKNOWN_KID,
    ENVELOPE_HEADER_KEYS,
    REPLY_HEADER_KEY,
    JsonRefused,
    ProtocolError,
    b64url_decode,
    reply_key_problem,
    strict_json_loads,
)

from .keys import CONTENT_ENC, ENVELOPE_ALG, KeyRing

MAX_ENVELOPE_CHARS = 8 * 1024 * 1024
MAX_PLAINTEXT_BYTES = 6 * 1024 * 1024
MAX_HEADER_CHARS = 4096  # a real header is about 120 characters
ALLOWED_HEADER = ENVELOPE_HEADER_KEYS


def read_header(token: Any) -> dict[str, Any]:
    """Decode and check the protected header of a compact JWE."""
    if not isinstance(token, str):
        raise ProtocolError(E_ENVELOPE, "envelope must be a JWE compact serialization (text)")
    if len(token) > MAX_ENVELOPE_CHARS:
        raise ProtocolError(E_TOO_LARGE, f"envelope exceeds {MAX_ENVELOPE_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 5:
        raise ProtocolError(E_ENVELOPE, "envelope must be a JWE compact serialization (5 parts)")
    if len(parts[0]) > MAX_HEADER_CHARS:
        raise ProtocolError(
            E_ENVELOPE, f"envelope protected header exceeds {MAX_HEADER_CHARS} characters"
        )
    try:
        header = strict_json_loads(b64url_decode(parts[0]), max_depth=2)
    except JsonRefused as exc:
        raise ProtocolError(E_ENVELOPE, f"envelope protected header: {exc.rule}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(E_ENVELOPE, "envelope protected header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise ProtocolError(E_ENVELOPE, "envelope protected header must be a JSON object")
    if header.get("alg") != ENVELOPE_ALG:
        raise ProtocolError(E_ALGORITHM, f"envelope alg must be {ENVELOPE_ALG}")
    if header.get("enc") != CONTENT_ENC:
        raise ProtocolError(E_ALGORITHM, f"envelope enc must be {CONTENT_ENC}")
    if "zip" in header:
        raise ProtocolError(E_ALGORITHM, "compressed envelopes (zip) are not accepted")
    unknown = sorted(set(header) - ALLOWED_HEADER)
    if unknown:
        raise ProtocolError(E_ENVELOPE, "envelope protected header has unsupported parameters")
    if not isinstance(header.get("kid"), str):
        raise ProtocolError(E_UNKNOWN_KID, "envelope header has no kid")
    if REPLY_HEADER_KEY in header:
        problem = reply_key_problem(header[REPLY_HEADER_KEY])
        if problem is not None:
            raise ProtocolError(E_ENVELOPE, f"envelope protected header: {problem}")
    return header


_local = threading.local()


def _decoder() -> jwe.JWE:
    """One JWE object per thread: a new one deep-copies jwcrypto's header registry (~0.3 ms),
    which is a tenth of the whole per-envelope budget. ``deserialize`` resets all token state."""
    decoder = getattr(_local, "decoder", None)
    if decoder is None:
        decoder = _local.decoder = jwe.JWE(algs=[ENVELOPE_ALG, CONTENT_ENC])
    return decoder


def open_envelope(token: Any, keys: KeyRing) -> bytes:
    """Decrypt an envelope with the key its kid names; raise ProtocolError with a clear code."""
    header = read_header(token)
    entry = keys.envelope_key(header["kid"])
    if entry is None:
        raise ProtocolError(
            E_UNKNOWN_KID,
            "envelope kid is not one of this enclave's keys (fetch the current attestation)",
        )
    envelope = _decoder()
    try:
        envelope.deserialize(token)
        envelope.decrypt(entry.jwk, max_plaintext=MAX_PLAINTEXT_BYTES)
    except Exception as exc:
        raise ProtocolError(
            E_DECRYPT, "envelope does not decrypt (tampered, truncated or not for this key)"
        ) from exc
    plaintext = envelope.plaintext
    if plaintext is None or len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ProtocolError(E_TOO_LARGE, f"plaintext exceeds {MAX_PLAINTEXT_BYTES} bytes")
    return bytes(plaintext)
