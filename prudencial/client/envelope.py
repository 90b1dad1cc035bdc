"""Build the envelope (docs/envelope.md § 2): a compact JWE, RSA-OAEP-256 + A256GCM, to the
current kid of a VERIFIED attestation, with exactly the header ``{"alg", "enc", "kid"}`` and, for
a portfolio whose breakdown the agent wants to read, ``prd_reply`` (its public reply key).

The plaintext is the file as the agent has it: the JSON payload's bytes or the filled XLSX
template. JSON is parsed first with the enclave's strict rules (no duplicate keys, no NaN, at
most 32 levels), so a file the enclave would refuse for its shape is refused here, before
anything leaves the machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jwcrypto import jwe, jwk

from enclave_bridge.wire.protocol import (
    REPLY_HEADER_KEY,
    JsonRefused,
    b64url_decode,
    reply_key_problem,
    strict_json_loads,
)

from .attestation import VerifiedAttestation
from .errors import PayloadError

ALG = "RSA-OAEP-256"
ENC = "A256GCM"
# The enclave's limits (enclave_bridge/enclave/envelope.py and xlsx.py; docs/envelope.md):
# checked here too so a file that cannot pass is not encrypted and uploaded for nothing.
MAX_PLAINTEXT_BYTES = 6 * 1024 * 1024
MAX_XLSX_BYTES = 4 * 1024 * 1024  # one agent's workbook (xlsx.SINGLE)
MAX_BATCH_XLSX_BYTES = 6 * 1024 * 1024  # a batch workbook (xlsx.BATCH)
UTF8_BOM = b"\xef\xbb\xbf"
XLSX_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class LocalFile:
    """A file to submit: its bytes, ``format`` ("json" or "xlsx") and, for JSON, the payload."""

    path: Path | None
    data: bytes
    format: str
    payload: Any = None

    @property
    def name(self) -> str:
        return self.path.name if self.path else f"<{self.format}>"


def parse_json_bytes(data: bytes) -> Any:
    """Strict JSON as the enclave reads it; PayloadError names the rule, never a value."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("not_utf8") from None
    try:
        return strict_json_loads(text, parse_constant=_refuse_constant)
    except JsonRefused as exc:
        raise PayloadError("json_refused", rule=exc.rule) from None
    except ValueError as exc:
        line, col = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        if line is None:
            raise PayloadError("json_refused", rule=str(exc)) from None
        raise PayloadError("json_syntax", line=line, column=col) from None


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"numbers must be finite ({name} is not JSON)")


def read_file(path: str | Path, *, batch: bool = False) -> LocalFile:
    """Read a .json or .xlsx file to submit (by content: an XLSX is a zip archive); ``batch``: a
    file for many agents, whose XLSX bound is the enclave's batch bound."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PayloadError("unreadable", path=str(path), reason=exc.strerror or "") from None
    return from_bytes(data, path=path, batch=batch)


def from_bytes(data: bytes, *, path: Path | None = None, batch: bool = False) -> LocalFile:
    if data.startswith(XLSX_MAGIC):
        limit = MAX_BATCH_XLSX_BYTES if batch else MAX_XLSX_BYTES
        if len(data) > limit:
            raise PayloadError("too_large", size=len(data), limit=limit)
        return LocalFile(path, data, "xlsx")
    # Editors may write a byte-order mark; the enclave reads plain UTF-8, so what is encrypted
    # is the text without it (the same text the local check parsed).
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    if len(data) > MAX_PLAINTEXT_BYTES:
        raise PayloadError("too_large", size=len(data), limit=MAX_PLAINTEXT_BYTES)
    return LocalFile(path, data, "json", parse_json_bytes(data))


def from_payload(payload: Any) -> LocalFile:
    """A payload built in memory (a dict), serialised as UTF-8 JSON."""
    try:
        data = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:
        raise PayloadError("json_refused", rule="numbers must be finite") from None
    if len(data) > MAX_PLAINTEXT_BYTES:
        raise PayloadError("too_large", size=len(data), limit=MAX_PLAINTEXT_BYTES)
    return LocalFile(None, data, "json", payload)


def encrypt(
    plaintext: bytes,
    attestation: VerifiedAttestation,
    *,
    reply: Mapping[str, str] | None = None,
) -> str:
    """The compact JWE of ``plaintext`` to the attestation's current envelope key; ``reply``
    (the agent's public reply JWK) goes in the protected header as ``prd_reply``, where it is
    authenticated as the AAD, so nobody on the way can swap it for their own key."""
    if not isinstance(attestation, VerifiedAttestation):
        # Encrypting to a key nobody verified is exactly what the client exists to prevent.
        raise TypeError("encrypt() needs a VerifiedAttestation (see prudencial.client.attestation)")
    key = jwk.JWK(**attestation.envelope_jwk)
    protected: dict[str, Any] = {"alg": ALG, "enc": ENC, "kid": attestation.kid}
    if reply is not None:
        value = dict(reply)
        problem = reply_key_problem(value)  # the platform and the enclave refuse it otherwise
        if problem is not None:
            raise ValueError(problem)
        protected[REPLY_HEADER_KEY] = value
    token = jwe.JWE(plaintext, protected=protected)
    token.add_recipient(key)
    return token.serialize(compact=True)


def encrypt_file(
    file: LocalFile, attestation: VerifiedAttestation, *, reply: Mapping[str, str] | None = None
) -> str:
    return encrypt(file.data, attestation, reply=reply)


def receipt(envelope: str) -> str:
    """SHA-256 hex of the JWE text: the receipt the platform answers with."""
    return hashlib.sha256(envelope.encode("ascii")).hexdigest()


def protected_header(envelope: str) -> dict[str, Any]:
    """The JWE's protected header (public: alg, enc, kid, and prd_reply when sent)."""
    return json.loads(b64url_decode(envelope.split(".", 1)[0]))
