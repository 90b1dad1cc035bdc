"""CMS EnvelopedData as KMS returns it in `CiphertextForRecipient` (RFC 5652).

Shape (as documented by AWS for Nitro Enclaves): version 2, one KeyTransRecipientInfo identified
by subjectKeyIdentifier, RSAES-OAEP with SHA-256 (and MGF1-SHA-256) key transport, AES-256-CBC
content encryption. `build_enveloped_data` is used by the simulated KMS; `open_enveloped_data`
is used inside the enclave to recover what KMS released to it.
"""

from __future__ import annotations

import os

from asn1crypto import algos, cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_OAEP_SHA256 = OAEP(mgf=MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class CmsError(ValueError):
    """A CiphertextForRecipient is not the expected EnvelopedData or does not decrypt."""


def _oaep_sha256_algorithm() -> cms.KeyEncryptionAlgorithm:
    return cms.KeyEncryptionAlgorithm(
        {
            "algorithm": "rsaes_oaep",
            "parameters": algos.RSAESOAEPParams(
                {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "mask_gen_algorithm": {
                        "algorithm": "mgf1",
                        "parameters": {"algorithm": "sha256"},
                    },
                }
            ),
        }
    )


def build_enveloped_data(plaintext: bytes, recipient: rsa.RSAPublicKey) -> bytes:
    """Encrypt `plaintext` to `recipient` as DER CMS ContentInfo(EnvelopedData)."""
    cek = os.urandom(32)
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    encrypted_content = encryptor.update(padded) + encryptor.finalize()
    ski = x509.SubjectKeyIdentifier.from_public_key(recipient).digest
    recipient_info = cms.RecipientInfo(
        name="ktri",
        value=cms.KeyTransRecipientInfo(
            {
                "version": "v2",
                "rid": cms.RecipientIdentifier(name="subject_key_identifier", value=ski),
                "key_encryption_algorithm": _oaep_sha256_algorithm(),
                "encrypted_key": recipient.encrypt(cek, _OAEP_SHA256),
            }
        ),
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v2",
            "recipient_infos": [recipient_info],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": "aes256_cbc", "parameters": iv},
                "encrypted_content": encrypted_content,
            },
        }
    )
    return cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


def open_enveloped_data(data: bytes, private_key: rsa.RSAPrivateKey) -> bytes:
    """Decrypt a CiphertextForRecipient with the enclave's ephemeral RSA key."""
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].native != "enveloped_data":
            raise CmsError("CMS content type is not EnvelopedData")
        enveloped = info["content"]
        recipients = enveloped["recipient_infos"]
        if len(recipients) != 1 or recipients[0].name != "ktri":
            raise CmsError("CMS EnvelopedData must have exactly one KeyTransRecipientInfo")
        ktri = recipients[0].chosen
        # The recipient identifier is not compared: how KMS derives its subjectKeyIdentifier is
        # not documented, and OAEP decryption with our key fails anyway if we are not the target.
        algorithm = ktri["key_encryption_algorithm"]
        if algorithm["algorithm"].native != "rsaes_oaep":
            raise CmsError("CMS key transport is not RSAES-OAEP")
        params = algorithm["parameters"]
        if (
            params["hash_algorithm"]["algorithm"].native != "sha256"
            or params["mask_gen_algorithm"]["parameters"]["algorithm"].native != "sha256"
        ):
            raise CmsError("CMS RSAES-OAEP parameters are not SHA-256/MGF1-SHA-256")
        content_info = enveloped["encrypted_content_info"]
        content_alg = content_info["content_encryption_algorithm"]
        if content_alg["algorithm"].native != "aes256_cbc":
            raise CmsError("CMS content encryption is not AES-256-CBC")
        iv = content_alg["parameters"].native
        encrypted = content_info["encrypted_content"].native
        encrypted_key = ktri["encrypted_key"].native
    except CmsError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise CmsError(f"malformed CMS EnvelopedData ({type(exc).__name__})") from None
    if not isinstance(iv, bytes) or len(iv) != 16 or not encrypted or len(encrypted) % 16:
        raise CmsError("CMS AES-256-CBC parameters or content length are invalid")
    try:
        cek = private_key.decrypt(encrypted_key, _OAEP_SHA256)
    except ValueError:
        raise CmsError("CMS key transport does not decrypt with this key") from None
    if len(cek) != 32:
        raise CmsError("CMS content-encryption key is not 256 bits")
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
    padded = decryptor.update(encrypted) + decryptor.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise CmsError("CMS content padding is invalid") from None
