"""The enclave gateway against the REAL local enclave process, reached over loopback TCP as the
host reaches a remote (Nitro, vsock) enclave: first boot, a restart in the middle of a sequence
of calls, an unseal KMS refuses, `manage.py enclave_boot --address`, and the rule that no other
Django module builds an EnclaveClient."""

from __future__ import annotations

import io
import re
import socket
import threading
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from jwcrypto import jwk

from enclave_bridge import gateway
from enclave_bridge.attestation.image import stage
from enclave_bridge.devstack import LocalEnclaveStack
from enclave_bridge.enclave import APP_DIR
from enclave_bridge.gateway import AttestationError, EnclaveUnlockError
from enclave_bridge.models import EnclaveKey, SealedKeySet
from enclave_bridge.wire.protocol import args_sha256, verify_answer
from tests.enclave.payloads import agent as make_agent
from tests.enclave.payloads import batch_agent, encrypt, network_options, parameters, portfolio

WEEK = "202303001"


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The development stack with the enclave listening on TCP, like a remote enclave."""
    with LocalEnclaveStack(
        tmp_path_factory.mktemp("gateway-enclave"),
        listen=f"tcp:127.0.0.1:{_free_tcp_port()}",
        enclave_args=["--workers", "1"],
    ) as s:
        yield s


@pytest.fixture
def enclave_settings(settings, stack):
    settings.ENCLAVE_ADDRESS = stack.address
    settings.ENCLAVE_KMS_KEY_ID = stack.kms_key_id
    settings.ENCLAVE_TRUST_ROOT = str(stack.trust_root_path)
    settings.ENCLAVE_EXPECTED_PCRS = "measure"
    settings.ENCLAVE_ALLOW_DEBUG = False
    settings.ENCLAVE_PASS_AWS_CREDENTIALS = False
    settings.ENCLAVE_RETRIES = 3
    return settings


@pytest.fixture
def fresh(db, stack, enclave_settings):
    """A just-started (locked) enclave and an empty registry: the first boot of a deployment."""
    stack.restart_enclave()
    return stack


@pytest.fixture
def booted(fresh):
    gateway.ensure_unlocked()
    return fresh


def _unseals_logged(stack: LocalEnclaveStack) -> int:
    return (
        (stack.workdir / "enclave.log").read_text("utf-8", errors="replace").count("keys unsealed")
    )


def _current_kids() -> dict[str, str]:
    return dict(EnclaveKey.objects.filter(status="current").values_list("use", "kid"))


def _envelope(n: int) -> tuple[dict[str, str], str]:
    who = make_agent(n)
    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    return who, encrypt(portfolio(who), key)


def test_first_boot_initialises_stores_the_sealed_set_and_registers_the_keys(fresh):
    report = gateway.ensure_unlocked()
    assert (report.state_before, report.action) == ("locked", "initialised")
    assert report.address.startswith("tcp:127.0.0.1:")
    sealed = SealedKeySet.objects.get()
    assert sealed.is_current and sealed.attested and sealed.reason == "init"
    assert sealed.kms_key_id == fresh.kms_key_id
    kids = _current_kids()
    assert set(kids) == {"enc", "sig"}
    assert (report.kid, report.signing_kid) == (kids["enc"], kids["sig"])
    assert report.pcr0 and len(report.pcr0) == 96

    again = gateway.ensure_unlocked()
    assert (again.state_before, again.action) == ("unlocked", "none")
    assert SealedKeySet.objects.count() == 1 and _current_kids() == kids


def test_the_first_call_of_a_deployment_boots_the_enclave_itself(fresh):
    """No one ran enclave_boot: the first gateway call finds no trusted key and unlocks."""
    nonce = bytes(range(32))
    attestation = gateway.attest(nonce)
    assert attestation.nonce == nonce
    assert attestation.kid == _current_kids()["enc"]
    assert SealedKeySet.objects.get().is_current


def test_a_restart_in_the_middle_of_validate_calls_is_unsealed_by_the_next_call(booted):
    kids = _current_kids()
    who, envelope = _envelope(1)
    unseals = _unseals_logged(booted)
    verdicts = []
    for step in range(4):
        if step == 2:
            booted.restart_enclave()  # the enclave process dies and comes back locked
        verdicts.append(
            gateway.validate_envelope(envelope=envelope, kind="portfolio", agent=who, week=WEEK)
        )
    assert [v.verdict["status"] for v in verdicts] == ["accepted"] * 4
    # Unsealed (once), not re-initialised: the same keys, the same keyed digest.
    assert _unseals_logged(booted) == unseals + 1
    assert _current_kids() == kids
    assert SealedKeySet.objects.count() == 1
    assert len({v.verdict["digest"] for v in verdicts}) == 1
    assert {v.signing_kid for v in verdicts} == {kids["sig"]}


def test_concurrent_calls_meeting_a_restarted_enclave_unseal_it_once(transactional_db, booted):
    """Threads share the process's gateway; the rows they read are committed (SQLite included)."""
    who, envelope = _envelope(2)
    gateway.validate_envelope(envelope=envelope, kind="portfolio", agent=who, week=WEEK)
    booted.restart_enclave()
    unseals = _unseals_logged(booted)
    results, failures = [], []

    def call() -> None:
        try:
            results.append(
                gateway.validate_envelope(
                    envelope=envelope, kind="portfolio", agent=who, week=WEEK
                ).verdict["status"]
            )
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()  # this thread's own database connection

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert results == ["accepted"] * 6
    assert _unseals_logged(booted) == unseals + 1


