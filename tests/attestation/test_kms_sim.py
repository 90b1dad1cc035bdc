"""KmsSealer through the SIMULATED KMS over HTTP: Recipient path, PCR policy, CMS, persistence."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave_bridge.attestation import SimulatedNsm
from enclave_bridge.attestation.cms import build_enveloped_data, open_enveloped_data
from enclave_bridge.enclave.kms import KmsSealer, SealingError
from enclave_bridge.kms_sim import create_attested_key, is_allowed, kms_admin_client, kms_client
from enclave_bridge.kms_sim.__main__ import main as kms_sim_cli

from .conftest import PCR0, PCR1

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONTEXT = {"purpose": "enclave-keys"}


def _recipient(nsm, key: rsa.RSAPrivateKey) -> dict:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "AttestationDocument": nsm.attest(public_key=spki, user_data=None, nonce=None),
        "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
    }


@pytest.fixture(scope="module")
def ephemeral() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def attested_key(kms_sim) -> str:
    url, _ = kms_sim
    return create_attested_key(kms_admin_client(url), {0: PCR0.hex(), 1: PCR1.hex()})


def test_seal_unseal_round_trip(kms_sim, attested_key, nsm) -> None:
    _, client = kms_sim
    sealer = KmsSealer(client, attested_key, nsm)
    blob = sealer.seal(b"enclave private keys", context=CONTEXT)
    assert b"enclave private keys" not in blob
    assert sealer.unseal(blob, context=CONTEXT) == b"enclave private keys"
    with pytest.raises(SealingError, match="does not authenticate"):
        _unseal_tampered(sealer, blob)


def _unseal_tampered(sealer: KmsSealer, blob: bytes) -> bytes:
    import cbor2

    sealed = cbor2.loads(blob)
    sealed["ct"] = bytes([sealed["ct"][0] ^ 1]) + sealed["ct"][1:]
    return sealer.unseal(cbor2.dumps(sealed), context=CONTEXT)


def test_unseal_with_another_context_refused_by_kms(kms_sim, attested_key, nsm) -> None:
    _, client = kms_sim
    sealer = KmsSealer(client, attested_key, nsm)
    blob = sealer.seal(b"x", context=CONTEXT)
    with pytest.raises(ClientError, match="InvalidCiphertextException"):
        sealer.unseal(blob, context={"purpose": "other"})


def test_other_pcr0_gets_access_denied(kms_sim, attested_key, nsm, dev_pki) -> None:
    _, client = kms_sim
    blob = KmsSealer(client, attested_key, nsm).seal(b"x", context=CONTEXT)
    impostor = SimulatedNsm(dev_pki, {0: hashlib.sha384(b"modified image").digest(), 1: PCR1})
    sealer = KmsSealer(client, attested_key, impostor)
    for attempt in (
        lambda: sealer.seal(b"x", context=CONTEXT),
        lambda: sealer.unseal(blob, context=CONTEXT),
    ):
        with pytest.raises(ClientError) as info:
            attempt()
        assert info.value.response["Error"]["Code"] == "AccessDeniedException"


def test_other_pcr1_gets_access_denied(kms_sim, attested_key, dev_pki) -> None:
    _, client = kms_sim
    impostor = SimulatedNsm(dev_pki, {0: PCR0, 1: hashlib.sha384(b"other kernel").digest()})
    with pytest.raises(ClientError, match="AccessDeniedException"):
        KmsSealer(client, attested_key, impostor).seal(b"x", context=CONTEXT)


def test_attested_key_without_recipient_gets_access_denied(kms_sim, attested_key) -> None:
    _, client = kms_sim
    with pytest.raises(ClientError, match="AccessDeniedException"):
        client.generate_data_key(KeyId=attested_key, KeySpec="AES_256")


def test_unverifiable_attestation_refused(kms_sim, attested_key, nsm, tmp_path, ephemeral) -> None:
    from enclave_bridge.attestation import create_dev_pki

    _, client = kms_sim
    foreign = SimulatedNsm(create_dev_pki(tmp_path), {0: PCR0, 1: PCR1})
    for document in (
        foreign.attest(public_key=None, user_data=None, nonce=None),
        b"\x84" + b"\x00" * 20,
    ):
        with pytest.raises(ClientError) as info:
            client.generate_data_key(
                KeyId=attested_key,
                KeySpec="AES_256",
                Recipient={
                    "AttestationDocument": document,
                    "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                },
            )
        assert info.value.response["Error"]["Code"] == "ValidationException"
        assert "Invalid attestation document" in info.value.response["Error"]["Message"]


def test_recipient_never_gets_plaintext(kms_sim, nsm, ephemeral) -> None:
    url, client = kms_sim
    # Created by the key administrator with moto's default policy (the account root: kms:*).
    open_key = kms_admin_client(url).create_key()["KeyMetadata"]["KeyId"]
    recipient = _recipient(nsm, ephemeral)
    answers = [
        client.generate_data_key(KeyId=open_key, KeySpec="AES_256", Recipient=recipient),
        client.generate_random(NumberOfBytes=32, Recipient=recipient),
        client.generate_data_key_pair(
            KeyId=open_key, KeyPairSpec="ECC_NIST_P256", Recipient=recipient
        ),
    ]
    blob = answers[0]["CiphertextBlob"]
    answers.append(client.decrypt(CiphertextBlob=blob, Recipient=recipient))
    for answer in answers:
        assert "Plaintext" not in answer and "PrivateKeyPlaintext" not in answer
        assert open_enveloped_data(answer["CiphertextForRecipient"], ephemeral)
    data_key = open_enveloped_data(answers[0]["CiphertextForRecipient"], ephemeral)
    assert open_enveloped_data(answers[3]["CiphertextForRecipient"], ephemeral) == data_key
    assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == data_key  # no conditions: allowed


def test_openssl_decrypts_ciphertext_for_recipient(kms_sim, nsm, ephemeral, tmp_path) -> None:
    _, client = kms_sim
    answer = client.generate_random(NumberOfBytes=48, Recipient=_recipient(nsm, ephemeral))
    cms_file = tmp_path / "recipient.der"
    key_file = tmp_path / "ephemeral.pem"
    cms_file.write_bytes(answer["CiphertextForRecipient"])
    key_file.write_bytes(
        ephemeral.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    result = subprocess.run(
        ["openssl", "cms", "-decrypt", "-inform", "DER", "-in", str(cms_file),
         "-inkey", str(key_file), "-binary"],
        capture_output=True, check=True, timeout=20,
    )  # fmt: skip
    assert result.stdout == open_enveloped_data(answer["CiphertextForRecipient"], ephemeral)
    assert len(result.stdout) == 48
    printed = subprocess.run(
        ["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(cms_file)],
        capture_output=True, text=True, check=True, timeout=20,
    ).stdout  # fmt: skip
    assert "rsaesOaep" in printed and "aes-256-cbc" in printed and "subjectKeyIdentifier" in printed


class _PlaintextKms:
    """A KMS client that ignores Recipient, as moto alone does."""

    def generate_data_key(self, **kwargs):
        return {"KeyId": "k", "CiphertextBlob": b"blob", "Plaintext": os.urandom(32)}

    def decrypt(self, **kwargs):
        return {"KeyId": "k", "Plaintext": os.urandom(32)}


def test_sealer_refuses_a_plaintext_answer(nsm) -> None:
    import cbor2

    sealer = KmsSealer(_PlaintextKms(), "k", nsm)
    with pytest.raises(SealingError, match="Plaintext instead of CiphertextForRecipient"):
        sealer.seal(b"x", context=CONTEXT)
    blob = cbor2.dumps(
        {"v": 1, "kms_key_id": "k", "ciphertext_blob": b"b", "iv": b"i" * 12, "ct": b"c" * 32}
    )
    with pytest.raises(SealingError, match="Plaintext instead"):
        sealer.unseal(blob, context=CONTEXT)


def test_cms_round_trip_and_wrong_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    envelope = build_enveloped_data(b"data key", key.public_key())
    assert open_enveloped_data(envelope, key) == b"data key"
    with pytest.raises(ValueError, match="does not decrypt"):
        open_enveloped_data(envelope, other)


def test_policy_evaluation_fails_closed() -> None:
    import json

    unknown = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "kms:*",
                    "Condition": {"StringLike": {"kms:RecipientAttestation:ImageSha384": "*"}},
                }
            ]
        }
    )
    assert is_allowed(unknown, "kms:Decrypt", None)[0] is False
    assert is_allowed("not json", "kms:Decrypt", None)[0] is False


def _spawn_sim(state: Path, root_pem: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "enclave_bridge.kms_sim", "serve", "--port", "0",
         "--state", str(state), "--trust-root", str(root_pem)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    line = process.stdout.readline()
    assert line.startswith("SIMULATED KMS listening on "), line
    return process, line.rsplit(" ", 1)[1].strip()


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


def test_state_survives_a_restart_of_the_server_process(dev_pki, nsm, tmp_path) -> None:
    state = tmp_path / "kms-state.pkl"
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(dev_pki.root_pem)
    process, url = _spawn_sim(state, root_pem)
    try:
        client = kms_client(url)
        key_id = create_attested_key(kms_admin_client(url), {0: PCR0.hex()})
        blob = KmsSealer(client, key_id, nsm).seal(b"survives restarts", context=CONTEXT)
    finally:
        _stop(process)
    assert state.stat().st_mode & 0o077 == 0
    process, url = _spawn_sim(state, root_pem)
    try:
        client = kms_client(url)
        assert KmsSealer(client, key_id, nsm).unseal(blob, context=CONTEXT) == b"survives restarts"
        impostor = SimulatedNsm(dev_pki, {0: hashlib.sha384(b"modified image").digest()})
        with pytest.raises(ClientError, match="AccessDeniedException"):
            KmsSealer(client, key_id, impostor).unseal(blob, context=CONTEXT)
    finally:
        _stop(process)


def test_create_key_cli_prints_the_key_id(kms_sim, capsys) -> None:
    url, client = kms_sim
    kms_sim_cli(["create-key", "--endpoint", url, "--pcr0", PCR0.hex(), "--pcr", f"1={PCR1.hex()}"])
    key_id = capsys.readouterr().out.strip()
    policy = kms_admin_client(url).get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    assert PCR0.hex() in policy and "kms:RecipientAttestation:PCR1" in policy
