"""Check the enclave's attestation on the agent's machine before encrypting anything to it.

The platform relays the enclave's answer to ``GET /api/v1/enclave/attestation/?nonce=``; the
platform is not trusted for it. The client sends its own fresh nonce and accepts the key only
when, with the policy pinned in client.toml (docs/attestation.md):

1. the answer echoes the nonce sent and its fields have the documented shape;
2. the COSE_Sign1 document chains to the pinned trust root (its SHA-256 too, when pinned), every
   certificate valid now, signed by the enclave leaf, at most ``max_age`` old, not from the
   future, bound to that nonce, with exactly the pinned PCR values and not a debug enclave;
3. the document's ``public_key`` is the announced current envelope key and its ``user_data``
   binds the whole envelope JWKS (SHA-256), the current kid and the result-signing key;
4. the envelope key is RSA (≥ 2048 bits) for RSA-OAEP-256, the signing key EC P-256 (ES256),
   and neither carries private material.

Steps 2 and 3 are the same code the host runs (``enclave_bridge.attestation.verify`` and the
binding check of ``enclave_bridge.client.trust``), Django-free. Any failure raises
AttestationRefused; nothing is encrypted then.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jwcrypto import jwk

from enclave_bridge.attestation.verify import AttestationError
from enclave_bridge.client.trust import Attestation, check_attestation
from enclave_bridge.wire.protocol import AnswerVerificationError, b64url, b64url_decode

from .config import TrustPolicy
from .errors import AttestationRefused

NONCE_BYTES = 32
MIN_RSA_BITS = 2048
# The enclave signs its answers ES256 only (docs/attestation.md §6).
SIGNING_CURVES = {"P-256": "ES256"}


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


@dataclass(frozen=True)
class VerifiedAttestation:
    """An attestation that passed every check: the key to encrypt to and what proved it."""

    kid: str
    kids: tuple[str, ...]
    signing_kid: str
    jwks: dict[str, Any]
    module_id: str
    timestamp: dt.datetime
    pcrs: dict[int, str]
    nonce: bytes
    verified_at: dt.datetime

    @property
    def envelope_jwk(self) -> dict[str, Any]:
        """The current ``use: enc`` key (RSA-OAEP-256)."""
        return _find(self.jwks, self.kid, "enc")

    @property
    def signing_jwk(self) -> dict[str, Any]:
        """The key that signs the enclave's verdicts and results."""
        return _find(self.jwks, self.signing_kid, "sig")

    def export(self) -> dict[str, Any]:
        """What another program (the Node example) needs to encrypt to this verified key, with
        when and how it was verified. Public data only."""
        return {
            "kid": self.kid,
            "signing_kid": self.signing_kid,
            "jwks": {"keys": [self.envelope_jwk, self.signing_jwk]},
            "verified_at": self.verified_at.isoformat(),
            "document_timestamp": self.timestamp.isoformat(),
            "module_id": self.module_id,
            "pcrs": {str(i): v for i, v in sorted(self.pcrs.items())},
        }


def _find(jwks: Mapping[str, Any], kid: str, use: str) -> dict[str, Any]:
    for key in jwks.get("keys", []):
        if isinstance(key, Mapping) and key.get("kid") == kid and key.get("use") == use:
            return dict(key)
    raise AttestationRefused("no_key", kid=kid, use=use)


def _require(answer: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = answer.get(name)
    if not isinstance(value, kind):
        raise AttestationRefused("shape", field=name)
    return value


def _check_keys(jwks: Mapping[str, Any], kid: str, kids: list[str], signing_kid: str) -> None:
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise AttestationRefused("shape", field="jwks.keys")
    for key in keys:
        if not isinstance(key, Mapping):
            raise AttestationRefused("shape", field="jwks.keys")
        if any(part in key for part in ("d", "p", "q", "dp", "dq", "qi", "k")):
            raise AttestationRefused("private_key", kid=str(key.get("kid")))
    if kid not in kids:
        raise AttestationRefused("kid_not_listed", kid=kid)
    enc = _find(jwks, kid, "enc")
    if enc.get("kty") != "RSA" or enc.get("alg", "RSA-OAEP-256") != "RSA-OAEP-256":
        raise AttestationRefused("enc_key_type", kid=kid)
    try:
        bits = jwk.JWK(**enc).get_op_key("encrypt").key_size
    except Exception as exc:
        raise AttestationRefused("enc_key_type", kid=kid) from exc
    if bits < MIN_RSA_BITS:
        raise AttestationRefused("enc_key_size", kid=kid, bits=bits, minimum=MIN_RSA_BITS)
    sig = _find(jwks, signing_kid, "sig")
    if sig.get("kty") != "EC" or sig.get("crv") not in SIGNING_CURVES:
        raise AttestationRefused("sig_key_type", kid=signing_kid)
    if sig.get("alg") not in (None, SIGNING_CURVES[sig["crv"]]):
        raise AttestationRefused("sig_key_type", kid=signing_kid)


def verify_answer(
    answer: Mapping[str, Any],
    nonce: bytes,
    policy: TrustPolicy,
    *,
    now: dt.datetime | None = None,
) -> VerifiedAttestation:
    """Check the platform's attestation answer against the nonce sent and the pinned policy."""
    if not isinstance(answer, Mapping):
        raise AttestationRefused("shape", field="answer")
    document_b64 = _require(answer, "document", str)
    echoed = _require(answer, "nonce", str)
    kid = _require(answer, "kid", str)
    kids = _require(answer, "kids", list)
    signing_kid = _require(answer, "signing_kid", str)
    jwks = _require(answer, "jwks", dict)
    if not all(isinstance(k, str) for k in kids):
        raise AttestationRefused("shape", field="kids")
    try:
        document = b64url_decode(document_b64)
        echoed_nonce = b64url_decode(echoed)
    except (ValueError, TypeError) as exc:
        raise AttestationRefused("shape", field="document") from exc
    if echoed_nonce != nonce:
        raise AttestationRefused("nonce_echo")
    _check_keys(jwks, kid, kids, signing_kid)
    now = now or dt.datetime.now(dt.UTC)
    attestation = Attestation(
        document=document,
        nonce=nonce,
        kid=kid,
        kids=list(kids),
        signing_kid=signing_kid,
        jwks=dict(jwks),
    )
    try:
        doc = check_attestation(
            attestation,
            trusted_root=policy.root_certificate(),
            root_sha256=policy.root_sha256,
            expected_pcrs=dict(policy.pcrs),
            max_age=policy.max_age,
            allow_debug=policy.allow_debug,
            now=now,
        )
    except (AttestationError, AnswerVerificationError, KeyError) as exc:
        raise AttestationRefused("document", reason=str(exc) or type(exc).__name__) from exc
    return VerifiedAttestation(
        kid=kid,
        kids=tuple(kids),
        signing_kid=signing_kid,
        jwks=dict(jwks),
        module_id=doc.module_id,
        timestamp=doc.timestamp,
        pcrs={i: v.hex() for i, v in doc.pcrs.items() if i in policy.pcrs},
        nonce=nonce,
        verified_at=now,
    )


def fetch_verified(
    api: Any, policy: TrustPolicy, *, nonce: bytes | None = None, now: dt.datetime | None = None
) -> VerifiedAttestation:
    """Ask the platform for an attestation bound to a fresh nonce and verify it."""
    nonce = nonce or new_nonce()
    answer = api.attestation(b64url(nonce))
    return verify_answer(answer, nonce, policy, now=now)