def test_the_verdict_comes_with_its_jws_and_the_args_it_is_bound_to(booted):
    who, envelope = _envelope(3)
    signed = gateway.validate_envelope(envelope=envelope, kind="portfolio", agent=who, week=WEEK)
    assert signed.args["envelope"] == envelope
    assert signed.args["expected"] == {"agent": who, "week": WEEK}
    assert args_sha256(signed.args) == signed.args_sha256
    key = jwk.JWK(**EnclaveKey.objects.get(use="sig", status="current").public_jwk)
    body = verify_answer(
        signed.token,
        key,
        req_id=signed.request_id,
        nonce=signed.nonce,
        op="validate",
        args_digest=signed.args_sha256,
        max_skew_seconds=300,
    )
    assert body["result"] == signed.verdict


def test_compute_week_after_a_restart(booted):
    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    items = [
        {
            "agent": batch_agent(make_agent(n)),
            "portfolio": encrypt(portfolio(make_agent(n)), key),
            "counterparties": None,
        }
        for n in range(10, 14)
    ]
    booted.restart_enclave()
    week = gateway.compute_week(
        parameters=parameters(), items=items, network=network_options(scenarios=50, seed=1)
    )
    assert week.results["counts"] == {"agents": 4, "accepted": 4, "rejected": 0}
    assert week.token.count(".") == 2 and week.signing_kid == _current_kids()["sig"]


def _another_image(tmp_path: Path) -> Path:
    """The enclave's files with one comment changed: another PCR0, which KMS does not trust."""
    root = tmp_path / "other-image"
    stage(APP_DIR, root)
    server = root / "enclave_bridge" / "enclave" / "server.py"
    server.write_text(server.read_text() + "\n# another build\n")
    return root


