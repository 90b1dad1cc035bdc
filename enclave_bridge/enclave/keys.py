"""The enclave's key ring: RSA envelope keys (decrypt agents' JWEs) and the result-signing key.

Private keys exist in clear only in enclave memory. Outside, the key set travels only sealed
(``KmsSealer``, context ``{"purpose": "enclave-keys"}``): a CBOR structure with every private key
as PKCS#8 DER, which the host stores and hands back with ``unseal`` at the next boot.

Key ids are RFC 7638 JWK thumbprints (SHA-256, base64url), so anyone holding the public key can
recompute the kid and nobody has to trust a name.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwcrypto import jwk

from enclave_bridge.wire.protocol import canonical_json, sign_answer

ENVELOPE_KEY_BITS = 3072
ENVELOPE_ALG = "RSA-OAEP-256"
CONTENT_ENC = "A256GCM"
SIGNING_ALG = "ES384"
KEYSET_VERSION = 1
SEAL_CONTEXT = {"purpose": "enclave-keys"}


class Sealer(Protocol):
    """What the enclave needs from ``enclave_bridge.enclave.kms.KmsSealer``."""

    def seal(self, plaintext: bytes, *, context: dict[str, str]) -> bytes: ...

    def unseal(self, blob: bytes, *, context: dict[str, str]) -> bytes: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _pkcs8(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def spki_der(public_key: Any) -> bytes:
    """DER SubjectPublicKeyInfo of a public key (what the attestation's public_key carries)."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass
class KeyEntry:
    """One private key with its kid and creation time."""

    kid: str
    created: str
    private_key: Any
    jwk: jwk.JWK = field(repr=False)

    @classmethod
    def from_private(cls, private_key: Any, created: str, use: str, alg: str) -> KeyEntry:
        key = jwk.JWK.from_pyca(private_key)
        kid = key.thumbprint()
        key.update(kid=kid, use=use, alg=alg)
        return cls(kid=kid, created=created, private_key=private_key, jwk=key)

    def public_jwk(self) -> dict[str, Any]:
        public = self.jwk.export_public(as_dict=True)
        return {k: public[k] for k in sorted(public)}


@dataclass
class KeyRing:
    """Envelope keys (oldest first, last is current) and the current result-signing key."""

    envelope: list[KeyEntry]
    signing: KeyEntry
    # Keys the plaintext digests the host sees (HMAC-SHA-256): identical submissions still match,
    # but the host cannot confirm a guessed plaintext as it could with a bare SHA-256.
    digest_key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)

    @classmethod
    def generate(cls) -> KeyRing:
        """First boot: a fresh RSA-3072 envelope key, an ECDSA P-384 signing key, a digest key."""
        return cls(envelope=[_new_envelope_key()], signing=_new_signing_key())

    def rotated(self, *, rotate_signing: bool) -> KeyRing:
        """A new current envelope key; older keys stay so older envelopes still decrypt."""
        signing = _new_signing_key() if rotate_signing else self.signing
        return KeyRing(
            envelope=[*self.envelope, _new_envelope_key()],
            signing=signing,
            digest_key=self.digest_key,
        )

    def digest(self, plaintext: bytes) -> str:
        """The plaintext's keyed digest (hex), stable across restarts and rotations."""
        return hmac.new(self.digest_key, plaintext, hashlib.sha256).hexdigest()

    @property
    def current(self) -> KeyEntry:
        return self.envelope[-1]

    def envelope_key(self, kid: str) -> KeyEntry | None:
        for entry in self.envelope:
            if entry.kid == kid:
                return entry
        return None

    def envelope_jwks(self) -> dict[str, Any]:
        """Public envelope keys, oldest first (the set whose digest goes into user_data)."""
        return {"keys": [entry.public_jwk() for entry in self.envelope]}

    def envelope_jwks_sha256(self) -> bytes:
        return hashlib.sha256(canonical_json(self.envelope_jwks())).digest()

    def public_jwks(self) -> dict[str, Any]:
        """What agents and the host fetch: envelope keys (use enc) and the signing key (use sig)."""
        return {"keys": [*self.envelope_jwks()["keys"], self.signing.public_jwk()]}

    def attestation_user_data(self) -> bytes:
        """CBOR bound into the attestation document: current kid, JWKS digest, signing SPKI."""
        return cbor2.dumps(
            {
                "kid": self.current.kid,
                "jwks_sha256": self.envelope_jwks_sha256(),
                "sig_kid": self.signing.kid,
                "sig_spki": spki_der(self.signing.private_key.public_key()),
            },
            canonical=True,
        )

    def current_spki(self) -> bytes:
        return spki_der(self.current.private_key.public_key())

    def sign(self, body: bytes) -> str:
        return sign_answer(body, self.signing.private_key, self.signing.kid)

    def to_cbor(self) -> bytes:
        """Serialize private keys (PKCS#8) for sealing; never leaves the enclave unsealed."""
        return cbor2.dumps(
            {
                "v": KEYSET_VERSION,
                "envelope": [
                    {"kid": e.kid, "created": e.created, "pkcs8": _pkcs8(e.private_key)}
                    for e in self.envelope
                ],
                "signing": {
                    "kid": self.signing.kid,
                    "created": self.signing.created,
                    "pkcs8": _pkcs8(self.signing.private_key),
                },
                "digest_key": self.digest_key,
            }
        )

    @classmethod
    def from_cbor(cls, data: bytes) -> KeyRing:
        """Rebuild the ring from an unsealed key set, checking every kid against its key."""
        doc = cbor2.loads(data)
        if not isinstance(doc, dict) or doc.get("v") != KEYSET_VERSION:
            raise ValueError("unsupported key set version")
        envelope = [
            _load_entry(item, rsa.RSAPrivateKey, "enc", ENVELOPE_ALG) for item in doc["envelope"]
        ]
        if not envelope:
            raise ValueError("key set holds no envelope key")
        signing = _load_entry(doc["signing"], ec.EllipticCurvePrivateKey, "sig", SIGNING_ALG)
        digest_key = doc.get("digest_key")
        if not isinstance(digest_key, bytes) or len(digest_key) != 32:
            raise ValueError("key set holds no 32-byte digest key")
        return cls(envelope=envelope, signing=signing, digest_key=digest_key)

    def seal(self, sealer: Sealer) -> bytes:
        return sealer.seal(self.to_cbor(), context=dict(SEAL_CONTEXT))

    @classmethod
    def unseal(cls, sealer: Sealer, blob: bytes) -> KeyRing:
        return cls.from_cbor(sealer.unseal(blob, context=dict(SEAL_CONTEXT)))


def _load_entry(item: dict[str, Any], kind: type, use: str, alg: str) -> KeyEntry:
    private_key = serialization.load_der_private_key(item["pkcs8"], password=None)
    if not isinstance(private_key, kind):
        raise ValueError(f"key set holds a key of the wrong type for use {use!r}")
    entry = KeyEntry.from_private(private_key, item["created"], use, alg)
    if entry.kid != item["kid"]:
        raise ValueError("key set kid does not match its key")
    return entry


def _new_envelope_key() -> KeyEntry:
    key = rsa.generate_private_key(public_exponent=65537, key_size=ENVELOPE_KEY_BITS)
    return KeyEntry.from_private(key, _now(), "enc", ENVELOPE_ALG)


def _new_signing_key() -> KeyEntry:
    return KeyEntry.from_private(
        ec.generate_private_key(ec.SECP384R1()), _now(), "sig", SIGNING_ALG
    )
