"""Fixtures for the attestation tests: the real AWS document, a dev PKI, a simulated KMS."""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclave_bridge.attestation import DevPki, SimulatedNsm, create_dev_pki
from enclave_bridge.attestation.cose import encode_sign1
from enclave_bridge.kms_sim import kms_client, start_kms_sim

AWS_DOC_HEX = Path("/work/shared/testdata/nitro/aws-attestation-debug-2024-11-14.hex")
AWS_DOC_TIMESTAMP = dt.datetime(2024, 11, 14, 23, 46, 29, 450000, tzinfo=dt.UTC)
PCR0 = hashlib.sha384(b"enclave image under test").digest()
PCR1 = hashlib.sha384(b"kernel under test").digest()
PCR2 = hashlib.sha384(b"application under test").digest()


@pytest.fixture(scope="session")
def aws_document() -> bytes:
    if not AWS_DOC_HEX.exists():
        pytest.skip("the real AWS attestation test vector is not on this machine")
    return binascii.unhexlify(AWS_DOC_HEX.read_text().strip())


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return create_dev_pki(tmp_path_factory.mktemp("devpki"))


@pytest.fixture(scope="session")
def nsm(dev_pki: DevPki) -> SimulatedNsm:
    return SimulatedNsm(dev_pki, {0: PCR0, 1: PCR1, 2: PCR2})


@pytest.fixture(scope="module")
def kms_sim(dev_pki: DevPki, tmp_path_factory: pytest.TempPathFactory):
    """A simulated KMS in a thread, trusting the dev root; yields (url, boto3 client)."""
    state = tmp_path_factory.mktemp("kms") / "state.pkl"
    url, stop = start_kms_sim(port=0, trust_root=dev_pki.root, state=state)
    try:
        yield url, kms_client(url)
    finally:
        stop()


def _ca(name, key, issuer_name, issuer_key, pathlen, *, key_usage=True, ca=True):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
    )
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    return builder.sign(issuer_key, hashes.SHA384())


def build_custom_document(
    *,
    pathlens: tuple[int | None, int | None, int | None, int | None] = (None, 2, 1, 0),
    without_key_usage: int | None = None,
    pcrs: dict[int, bytes] | None = None,
) -> tuple[x509.Certificate, bytes]:
    """A document signed through a hand-built 4-CA chain, to exercise the chain rules."""
    names = ["root", "regional", "zonal", "instance"]
    keys = [ec.generate_private_key(ec.SECP384R1()) for _ in range(5)]
    certs = []
    for i, name in enumerate(names):
        issuer = names[i - 1] if i else name
        certs.append(
            _ca(
                name,
                keys[i],
                issuer,
                keys[i - 1] if i else keys[i],
                pathlens[i],
                key_usage=without_key_usage != i,
            )
        )
    leaf = _ca("leaf", keys[4], "instance", keys[3], None, ca=False)
    der = serialization.Encoding.DER
    values = {i: bytes(48) for i in range(16)}
    values.update(pcrs or {0: PCR0, 1: PCR1, 2: PCR2})
    payload = {
        "module_id": "i-test-enc0",
        "digest": "SHA384",
        "timestamp": int(dt.datetime.now(dt.UTC).timestamp() * 1000),
        "pcrs": values,
        "certificate": leaf.public_bytes(der),
        "cabundle": [c.public_bytes(der) for c in certs],
        "public_key": None,
        "user_data": None,
        "nonce": None,
    }
    return certs[0], encode_sign1(cbor2.dumps(payload), keys[4])
