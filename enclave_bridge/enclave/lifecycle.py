"""The enclave's key lifecycle: locked until ``init`` (first boot: generate and seal under KMS)
or ``unseal`` (later boots), then ``rotate`` and ``attest``. A mixin of Service: it reads and sets
``self.keys`` under ``self._state_lock``."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from enclave_bridge.wire.protocol import (
    E_ALREADY_UNLOCKED,
    E_BAD_REQUEST,
    E_SEAL,
    ProtocolError,
    Request,
    b64url,
    describe_failure,
)

from .keys import KeyRing, Sealer

logger = logging.getLogger(__name__)

MAX_ENVELOPE_KEYS = 32
SealerFactory = Callable[[dict[str, str] | None], Sealer]


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


class KeyLifecycle:
    """init / unseal / rotate / attest; the key state other ops depend on."""

    keys: KeyRing | None
    nsm: Any
    sealer_factory: Any
    pool: Any
    _state_lock: threading.Lock

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
            resealed = None
            if keys.signing.replaced_legacy:
                # A pre-ES256 set: its P-384 signing key was replaced by a P-256 one, so the
                # host must store this resealed set (the unseal answer carries it).
                resealed = _seal(keys, sealer)
                logger.info("legacy P-384 signing key replaced; key set resealed")
            self._unlock(keys)
        logger.info("keys unsealed: kid=%s signing_kid=%s", keys.current.kid, keys.signing.kid)
        return _Signed(keys, self._key_answer(keys, resealed))

    def op_rotate(self, req: Request) -> _Signed:
        """New envelope key (older kept); answer signed by the signing key the host already trusts."""
        rotate_signing = req.args.get("rotate_signing", False)
        if not isinstance(rotate_signing, bool):
            raise ProtocolError(E_BAD_REQUEST, "rotate_signing must be a boolean")
        held = self.keys
        if held is not None and len(held.envelope) >= MAX_ENVELOPE_KEYS:
            # Older keys stay so older envelopes open; a flood of rotations must not grow the
            # ring (and the sealed blob) without bound.
            raise ProtocolError(
                E_BAD_REQUEST, f"the key ring already holds {MAX_ENVELOPE_KEYS} envelope keys"
            )
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
