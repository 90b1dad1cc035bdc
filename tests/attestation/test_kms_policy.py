"""The simulated KMS enforces the key policy for every operation, per principal.

Two principals: the parent instance role (access key "testing": host and enclave) and the key
administrator (access key "kms-admin"). The host is not trusted with plaintext: it must never be
able to obtain a data key nor choose one the enclave will use.
"""

from __future__ import annotations

import hashlib
import json
import os

import boto3
import cbor2
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave_bridge.attestation import SimulatedNsm
from enclave_bridge.enclave.kms import KmsSealer, SealingError
from enclave_bridge.kms_sim import (
    INSTANCE_ROLE_ARN,
    KEY_ADMIN_ROLE_ARN,
    attestation_key_policy,
    create_attested_key,
    is_allowed,
    kms_admin_client,
)

from .conftest import PCR0, PCR1

CONTEXT = {"purpose": "enclave-keys"}


def _code(info: pytest.ExceptionInfo) -> str:
    return info.value.response["Error"]["Code"]


def _recipient(nsm) -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "AttestationDocument": nsm.attest(public_key=spki, user_data=None, nonce=None),
        "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
    }


@pytest.fixture(scope="module")
def admin(kms_sim):
    url, _ = kms_sim
    return kms_admin_client(url)


@pytest.fixture(scope="module")
def host(kms_sim):
    """The instance-role client: what the (untrusted) host holds, same as the enclave's."""
    return kms_sim[1]


@pytest.fixture(scope="module")
def key_id(admin) -> str:
    return create_attested_key(admin, {0: PCR0.hex(), 1: PCR1.hex()})


@pytest.fixture(scope="module")
def sealed(host, key_id, nsm) -> bytes:
    return KmsSealer(host, key_id, nsm).seal(b"enclave private keys", context=CONTEXT)


def _denied(call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    assert _code(info) == "AccessDeniedException", info.value
    return info.value.response["Error"]["Message"]


def test_enclave_round_trip_still_works(host, key_id, sealed, nsm) -> None:
    assert KmsSealer(host, key_id, nsm).unseal(sealed, context=CONTEXT) == b"enclave private keys"


def test_host_cannot_encrypt(host, key_id) -> None:
    message = _denied(
        host.encrypt, KeyId=key_id, Plaintext=os.urandom(32), EncryptionContext=CONTEXT
    )
    assert INSTANCE_ROLE_ARN in message and "kms:Encrypt" in message
    assert "explicit deny" in message


def test_host_cannot_generate_data_key_without_plaintext(host, key_id) -> None:
    _denied(host.generate_data_key_without_plaintext, KeyId=key_id, KeySpec="AES_256")


def test_host_cannot_put_key_policy(host, key_id) -> None:
    allow_all = json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}
    )
    _denied(host.put_key_policy, KeyId=key_id, PolicyName="default", Policy=allow_all)
    assert "AttestedEnclaveOnly" in host_policy_via_admin(key_id)


def host_policy_via_admin(key_id: str) -> str:
    # the admin fixture is module-scoped; read the policy back without a fixture dependency
    from enclave_bridge.kms_sim.server import _backend

    return _backend().keys[key_id].policy


def test_host_cannot_create_grant(host, key_id) -> None:
    _denied(
        host.create_grant,
        KeyId=key_id,
        GranteePrincipal=INSTANCE_ROLE_ARN,
        Operations=["Decrypt", "Encrypt"],
    )


def test_host_cannot_create_keys_nor_list_them(host) -> None:
    _denied(host.create_key)
    _denied(host.list_keys)


def test_host_cannot_decrypt_without_recipient(host, key_id, sealed) -> None:
    blob = cbor2.loads(sealed)["ciphertext_blob"]
    for kwargs in ({}, {"KeyId": key_id}):
        message = _denied(host.decrypt, CiphertextBlob=blob, EncryptionContext=CONTEXT, **kwargs)
        assert "attested Recipient" in message
    _denied(host.generate_data_key, KeyId=key_id, KeySpec="AES_256")


def test_host_cannot_decrypt_with_another_pcr0(host, key_id, sealed, dev_pki) -> None:
    blob = cbor2.loads(sealed)["ciphertext_blob"]
    impostor = SimulatedNsm(dev_pki, {0: hashlib.sha384(b"host-built image").digest(), 1: PCR1})
    _denied(
        host.decrypt, CiphertextBlob=blob, EncryptionContext=CONTEXT, Recipient=_recipient(impostor)
    )
    with pytest.raises(ClientError, match="AccessDeniedException"):
        KmsSealer(host, key_id, impostor).unseal(sealed, context=CONTEXT)


def test_host_cannot_reencrypt(host, admin, key_id, sealed) -> None:
    blob = cbor2.loads(sealed)["ciphertext_blob"]
    other = admin.create_key()["KeyMetadata"]["KeyId"]  # moto's default policy: root, kms:*
    _denied(
        host.re_encrypt,
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=other,
    )


