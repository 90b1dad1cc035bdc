"""Verification on the host: attestation documents, the JWKS they bind, and every signed answer
(and signed error) against the registered result-signing key."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from jwcrypto import jwk

from enclave_bridge.wire.protocol import (
    E_LOCKED,
    LOCKED_OPS,
    SIGNING_ALG,
    SIGNING_CURVE,
    AnswerVerificationError,
    b64url_decode,
    canonical_json,
    verify_answer,
)

from .errors import EnclaveError


@dataclass(frozen=True)
class KeySet:
    """Answer of init / unseal / rotate."""

    kid: str
    kids: list[str]
    signing_kid: str
    jwks: dict[str, Any]
    sealed_keys: bytes | None

    @property
    def signing_jwk(self) -> dict[str, Any]:
        return signing_jwk_of(self.jwks, self.signing_kid)


@dataclass(frozen=True)
class Attestation:
    """Answer of attest: the NSM document plus the JWKS it binds."""

    document: bytes
    nonce: bytes
    kid: str
    kids: list[str]
    signing_kid: str
    jwks: dict[str, Any]

    @property
    def signing_jwk(self) -> dict[str, Any]:
        return signing_jwk_of(self.jwks, self.signing_kid)

    def envelope_jwk(self, kid: str | None = None) -> dict[str, Any]:
        """The public key agents encrypt to (the current one unless a kid is given)."""
        want = kid or self.kid
        for key in self.jwks["keys"]:
            if key.get("kid") == want and key.get("use") == "enc":
                return key
        raise KeyError(want)


def signing_jwk_of(jwks: Mapping[str, Any], kid: str) -> dict[str, Any]:
    for key in jwks.get("keys", []):
        if key.get("kid") == kid and key.get("use") == "sig":
            return dict(key)
    raise AnswerVerificationError("answer's JWKS holds no signing key with the announced kid")


def check_attestation(
    attestation: Attestation,
    *,
    trusted_root: Any,
    expected_pcrs: Mapping[int, bytes] | None,
    root_sha256: str | None = None,
    max_age: dt.timedelta | None = dt.timedelta(minutes=5),
    allow_debug: bool = False,
    now: dt.datetime | None = None,
) -> Any:
    """Verify the document (chain, signature, PCRs, nonce) and that it binds this JWKS.

    Returns the verified AttestationDocument. Raises AttestationError or AnswerVerificationError.
    """
    from cryptography.hazmat.primitives import serialization

    from enclave_bridge.attestation.verify import verify_attestation

    doc = verify_attestation(
        attestation.document,
        trusted_root=trusted_root,
        root_sha256=root_sha256,
        now=now or dt.datetime.now(dt.UTC),
        max_age=max_age,
        expected_nonce=attestation.nonce,
        expected_pcrs=expected_pcrs,
        allow_debug=allow_debug,
    )
    current = jwk.JWK(**attestation.envelope_jwk())
    spki = current.get_op_key("encrypt").public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if doc.public_key != spki:
        raise AnswerVerificationError("attested public_key is not the current envelope key")
    try:
        bound = cbor2.loads(doc.user_data or b"")
    except Exception as exc:
        raise AnswerVerificationError("attested user_data is not the expected CBOR map") from exc
    envelope_keys = [k for k in attestation.jwks["keys"] if k.get("use") == "enc"]
    digest = hashlib.sha256(canonical_json({"keys": envelope_keys})).digest()
    signing = jwk.JWK(**attestation.signing_jwk).get_op_key("verify")
    sig_spki = signing.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not isinstance(bound, dict) or (
        bound.get("kid"),
        bound.get("jwks_sha256"),
        bound.get("sig_kid"),
        bound.get("sig_spki"),
    ) != (attestation.kid, digest, attestation.signing_kid, sig_spki):
        raise AnswerVerificationError("attested user_data does not bind this JWKS and signing key")
    return doc


@dataclass(frozen=True)
class SignedAnswer:
    """A verified result with what binds it: the JWS (None only for a locked enclave's health or
    describe), the SHA-256 of the args it answers, and the request id and nonce it echoes."""

    result: Any
    token: str | None
    args_sha256: str
    request_id: str
    nonce: bytes


class AnswerVerifier:
    """Holds the trusted result-signing key and turns an answer frame into a verified result or
    an EnclaveError; refuses anything forged, for another request, or stale."""

    def __init__(
        self,
        signing_jwk: Mapping[str, Any] | jwk.JWK | None = None,
        *,
        max_skew_seconds: float = 300.0,
    ) -> None:
        self.max_skew_seconds = max_skew_seconds
        self._key: jwk.JWK | None = None
        if signing_jwk is not None:
            self.register(signing_jwk)

    def register(self, key: Mapping[str, Any] | jwk.JWK) -> None:
        """Trust this public key (from a checked attestation) for every later answer."""
        key = key if isinstance(key, jwk.JWK) else jwk.JWK(**dict(key))
        if key.get("kty") != "EC" or key.get("crv") != SIGNING_CURVE or key.has_private:
            raise ValueError(f"signing key must be a public EC {SIGNING_CURVE} JWK ({SIGNING_ALG})")
        if key.get("alg") not in (None, SIGNING_ALG):
            raise ValueError(f"signing key must be for {SIGNING_ALG}")
        self._key = key

    @property
    def kid(self) -> str | None:
        return None if self._key is None else self._key.get("kid")

    def interpret(
        self, answer: Mapping[str, Any], *, req_id: str, nonce: bytes, op: str, digest: str
    ) -> SignedAnswer:
        """The verified result of ``answer`` to this request, or raise EnclaveError /
        AnswerVerificationError."""
        if answer.get("id") != req_id or answer.get("nonce") != nonce:
            if "error" in answer and answer.get("id") is None:
                # A frame-level refusal (busy, oversize): signed once the enclave holds keys.
                err, signed = answer["error"], False
                if self._key is not None and "answer" in answer:
                    token = answer["answer"]
                    err = self.verified(token, None, b"", None, None, announced=False)["error"]
                    signed = True
                raise EnclaveError(str(err.get("code")), str(err.get("message")), signed=signed)
            raise AnswerVerificationError("answer frame is for another request (id or nonce)")
        if "error" in answer:
            err, signed = answer["error"], False
            if self._key is not None:
                if "answer" in answer:
                    token = answer["answer"]
                    err = self.verified(token, req_id, nonce, op, digest, announced=False)["error"]
                    signed = True
                elif err.get("code") != E_LOCKED and op not in LOCKED_OPS:
                    # An unlocked enclave signs its errors: an unsigned one was forged or altered
                    # on the way. Only a locked enclave (no keys yet) answers unsigned: "locked",
                    # or the failure of a boot op (a forged one could only deny service).
                    raise AnswerVerificationError("error answer is not signed")
            raise EnclaveError(str(err.get("code")), str(err.get("message")), signed=signed)
        if "answer" in answer:
            token = answer["answer"]
            result = self.verified(token, req_id, nonce, op, digest)
            return SignedAnswer(result, token, digest, req_id, nonce)
        result = answer.get("result")
        if (
            op in ("health", "describe")
            and isinstance(result, dict)
            and result.get("state") == "locked"
        ):
            # A locked enclave holds no signing key yet.
            return SignedAnswer(result, None, digest, req_id, nonce)
        raise AnswerVerificationError("answer is not signed")

    def verified(
        self,
        token: str,
        req_id: str | None,
        nonce: bytes,
        op: str | None,
        digest: str | None,
        *,
        announced: bool = True,
    ) -> Any:
        key = self._key
        if announced and op in ("init", "unseal", "attest"):
            # These answers carry the JWKS; the signature is checked with the key they announce,
            # and that key must equal the registered one if any. A fresh key becomes trusted only
            # once check_attestation has tied it to the attested image.
            announced = self.announced_key(token)
            if key is not None and op != "init" and key.thumbprint() != announced.thumbprint():
                raise AnswerVerificationError("answer is signed by an unexpected key")
            key = announced
        if key is None:
            raise AnswerVerificationError(
                "no signing key registered: attest, check_attestation, register_signing_key first"
            )
        body = verify_answer(
            token,
            key,
            req_id=req_id,
            nonce=nonce,
            op=op,
            args_digest=digest,
            max_skew_seconds=self.max_skew_seconds,
        )
        return body["result"]

    @staticmethod
    def announced_key(token: str) -> jwk.JWK:
        try:
            header_b64, payload_b64, _ = token.split(".")
            header = json.loads(b64url_decode(header_b64))
            result = json.loads(b64url_decode(payload_b64))["result"]
            return jwk.JWK(**signing_jwk_of(result["jwks"], header["kid"]))
        except AnswerVerificationError:
            raise
        except Exception as exc:
            raise AnswerVerificationError("answer does not announce its signing key") from exc


def keyset_from(result: Mapping[str, Any]) -> KeySet:
    sealed = result.get("sealed_keys")
    return KeySet(
        kid=result["kid"],
        kids=list(result["kids"]),
        signing_kid=result["signing_kid"],
        jwks=result["jwks"],
        sealed_keys=None if sealed is None else b64url_decode(sealed),
    )