def test_an_unseal_refused_by_kms_is_a_clear_error_and_loses_no_key(booted, tmp_path):
    kids = _current_kids()
    sealed = SealedKeySet.objects.get()
    who, envelope = _envelope(4)
    booted.restart_enclave(extra_args=["--app-dir", str(_another_image(tmp_path))])
    with pytest.raises(EnclaveUnlockError, match="sealing_failed") as refused:
        gateway.validate_envelope(envelope=envelope, kind="portfolio", agent=who, week=WEEK)
    assert "KMS key policy" in str(refused.value)
    assert "sealed set is kept" in str(refused.value)
    # Nothing trusted, nothing lost: the same sealed set, still current; the same keys.
    assert list(SealedKeySet.objects.values_list("pk", "is_current")) == [(sealed.pk, True)]
    assert bytes(SealedKeySet.objects.get().blob) == bytes(sealed.blob)
    assert _current_kids() == kids
    # The released image comes back: the next call unseals it with the same keys.
    booted.restart_enclave()
    verdict = gateway.validate_envelope(envelope=envelope, kind="portfolio", agent=who, week=WEEK)
    assert verdict.verdict["status"] == "accepted" and _current_kids() == kids


def test_an_attestation_the_host_refuses_unlocks_nothing_it_trusts(booted, enclave_settings):
    kids = _current_kids()
    booted.restart_enclave()
    enclave_settings.ENCLAVE_EXPECTED_PCRS = "0=" + "ab" * 48
    with pytest.raises(EnclaveUnlockError, match="ENCLAVE_EXPECTED_PCRS"):
        gateway.ensure_unlocked()
    assert _current_kids() == kids and SealedKeySet.objects.get().is_current
    with pytest.raises(AttestationError):  # unlocked now, but still not the expected image
        gateway.attest()
    enclave_settings.ENCLAVE_EXPECTED_PCRS = "measure"
    assert gateway.attest().kid == kids["enc"]