def test_admin_can_manage_but_never_use_the_key(admin, key_id, sealed, nsm) -> None:
    policy = admin.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    admin.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    admin.describe_key(KeyId=key_id)
    admin.tag_resource(KeyId=key_id, Tags=[{"TagKey": "owner", "TagValue": "security"}])
    blob = cbor2.loads(sealed)["ciphertext_blob"]
    for recipient in ({}, {"Recipient": _recipient(nsm)}):  # even with the right enclave's PCRs
        message = _denied(
            admin.decrypt, CiphertextBlob=blob, EncryptionContext=CONTEXT, **recipient
        )
        assert KEY_ADMIN_ROLE_ARN in message
        _denied(admin.generate_data_key, KeyId=key_id, KeySpec="AES_256", **recipient)
    _denied(admin.encrypt, KeyId=key_id, Plaintext=b"x" * 32)
    _denied(admin.generate_data_key_without_plaintext, KeyId=key_id, KeySpec="AES_256")
    _denied(admin.generate_random, NumberOfBytes=32)


def test_planted_key_ring_attack_fails(host, admin, key_id, nsm) -> None:
    """Finding 1: the host wraps a data key it generated so the enclave would unseal (and
    publish) a key ring the host knows. Every route to a host-chosen wrapped data key is shut."""
    known_dk = os.urandom(32)
    _denied(host.encrypt, KeyId=key_id, Plaintext=known_dk, EncryptionContext=CONTEXT)
    # Nor via a key the host may use without attestation: re-wrapping into the sealing key.
    open_key = admin.create_key()["KeyMetadata"]["KeyId"]
    wrapped = host.encrypt(KeyId=open_key, Plaintext=known_dk, EncryptionContext=CONTEXT)
    _denied(
        host.re_encrypt,
        CiphertextBlob=wrapped["CiphertextBlob"],
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=key_id,
        DestinationEncryptionContext=CONTEXT,
    )
    # A blob wrapped under another key is refused by the enclave, which pins its KeyId.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    iv = os.urandom(12)
    planted = cbor2.dumps(
        {
            "v": 1,
            "kms_key_id": key_id,
            "ciphertext_blob": wrapped["CiphertextBlob"],
            "iv": iv,
            "ct": AESGCM(known_dk).encrypt(iv, b"host-known keys", cbor2.dumps(CONTEXT)),
        }
    )
    with pytest.raises((ClientError, SealingError)):
        KmsSealer(host, key_id, nsm).unseal(planted, context=CONTEXT)


def test_create_attested_key_needs_the_key_administrator(host, admin) -> None:
    # The instance role cannot create a key (it would pick a policy that releases to itself).
    _denied(create_attested_key, host, {0: PCR0.hex()})
    key = create_attested_key(admin, {0: PCR0.hex()})
    policy = json.loads(admin.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    sids = {s["Sid"]: s for s in policy["Statement"]}
    assert sids["KeyAdministration"]["Principal"] == {"AWS": KEY_ADMIN_ROLE_ARN}
    assert sids["AttestedEnclaveOnly"]["Principal"] == {"AWS": INSTANCE_ROLE_ARN}
    assert sids["InstanceNeverChoosesOrLearnsDataKeys"]["Effect"] == "Deny"


def test_unknown_access_key_is_refused(kms_sim) -> None:
    stranger = boto3.client(
        "kms",
        endpoint_url=kms_sim[0],
        region_name="us-east-1",
        aws_access_key_id="someone-else",
        aws_secret_access_key="x",
    )
    with pytest.raises(ClientError) as info:
        stranger.list_keys()
    assert _code(info) == "UnrecognizedClientException"


def test_policy_template_and_evaluation() -> None:
    policy = attestation_key_policy({0: PCR0.hex()})
    for action in ("kms:Encrypt", "kms:ReEncryptTo", "kms:ReEncryptFrom", "kms:PutKeyPolicy",
                   "kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext"):  # fmt: skip
        allowed, reason = is_allowed(policy, action, None, INSTANCE_ROLE_ARN)
        assert not allowed and "explicit deny" in reason
    for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:GenerateRandom"):
        assert not is_allowed(policy, action, None, KEY_ADMIN_ROLE_ARN)[0]
    assert is_allowed(policy, "kms:PutKeyPolicy", None, KEY_ADMIN_ROLE_ARN)[0]
    assert not is_allowed(policy, "kms:DescribeKey", None, INSTANCE_ROLE_ARN)[0]
    assert not is_allowed(policy, "kms:DescribeKey", None, None)[0]
    with pytest.raises(ValueError, match="different principal"):
        attestation_key_policy({0: PCR0.hex()}, admin_role_arn=INSTANCE_ROLE_ARN)
    # An explicit Deny wins over an Allow; a Deny with a condition the sim cannot evaluate holds.
    deny_wins = json.dumps(
        {
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "kms:*"},
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "kms:Encrypt",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ]
        }
    )
    assert is_allowed(deny_wins, "kms:Decrypt", None, INSTANCE_ROLE_ARN)[0]
    assert not is_allowed(deny_wins, "kms:Encrypt", None, INSTANCE_ROLE_ARN)[0]
    assert not is_allowed(deny_wins, "kms:Decrypt", None, "arn:aws:iam::999999999999:role/x")[0]
