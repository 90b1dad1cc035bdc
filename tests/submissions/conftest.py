"""Fixtures of the submissions tests: the real enclave process (development stack), its keys
registered in the test database, weeks and agents, envelopes encrypted as an agent's software
does (jwcrypto, to the enclave's published key), a real Celery worker on this run's Redis.

Run with PostgreSQL and Redis of your own (docs: briefs' test isolation), e.g.
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/submissions REDIS_URL=redis://127.0.0.1:6379/11``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
WEEK = "202303001"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The development stack: PKI, simulated KMS and the enclave process (Unix socket)."""
    from enclave_bridge.devstack import LocalEnclaveStack

    with LocalEnclaveStack(
        tmp_path_factory.mktemp("submissions-enclave"), enclave_args=["--workers", "1"]
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
    return settings


@pytest.fixture
def enclave(db, enclave_settings, stack):
    """The enclave unlocked and its keys registered in this test's database."""
    from enclave_bridge import gateway

    gateway.reset_gateways()
    gateway.ensure_unlocked(allow_new_keys=True)
    yield stack
    gateway.reset_gateways()


@pytest.fixture
def enc_key(db):
    """A registered envelope key without the enclave (tests of host-side rules only)."""
    from django.utils import timezone

    from enclave_bridge.models import EnclaveKey

    now = timezone.now()
    return EnclaveKey.objects.create(
        kid="test-enc-kid",
        use="enc",
        public_jwk={"kty": "RSA", "kid": "test-enc-kid", "n": "AQAB", "e": "AQAB"},
        attestation=b"",
        attested_at=now,
        verified_at=now,
        expires_at=now + timedelta(hours=1),
    )


def open_week(code: str = WEEK, *, deadline_in: timedelta = timedelta(days=1)):
    """A week with this code, open since an hour ago, its deadline ``deadline_in`` from now."""
    from django.utils import timezone

    from prudencial.models import Week, WeekStatus
    from prudencial.services import weeks

    now = timezone.now()
    month = date(int(code[:4]), int(code[4:6]), 1)
    start = month + timedelta(days=7 * (int(code[6:]) - 1))
    week = weeks.week_create(
        operation_start=start,
        operation_end=start + timedelta(days=6),
        opens_at=now - timedelta(days=2),
        deadline=now + deadline_in,
        code=code,
    )
    Week.objects.filter(pk=week.pk).update(status=WeekStatus.OPEN)
    week.refresh_from_db()
    return week


@pytest.fixture
def week(db):
    return open_week()


@pytest.fixture
def trader(db):
    from tests.factories import AgentFactory

    return AgentFactory(acronym="CM47", agent_class="trader")


@pytest.fixture
def generator(db):
    from tests.factories import AgentFactory

    return AgentFactory(acronym="GE12", agent_class="generator")


@pytest.fixture
def sender(trader, generator):
    """A user who controls the trader and the generator."""
    from tests.factories import UserFactory, grant

    user = UserFactory(username="maria.souza")
    grant(user, trader)
    grant(user, generator)
    return user


@pytest.fixture
def api(client_for, sender):
    return client_for(sender)


def who(agent) -> dict[str, str]:
    return {"acronym": agent.acronym, "cnpj": agent.cnpj}


def portfolio(agent, week: str = WEEK, **overrides):
    from prudencial.domain import formats

    payload = formats.example_payload("portfolio", agent=who(agent), week=week)
    payload.update(overrides)
    return payload


def counterparties(agent, other, week: str = WEEK, mitigants: str = "Fiança bancária"):
    from prudencial.domain import formats

    payload = formats.example_payload("counterparties", agent=who(agent), week=week)
    row = payload["counterparties"][0]
    row.update(cnpj=other.cnpj, acronym=other.acronym, mitigants=mitigants)
    payload["counterparties"] = [row]
    return payload


def encrypt_for_enclave(payload) -> str:
    """A compact JWE to the enclave's current envelope key, as an agent's software makes it."""
    from enclave_bridge.models import EnclaveKey
    from tests.enclave.payloads import encrypt

    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    return encrypt(payload, key)


def fake_jwe(kid: str = "test-enc-kid", *, alg: str = "RSA-OAEP-256", enc: str = "A256GCM") -> str:
    """Five base64url parts with a header naming ``kid`` (nothing decrypts it)."""
    import json

    from enclave_bridge.wire.protocol import b64url

    header = b64url(json.dumps({"alg": alg, "enc": enc, "kid": kid}).encode())
    return f"{header}.{b64url(b'k' * 256)}.{b64url(b'iv' * 6)}.{b64url(os.urandom(64))}.{b64url(b't' * 16)}"


# --- a real worker ------------------------------------------------------------------------------


def _database_url(db: dict) -> str:
    from urllib.parse import quote

    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return (
        f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


@pytest.fixture
def worker(transactional_db, enclave_settings, stack, tmp_path):
    """A real `celery worker` on its own queue (pytest-xdist runs several such workers on one
    Redis: each must take only its own test's tasks), against this test's committed database
    and the enclave process."""
    from django.conf import settings

    from config.celery_app import app as celery_app

    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is unset: the real-worker tests need a Redis broker")
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        pytest.skip("set DATABASE_URL to PostgreSQL: a worker process cannot open SQLite in memory")
    log = tmp_path / "worker.log"
    queue = f"submissions-test-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(db),
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": os.environ["REDIS_URL"],
        "ENCLAVE_ADDRESS": stack.address,
        "ENCLAVE_KMS_KEY_ID": stack.kms_key_id,
        "ENCLAVE_TRUST_ROOT": str(stack.trust_root_path),
        "ENCLAVE_EXPECTED_PCRS": "measure",
        "LOG_LEVEL": "DEBUG",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config.celery_app", "worker",
                "--pool=solo", "-Q", queue, "-n", f"{queue}@%h", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "--loglevel=DEBUG",
            ],
            cwd=PROJECT_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    eager, default_queue = celery_app.conf.task_always_eager, celery_app.conf.task_default_queue
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue  # what this test sends goes to its worker only
    try:
        yield {"process": process, "log": log, "queue": queue}
    finally:
        celery_app.conf.task_always_eager = eager
        celery_app.conf.task_default_queue = default_queue
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_for(predicate, worker, *, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if worker["process"].poll() is not None:
            pytest.fail(f"the Celery worker exited:\n{worker['log'].read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"nothing in {timeout}s; worker log:\n{worker['log'].read_text()[-5000:]}")
        time.sleep(0.2)