def test_the_instance_roles_credentials_go_with_the_unseal(booted, enclave_settings, monkeypatch):
    from enclave_bridge.kms_sim.server import INSTANCE_ACCESS_KEY

    enclave_settings.ENCLAVE_PASS_AWS_CREDENTIALS = True
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-NOT-A-PRINCIPAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "whatever")
    booted.restart_enclave()
    with pytest.raises(EnclaveUnlockError, match="sealing_failed") as refused:
        gateway.ensure_unlocked()
    assert "whatever" not in str(refused.value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", INSTANCE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert gateway.ensure_unlocked().action == "unsealed"


def test_unattended_new_keys_are_refused_when_sets_exist_under_another_kms_key(fresh):
    SealedKeySet.objects.create(blob=b"sealed elsewhere", kms_key_id="alias/old", reason="init")
    with pytest.raises(EnclaveUnlockError, match="alias/old"):
        gateway.ensure_unlocked()
    assert not EnclaveKey.objects.exists()
    out = io.StringIO()
    with pytest.raises(CommandError, match="--new-keys"):
        call_command("enclave_boot", stdout=out)
    call_command("enclave_boot", "--new-keys", stdout=out)
    assert "initialised" in out.getvalue()
    assert SealedKeySet.objects.get(is_current=True).kms_key_id == fresh.kms_key_id


def test_registered_keys_without_their_sealed_set_are_not_a_first_boot(booted):
    """The sealed set was lost (a restore without it, a wiped table) but keys are registered:
    a restart must not silently make new keys, or every envelope sealed to the old ones is lost."""
    kids = _current_kids()
    SealedKeySet.objects.all().delete()
    booted.restart_enclave()
    with pytest.raises(EnclaveUnlockError, match="keys are registered"):
        gateway.ensure_unlocked()
    assert _current_kids() == kids and not SealedKeySet.objects.exists()
    assert gateway.ensure_unlocked(allow_new_keys=True).action == "initialised"


def test_without_a_kms_key_id_a_locked_enclave_is_a_configuration_error(fresh, enclave_settings):
    enclave_settings.ENCLAVE_KMS_KEY_ID = ""
    with pytest.raises(ImproperlyConfigured, match="ENCLAVE_KMS_KEY_ID"):
        gateway.ensure_unlocked()


def test_enclave_boot_command_unlocks_a_remote_enclave(fresh, enclave_settings):
    enclave_settings.ENCLAVE_ADDRESS = "unix:/nowhere.sock"  # the command names the address
    out = io.StringIO()
    call_command("enclave_boot", "--address", fresh.address, stdout=out)
    text = out.getvalue()
    kids = _current_kids()
    assert f"Enclave at {fresh.address}: was locked; initialised" in text
    assert kids["enc"] in text and kids["sig"] in text
    assert re.search(r"PCR0 [0-9a-f]{16}…", text)

    out = io.StringIO()
    call_command("enclave_boot", "--address", fresh.address, stdout=out)
    assert "was unlocked; already unlocked" in out.getvalue()

    fresh.restart_enclave()
    out = io.StringIO()
    call_command("enclave_boot", "--address", fresh.address, stdout=out)
    assert "was locked; unsealed with the current sealed key set" in out.getvalue()
    assert _current_kids() == kids and SealedKeySet.objects.count() == 1


def test_enclave_boot_command_reports_an_enclave_that_does_not_answer(db, enclave_settings):
    enclave_settings.ENCLAVE_RETRIES = 0
    with pytest.raises(CommandError, match="no enclave answers at tcp:127.0.0.1"):
        call_command("enclave_boot", "--address", f"tcp:127.0.0.1:{_free_tcp_port()}")
    with pytest.raises(CommandError, match="vsock:CID:PORT"):
        call_command("enclave_boot", "--address", "http://enclave")


def test_the_attestation_api_unlocks_a_restarted_enclave(booted, client_for):
    import base64
    import os

    from tests.factories import UserFactory

    booted.restart_enclave()
    nonce = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    answer = client_for(UserFactory()).post(
        "/api/v1/enclave/attestation/", {"nonce": nonce}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["kid"] == _current_kids()["enc"]


# Modules allowed to build an EnclaveClient: the gateway, the Django-free development launcher,
# and the pure client package itself (and the enclave program, which is the other side).
ALLOWED_CLIENT_BUILDERS = {
    "enclave_bridge/gateway.py",
    "enclave_bridge/devstack.py",
    "enclave_bridge/management/commands/run_enclave.py",
}
# Modules allowed to import enclave_bridge.client: the gateway and the Django-free launcher.
ALLOWED_CLIENT_IMPORTERS = {
    "enclave_bridge/gateway.py",
    "enclave_bridge/devstack.py",
}


def _host_modules() -> list[Path]:
    root = Path(APP_DIR)
    paths = [*root.glob("prudencial/**/*.py"), *root.glob("enclave_bridge/**/*.py")]
    return [
        p
        for p in paths
        if not p.relative_to(root).as_posix().startswith(("enclave_bridge/enclave/",))
        and not p.relative_to(root).as_posix().startswith("enclave_bridge/client")
        # The agents' own library (runs on the agent's machine, checks attestations with
        # enclave_bridge.client.check_attestation, never reaches the enclave's socket).
        and not p.relative_to(root).as_posix().startswith("prudencial/client/")
    ]


def test_the_gateway_is_the_only_django_module_that_talks_to_the_enclave():
    root = Path(APP_DIR)
    builders, importers = [], []
    for path in _host_modules():
        rel = path.relative_to(root).as_posix()
        text = path.read_text("utf-8")
        if "EnclaveClient(" in text and rel not in ALLOWED_CLIENT_BUILDERS:
            builders.append(rel)
        if (
            re.search(
                r"^\s*(from enclave_bridge\.client\b|import enclave_bridge\.client)", text, re.M
            )
            and rel not in ALLOWED_CLIENT_IMPORTERS
        ):
            importers.append(rel)
    assert not builders, f"build an EnclaveClient outside the gateway: {builders}"
    assert not importers, f"import enclave_bridge.client outside the gateway: {importers}"


def test_an_enclave_unlocked_by_someone_else_is_attested_before_its_keys_are_trusted(booted):
    kids = _current_kids()
    gateway.reset_gateways()  # a new host process…
    EnclaveKey.objects.all().delete()  # …that has never registered this enclave's keys
    report = gateway.ensure_unlocked()
    assert (report.state_before, report.action) == ("unlocked", "registered")
    assert _current_kids() == kids


# --- registry and split through the gateway ------------------------------------------------------


def _registry_entries(*agents: dict[str, str]) -> list[dict[str, str]]:
    return [{"cnpj": a["cnpj"], "acronym": a["acronym"], "legal_name": "ignored"} for a in agents]


def test_the_registry_is_staged_again_once_after_a_restart(booted):
    """A validation naming a registry the (restarted) enclave lost gets `unknown_registry`; the
    gateway stages the entries it was given (a loader, called only then) and retries once."""
    from tests.enclave.payloads import counterparties

    who, other = make_agent(5), make_agent(6, "GE")
    sha = gateway.stage_registry(_registry_entries(who, other))
    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    wrong = encrypt(counterparties(who, [dict(other, acronym="XX1")]), key)

    def judge():
        return gateway.validate_envelope(
            envelope=wrong,
            kind="counterparties",
            agent=who,
            week=WEEK,
            registry_sha256=sha,
            registry=loader,
        )

    calls = []

    def loader():
        calls.append(1)
        return _registry_entries(who, other)

    first = judge()
    assert first.verdict["status"] == "rejected"
    assert first.args["registry_sha256"] == sha
    assert calls == []  # staged in this process: remembered, the loader is not needed
    gateway.reset_gateways()  # a new process: nothing remembered
    booted.restart_enclave()  # and the enclave lost its registries
    again = judge()
    assert again.verdict == dict(first.verdict, digest=again.verdict["digest"])
    assert calls == [1]
    # Entries alone (no digest) are hashed here and staged on demand.
    plain = gateway.validate_envelope(
        envelope=wrong, kind="counterparties", agent=who, week=WEEK, registry=[dict(other)]
    )
    assert plain.verdict["status"] == "rejected"


def test_split_batch_returns_a_signed_batch(booted):
    from prudencial.domain import formats
    from tests.enclave.payloads import counterparties

    agents = [make_agent(80 + n) for n in range(2)]
    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    doc = {
        "schema": formats.BATCH_SCHEMA_ID,
        "week": WEEK,
        "portfolios": [portfolio(a) for a in agents],
        "counterparties": [counterparties(agents[0], [agents[1]])],
    }
    signed = gateway.split_batch(
        envelope=encrypt(doc, key),
        week=WEEK,
        agents=agents,
        registry=_registry_entries(*agents),
    )
    assert isinstance(signed, gateway.SignedBatch)
    assert signed.status == "accepted" and signed.errors == []
    assert [a["acronym"] for a in signed.agents] == [a["acronym"] for a in agents]
    assert signed.agents[0]["counterparties"]["verdict"]["status"] == "accepted"
    assert signed.agents[1]["counterparties"] is None
    assert args_sha256(signed.args) == signed.args_sha256
    sig = jwk.JWK(**EnclaveKey.objects.get(use="sig", status="current").public_jwk)
    body = verify_answer(
        signed.token,
        sig,
        req_id=signed.request_id,
        nonce=signed.nonce,
        op="split",
        args_digest=signed.args_sha256,
    )
    assert body["result"] == signed.result
    # The host stores the re-encrypted envelope; the closing opens it like any other.
    envelope = signed.agents[1]["portfolio"]["envelope"]
    verdict = gateway.validate_envelope(
        envelope=envelope, kind="portfolio", agent=agents[1], week=WEEK
    )
    assert verdict.verdict["digest"] == signed.agents[1]["portfolio"]["verdict"]["digest"]

    foreign = gateway.split_batch(envelope=encrypt(doc, key), week=WEEK, agents=agents[:1])
    assert foreign.status == "rejected" and foreign.agents == []


def test_the_signing_key_is_es256(booted):
    key = EnclaveKey.objects.get(use="sig", status="current")
    assert (key.public_jwk["crv"], key.public_jwk["alg"]) == ("P-256", "ES256")
    assert key.get_use_display().endswith("(ES256)")
