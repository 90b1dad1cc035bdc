"""COSE_Sign1 (RFC 9052) as AWS Nitro attestation documents use it: ES384 only.

Written with cbor2 + cryptography because pycose does not work with cbor2 6 and this OpenSSL.
AWS emits the untagged four-element array; tag 18 (COSE_Sign1) is accepted when decoding.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

COSE_SIGN1_TAG = 18
HEADER_ALG = 1
ALG_ES384 = -35
ES384_SIGNATURE_SIZE = 96  # raw r || s, 48 bytes each
_PROTECTED_ES384 = cbor2.dumps({HEADER_ALG: ALG_ES384})


class CoseError(ValueError):
    """A COSE_Sign1 message is malformed, uses another algorithm, or its signature is wrong."""


@dataclass(frozen=True)
class CoseSign1:
    """A decoded COSE_Sign1 message; `protected` stays as the exact bytes that were signed."""

    protected: bytes
    unprotected: Mapping
    payload: bytes
    signature: bytes

    @property
    def algorithm(self) -> int | None:
        """The `alg` protected header (-35 for ES384), None when absent."""
        header = loads_exact(self.protected) if self.protected else {}
        if not isinstance(header, Mapping):
            raise CoseError("COSE protected header is not a map")
        return header.get(HEADER_ALG)


def loads_exact(data: bytes) -> object:
    """Decode one CBOR item and refuse trailing bytes (cbor2.loads silently ignores them)."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORError, ValueError, TypeError, EOFError, OverflowError) as exc:
        raise CoseError(f"invalid CBOR: {type(exc).__name__}") from None
    if stream.tell() != len(data):
        raise CoseError("trailing bytes after the CBOR item")
    return value


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The bytes that are signed: CBOR ["Signature1", protected, external_aad, payload]."""
    return cbor2.dumps(["Signature1", protected, external_aad, payload])


def decode_sign1(data: bytes) -> CoseSign1:
    """Parse a COSE_Sign1 message (untagged as AWS emits it, or with tag 18)."""
    item = loads_exact(data)
    if isinstance(item, cbor2.CBORTag):
        if item.tag != COSE_SIGN1_TAG:
            raise CoseError(f"unexpected CBOR tag {item.tag} (COSE_Sign1 is 18)")
        item = item.value
    if not isinstance(item, Sequence) or isinstance(item, (bytes, str)) or len(item) != 4:
        raise CoseError("COSE_Sign1 must be an array of 4 elements")
    protected, unprotected, payload, signature = item
    if not isinstance(protected, bytes):
        raise CoseError("COSE protected header must be a byte string")
    if not isinstance(unprotected, Mapping):
        raise CoseError("COSE unprotected header must be a map")
    if not isinstance(payload, bytes):
        raise CoseError("COSE payload must be a byte string (detached payloads are not used)")
    if not isinstance(signature, bytes):
        raise CoseError("COSE signature must be a byte string")
    return CoseSign1(bytes(protected), dict(unprotected), bytes(payload), bytes(signature))


def encode_sign1(payload: bytes, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """Sign `payload` with an ES384 (P-384) key and return the untagged COSE_Sign1 bytes."""
    if not isinstance(private_key.curve, ec.SECP384R1):
        raise CoseError("ES384 needs a P-384 key")
    der = private_key.sign(sig_structure(_PROTECTED_ES384, payload), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    return cbor2.dumps([_PROTECTED_ES384, {}, payload, raw])


def verify_sign1(message: CoseSign1, public_key: ec.EllipticCurvePublicKey) -> None:
    """Check that `message` is ES384 and signed by `public_key`; raise CoseError otherwise."""
    if message.algorithm != ALG_ES384:
        raise CoseError(f"COSE algorithm {message.algorithm!r} is not ES384 (-35)")
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP384R1
    ):
        raise CoseError("ES384 signature needs a P-384 public key")
    if len(message.signature) != ES384_SIGNATURE_SIZE:
        raise CoseError(
            f"ES384 signature must be {ES384_SIGNATURE_SIZE} bytes, got {len(message.signature)}"
        )
    r = int.from_bytes(message.signature[:48], "big")
    s = int.from_bytes(message.signature[48:], "big")
    try:
        public_key.verify(
            encode_dss_signature(r, s),
            sig_structure(message.protected, message.payload),
            ec.ECDSA(hashes.SHA384()),
        )
    except InvalidSignature:
        raise CoseError(
            "COSE_Sign1 signature does not verify with the leaf certificate key"
        ) from None
