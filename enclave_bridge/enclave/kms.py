"""Enclave-side sealing with AWS KMS through the attested Recipient path.

The enclave never asks KMS for a plaintext data key: every GenerateDataKey / Decrypt carries a
fresh attestation document binding an EPHEMERAL RSA-2048 public key, so KMS (which checks the
key policy's `kms:RecipientAttestation:*` conditions against the PCRs) answers with
`CiphertextForRecipient`, readable only inside this enclave. Works unchanged against real KMS
(through vsock-proxy) and against the simulated KMS in enclave_bridge.kms_sim. Imports no Django.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import cbor2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave_bridge.attestation.cms import CmsError, open_enveloped_data
from enclave_bridge.attestation.nsm import Nsm

logger = logging.getLogger(__name__)

SEALED_BLOB_VERSION = 1
KEY_ENCRYPTION_ALGORITHM = "RSAES_OAEP_SHA_256"


class SealingError(Exception):
    """Sealing or unsealing failed; the message never carries key material or plaintext."""


def _aad(context: Mapping[str, str]) -> bytes:
    """Canonical CBOR of the encryption context: the same dict always gives the same AAD."""
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
        raise SealingError("encryption context must map str to str")
    return cbor2.dumps(dict(context), canonical=True)


class KmsSealer:
    """Seal/unseal bytes under a KMS key, releasing data keys only to this attested enclave."""

    def __init__(self, kms_client: Any, key_id: str, nsm: Nsm) -> None:
        self._kms = kms_client
        self._key_id = key_id
        self._nsm = nsm

    def _recipient(self) -> tuple[dict[str, Any], rsa.RSAPrivateKey]:
        """A fresh attestation binding a one-use RSA key that KMS encrypts its answer to."""
        ephemeral = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        spki = ephemeral.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        document = self._nsm.attest(public_key=spki, user_data=None, nonce=None)
        recipient = {
            "AttestationDocument": document,
            "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM,
        }
        return recipient, ephemeral

    @staticmethod
    def _recipient_plaintext(response: Mapping[str, Any], ephemeral: rsa.RSAPrivateKey) -> bytes:
        if response.get("Plaintext"):
            # KMS only returns Plaintext when the Recipient was ignored: never accept that path.
            raise SealingError("KMS returned Plaintext instead of CiphertextForRecipient; refused")
        envelope = response.get("CiphertextForRecipient")
        if not envelope:
            raise SealingError("KMS answer has no CiphertextForRecipient")
        try:
            data_key = open_enveloped_data(envelope, ephemeral)
        except CmsError as exc:
            raise SealingError(f"CiphertextForRecipient: {exc}") from None
        if len(data_key) != 32:
            raise SealingError("KMS data key is not 256 bits")
        return data_key

    def seal(self, plaintext: bytes, *, context: dict[str, str]) -> bytes:
        """Encrypt `plaintext` under a new KMS data key; return a self-describing CBOR blob."""
        aad = _aad(context)
        recipient, ephemeral = self._recipient()
        response = self._kms.generate_data_key(
            KeyId=self._key_id,
            KeySpec="AES_256",
            EncryptionContext=dict(context),
            Recipient=recipient,
        )
        data_key = self._recipient_plaintext(response, ephemeral)
        iv = os.urandom(12)
        ct = AESGCM(data_key).encrypt(iv, plaintext, aad)
        del data_key
        logger.info("sealed %d bytes under KMS key %s", len(plaintext), response.get("KeyId"))
        return cbor2.dumps(
            {
                "v": SEALED_BLOB_VERSION,
                "kms_key_id": response.get("KeyId") or self._key_id,
                "ciphertext_blob": response["CiphertextBlob"],
                "iv": iv,
                "ct": ct,
            }
        )

    def unseal(self, blob: bytes, *, context: dict[str, str]) -> bytes:
        """Recover what `seal` protected; needs the same context and an attested enclave."""
        aad = _aad(context)
        try:
            sealed = cbor2.loads(blob)
        except (cbor2.CBORError, ValueError, TypeError, EOFError):
            raise SealingError("sealed blob is not CBOR") from None
        if not isinstance(sealed, Mapping) or sealed.get("v") != SEALED_BLOB_VERSION:
            raise SealingError(f"sealed blob is not version {SEALED_BLOB_VERSION}")
        fields = {"ciphertext_blob": bytes, "iv": bytes, "ct": bytes, "kms_key_id": str}
        for name, kind in fields.items():
            if not isinstance(sealed.get(name), kind):
                raise SealingError(f"sealed blob field {name!r} is missing or not {kind.__name__}")
        recipient, ephemeral = self._recipient()
        # KeyId pins the key we were configured with: a blob cannot redirect us to another key.
        response = self._kms.decrypt(
            CiphertextBlob=sealed["ciphertext_blob"],
            KeyId=self._key_id,
            EncryptionContext=dict(context),
            Recipient=recipient,
        )
        data_key = self._recipient_plaintext(response, ephemeral)
        try:
            plaintext = AESGCM(data_key).decrypt(sealed["iv"], sealed["ct"], aad)
        except InvalidTag:
            raise SealingError(
                "sealed blob does not authenticate (wrong context or tampered)"
            ) from None
        finally:
            del data_key
        return plaintext
