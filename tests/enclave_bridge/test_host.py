"""Host side of the enclave against the real local stack: a real enclave process, the simulated
KMS process, the development PKI; keys registered only from verified attestations."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import subprocess
import sys

import pytest
from jwcrypto import jwe, jwk

from enclave_bridge.attestation.verify import AttestationError
from enclave_bridge.client import AnswerVerificationError, EnclaveClient
from enclave_bridge.devstack import LocalEnclaveStack
from enclave_bridge.gateway import enclave_boot, enclave_rotate, register_attestation
from enclave_bridge.models import EnclaveKey, SealedKeySet
from tests.enclave.payloads import agent as make_agent
from tests.enclave.payloads import portfolio

CANARY = 987654.321


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with LocalEnclaveStack(tmp_path_factory.mktemp("host-enclave")) as s:
        yield s


@pytest.fixture
def enclave_settings(settings, stack):
    settings.ENCLAVE_ADDRESS = stack.address
    settings.ENCLAVE_TRUST_ROOT = str(stack.trust_root_path)
    settings.ENCLAVE_EXPECTED_PCRS = "measure"
    settings.ENCLAVE_ALLOW_DEBUG = False
    return settings


@pytest.fixture
def booted(db, stack, enclave_settings):
    """Restart the enclave process and boot it through the services (fresh DB each test)."""
    stack.restart_enclave()
    client = EnclaveClient(stack.address, retries=2, backoff=0.05)
    enclave_boot(client=client, kms_key_id=stack.kms_key_id)
    yield client
    client.close()


def encrypt(payload: dict, key: dict) -> str:
    import json

    token = jwe.JWE(
        json.dumps(payload).encode(),
        protected={"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": key["kid"]},
    )
    token.add_recipient(jwk.JWK(**key))
    return token.serialize(compact=True)


def test_boot_registers_only_attested_keys(booted, stack):
    keys = {k.use: k for k in EnclaveKey.objects.filter(status="current")}
    assert set(keys) == {"enc", "sig"}
    enc = keys["enc"]
    assert enc.public_jwk["kty"] == "RSA" and enc.public_jwk["alg"] == "RSA-OAEP-256"
    assert (
        int.bit_length(
            int.from_bytes(
                jwk.JWK(**enc.public_jwk)
                .get_op_key("encrypt")
                .public_numbers()
                .n.to_bytes(384, "big"),
                "big",
            )
        )
        >= 3072
    )
    assert enc.pcrs["0"] and not enc.debug_mode
    assert enc.expires_at > enc.attested_at
    assert SealedKeySet.objects.filter(is_current=True, kms_key_id=stack.kms_key_id).count() == 1


def test_restart_unseals_same_keys_and_old_envelopes_decrypt(booted, stack):
    who = make_agent(1)
    key = EnclaveKey.objects.get(use="enc", status="current")
    envelope = encrypt(portfolio(who), key.public_jwk)
    before = booted.validate(envelope, kind="portfolio", agent=who, week="202303001")["digest"]
    stack.restart_enclave()
    client = EnclaveClient(stack.address, retries=2, backoff=0.05)
    enclave_boot(client=client, kms_key_id=stack.kms_key_id)
    assert EnclaveKey.objects.get(use="enc", status="current").kid == key.kid
    assert SealedKeySet.objects.count() == 1  # unsealed, not re-created
    verdict = client.validate(envelope, kind="portfolio", agent=who, week="202303001")
    assert verdict["status"] == "accepted", verdict
    assert verdict["digest"] == before  # the digest key came back sealed with the others


def test_rotation_keeps_old_kid_for_old_envelopes(booted, stack):
    who = make_agent(2)
    old = EnclaveKey.objects.get(use="enc", status="current")
    envelope = encrypt(portfolio(who), old.public_jwk)
    enclave_rotate(client=booted, kms_key_id=stack.kms_key_id)
    new = EnclaveKey.objects.get(use="enc", status="current")
    assert new.kid != old.kid
    assert EnclaveKey.objects.get(kid=old.kid).status == "retired"
    assert (
        booted.validate(envelope, kind="portfolio", agent=who, week="202303001")["status"]
        == "accepted"
    )


def test_forged_attestation_is_refused_and_nothing_stored(booted):
    attestation = booted.attest()
    before = EnclaveKey.objects.count()
    doc = bytearray(attestation.document)
    doc[len(doc) // 2] ^= 0x01
    with pytest.raises((AttestationError, AnswerVerificationError)):
        register_attestation(attestation=dataclasses.replace(attestation, document=bytes(doc)))
    # An attestation whose JWKS is swapped for another key is refused too (binding check).
    other = jwk.JWK.generate(kty="RSA", size=3072, kid="forged", use="enc", alg="RSA-OAEP-256")
    jwks = {
        "keys": [
            dict(other.export_public(as_dict=True), kid="forged", use="enc"),
            attestation.signing_jwk,
        ]
    }
    with pytest.raises((AttestationError, AnswerVerificationError)):
        register_attestation(attestation=dataclasses.replace(attestation, jwks=jwks, kid="forged"))
    assert EnclaveKey.objects.count() == before
    assert not EnclaveKey.objects.filter(kid="forged").exists()


def test_wrong_trust_root_or_pcrs_refused(booted, enclave_settings, tmp_path):
    from enclave_bridge.attestation.devpki import create_dev_pki

    attestation = booted.attest()
    enclave_settings.ENCLAVE_TRUST_ROOT = str(
        create_dev_pki(tmp_path / "other").root_pem and tmp_path / "other" / "root.pem"
    )
    with pytest.raises(AttestationError):
        register_attestation(attestation=attestation)
    enclave_settings.ENCLAVE_TRUST_ROOT = str(tmp_path / "missing.pem")
    enclave_settings.ENCLAVE_EXPECTED_PCRS = "0=" + "ab" * 48
    with pytest.raises(Exception, match="ENCLAVE_TRUST_ROOT"):
        register_attestation(attestation=attestation)


def test_a_refused_attestation_at_first_boot_keeps_the_sealed_keys(db, stack, enclave_settings):
    """The enclave generated keys; the host refuses its attestation (wrong PCR setting). The
    sealed set must survive, or the keys the enclave holds would be lost for good."""
    stack.restart_enclave()
    enclave_settings.ENCLAVE_EXPECTED_PCRS = "0=" + "ab" * 48
    with EnclaveClient(stack.address, retries=2, backoff=0.05) as client:
        with pytest.raises(AttestationError):
            enclave_boot(client=client, kms_key_id=stack.kms_key_id)
        assert not EnclaveKey.objects.exists()  # nothing trusted
        sealed = SealedKeySet.objects.get()
        assert sealed.reason == "init" and not sealed.is_current and not sealed.attested
    enclave_settings.ENCLAVE_EXPECTED_PCRS = "measure"
    stack.restart_enclave()
    with EnclaveClient(stack.address, retries=2, backoff=0.05) as client:
        enclave_boot(client=client, kms_key_id=stack.kms_key_id)  # unseals the pending set
    sealed = SealedKeySet.objects.get()  # the same set, now attested and current
    assert sealed.is_current and sealed.attested
    assert EnclaveKey.objects.filter(status="current").count() == 2


def test_a_pending_set_that_does_not_unseal_gives_way_to_a_first_boot(db, stack, enclave_settings):
    """Whatever answered `init` unattested left a set that opens nowhere: it never became
    current, and the next boot makes (and, once attested, promotes) a real one."""
    SealedKeySet.objects.create(
        blob=b"not a sealed key set",
        kms_key_id=stack.kms_key_id,
        reason="init",
        is_current=False,
        attested=False,
    )
    stack.restart_enclave()
    with EnclaveClient(stack.address, retries=2, backoff=0.05) as client:
        enclave_boot(client=client, kms_key_id=stack.kms_key_id)
    current = SealedKeySet.objects.get(is_current=True)
    assert current.attested and current.blob != b"not a sealed key set"
    assert SealedKeySet.objects.filter(is_current=False, attested=False).count() == 1


def test_only_an_attested_sealed_set_can_be_current(db):
    from django.db import IntegrityError, transaction

    with transaction.atomic(), pytest.raises(IntegrityError):
        SealedKeySet.objects.create(
            blob=b"x", kms_key_id="k", reason="init", is_current=True, attested=False
        )


def test_answers_signed_by_an_unregistered_key_are_refused(booted, stack):
    impostor = jwk.JWK.generate(kty="EC", crv="P-256", kid="impostor")
    client = EnclaveClient(
        stack.address,
        retries=0,
        signing_jwk=dict(impostor.export_public(as_dict=True), kid="impostor"),
    )
    with pytest.raises(AnswerVerificationError):
        client.validate(
            encrypt(
                portfolio(make_agent(3)),
                EnclaveKey.objects.get(use="enc", status="current").public_jwk,
            ),
            kind="portfolio",
            agent=make_agent(3),
            week="202303001",
        )
    client.close()


def test_no_plaintext_in_host_logs_or_errors(booted, caplog):
    who = make_agent(4)
    bad = portfolio(who)
    bad["contracts"][0]["volume_mwm"] = -CANARY  # breaks "≥ 0": the answer must not echo it
    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    with caplog.at_level(logging.DEBUG):
        verdict = booted.validate(encrypt(bad, key), kind="portfolio", agent=who, week="202303001")
    assert verdict["status"] == "rejected"
    assert any(e["field"].endswith("volume_mwm") for e in verdict["errors"])
    blob = repr(verdict) + caplog.text
    assert str(CANARY) not in blob and "987654" not in blob


def test_production_settings_refuse_development_root(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgres://u@127.0.0.1/db",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "ENCLAVE_EXPECTED_PCRS": "0=" + "ab" * 48,
    }
    code = "import django; django.setup()"
    ok = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    dev = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "ENCLAVE_ROOT_SHA256": "00" * 32},
        capture_output=True,
        text=True,
    )
    assert dev.returncode != 0 and "AWS Nitro root" in dev.stderr
    debug = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "ENCLAVE_ALLOW_DEBUG": "1"},
        capture_output=True,
        text=True,
    )
    assert debug.returncode != 0 and "Debug-mode" in debug.stderr


def test_admin_shows_key_registry_read_only(booted, client):
    from tests.factories import UserFactory

    admin = UserFactory(username="root.enclave", is_staff=True, is_superuser=True)
    client.force_login(admin)
    key = EnclaveKey.objects.get(use="enc", status="current")
    page = client.get("/admin/enclave_bridge/enclavekey/")
    assert page.status_code == 200 and key.kid in page.content.decode()
    assert client.get("/admin/enclave_bridge/enclavekey/add/").status_code == 403


def _nonce() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def test_api_keys_and_fresh_attestation_for_agents(booted, client_for, enclave_settings):
    import base64

    from enclave_bridge.attestation.verify import verify_attestation
    from tests.factories import UserFactory

    api = client_for(UserFactory())
    keys = api.get("/api/v1/enclave/keys/").json()
    assert {k["use"] for k in keys if k["status"] == "current"} == {"enc", "sig"}

    nonce = _nonce()
    answer = api.post("/api/v1/enclave/attestation/", {"nonce": nonce}, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    document = base64.urlsafe_b64decode(body["document"] + "=" * (-len(body["document"]) % 4))
    raw_nonce = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    # The agent checks it with the same verifier, its own nonce and the published trust root.
    import datetime as dt
    from pathlib import Path

    doc = verify_attestation(
        document,
        trusted_root=Path(enclave_settings.ENCLAVE_TRUST_ROOT).read_bytes(),
        now=dt.datetime.now(dt.UTC),
        max_age=dt.timedelta(minutes=5),
        expected_nonce=raw_nonce,
        expected_pcrs=None,
    )
    assert doc.nonce == raw_nonce and body["kid"] in {k["kid"] for k in keys}

    # Attesting is pure (nothing changes in the enclave): the same nonce again gets a fresh
    # document bound to it; freshness is the agent's nonce, which only it should reuse.
    again = api.post("/api/v1/enclave/attestation/", {"nonce": nonce}, format="json")
    assert again.status_code == 200 and again.json()["nonce"] == body["nonce"]
    short = api.post("/api/v1/enclave/attestation/", {"nonce": "abc"}, format="json")
    assert short.status_code == 400 and "16" in short.json()["error"]["fields"]["nonce"][0]


def test_api_enclave_endpoints_need_authentication(db, api_client):
    assert api_client.get("/api/v1/enclave/keys/").status_code == 401
    assert api_client.post("/api/v1/enclave/attestation/", {"nonce": _nonce()}).status_code == 401


def test_api_attestation_answers_503_when_the_enclave_is_down(db, client_for, settings, tmp_path):
    from tests.factories import UserFactory

    settings.ENCLAVE_ADDRESS = f"unix:{tmp_path / 'nobody.sock'}"
    settings.ENCLAVE_RETRIES = 0
    answer = client_for(UserFactory()).post(
        "/api/v1/enclave/attestation/", {"nonce": _nonce()}, format="json"
    )
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "enclave_unavailable"


def test_run_enclave_command_boots_registers_and_unseals_on_the_next_run(db, settings, tmp_path):
    """`manage.py run_enclave` (also `make demo`'s path): first run inits and stores the sealed
    set, rotates on request; the next run hands the stored set back instead of new keys."""
    from django.core.management import CommandError, call_command

    workdir = tmp_path / "enc"
    settings.ENCLAVE_ADDRESS = f"unix:{workdir / 'enclave.sock'}"
    settings.ENCLAVE_TRUST_ROOT = str(workdir / "pki" / "root.pem")
    settings.ENCLAVE_EXPECTED_PCRS = "measure"
    settings.ENCLAVE_ALLOW_DEBUG = False
    out = io.StringIO()
    call_command("run_enclave", "--workdir", str(workdir), "--once", "--rotate", stdout=out)
    assert "Enclave ready" in out.getvalue()
    assert list(SealedKeySet.objects.values_list("reason", "is_current")) == [
        ("rotate", True),
        ("init", False),
    ]
    enc = EnclaveKey.objects.filter(use="enc")
    assert enc.count() == 2 and enc.filter(status="current").count() == 1
    current = enc.get(status="current").kid

    call_command("run_enclave", "--workdir", str(workdir), "--once", stdout=io.StringIO())
    assert SealedKeySet.objects.count() == 2  # unsealed: no new key set
    assert EnclaveKey.objects.get(use="enc", status="current").kid == current

    settings.ENCLAVE_ADDRESS = "unix:/elsewhere.sock"
    with pytest.raises(CommandError, match="ENCLAVE_ADDRESS"):
        call_command("run_enclave", "--workdir", str(workdir), "--once")


def test_boot_hands_the_parents_aws_credentials_to_the_enclave(
    db, stack, enclave_settings, monkeypatch
):
    """On Nitro the enclave has no instance metadata: with ENCLAVE_PASS_AWS_CREDENTIALS the host
    passes its own (here the simulator's instance-role key). Unknown ones make KMS refuse,
    which proves the enclave used what it was given rather than its own environment."""
    from enclave_bridge.client import EnclaveError
    from enclave_bridge.kms_sim.server import INSTANCE_ACCESS_KEY

    enclave_settings.ENCLAVE_PASS_AWS_CREDENTIALS = True
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-NOT-A-PRINCIPAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "whatever")
    stack.restart_enclave()
    with EnclaveClient(stack.address, retries=2, backoff=0.05) as client:
        with pytest.raises(EnclaveError) as info:
            enclave_boot(client=client, kms_key_id=stack.kms_key_id)
        assert info.value.code == "sealing_failed"
        assert "whatever" not in str(info.value)
        assert not SealedKeySet.objects.exists()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", INSTANCE_ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        enclave_boot(client=client, kms_key_id=stack.kms_key_id)
    assert SealedKeySet.objects.get().is_current
