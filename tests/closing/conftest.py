"""Fixtures of the closing tests: the real enclave process (one, or two on the same sealed key
set), a synthetic market of a few hundred agents whose envelopes are encrypted as an agent's
software encrypts them and validated by the enclave (signed verdicts), a week past its deadline,
and real Celery workers (prefork, so a child can be killed) on queues of their own.

Run with PostgreSQL and Redis of your own, e.g.
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_core REDIS_URL=redis://127.0.0.1:6379/3``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.submissions.conftest import _database_url, enclave_settings  # noqa: F401

PROJECT_DIR = Path(__file__).resolve().parents[2]
AGENTS = 240
CHUNK = 20  # 12 chunks: enough tasks to kill workers among
SCENARIOS = 200
# A declared value no host-side row, message or log may ever carry (the canary).
CANARY_EQUITY = 7654321.987
CANARY_TEXT = "7654321.987"
CLASSES = ("trader", "generator", "free_consumer")


# --- the enclave ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The development stack (PKI, simulated KMS, one enclave process on a Unix socket)."""
    from enclave_bridge.devstack import LocalEnclaveStack

    with LocalEnclaveStack(
        tmp_path_factory.mktemp("closing-enclave"), enclave_args=["--workers", "1"]
    ) as s:
        yield s


def second_enclave(stack):
    """Another enclave process on the same PKI and KMS key (so the same sealed key set unseals
    it), listening on its own socket: a second parent instance's enclave. Stop it with
    ``.stop()``."""
    from enclave_bridge.devstack import LocalEnclaveStack

    other = LocalEnclaveStack(
        stack.workdir,
        enclave_args=["--workers", "1"],
        listen=f"unix:{stack.workdir / 'enclave2.sock'}",
    )
    other.kms_url, other.kms_key_id = stack.kms_url, stack.kms_key_id
    other._start_enclave(60.0)
    return other


@pytest.fixture
def enclave(transactional_db, enclave_settings, stack):  # noqa: F811
    """The enclave unlocked, its keys registered in this test's (committed) database."""
    from enclave_bridge import gateway

    enclave_settings.ENCLAVE_ADDRESSES = [stack.address]
    enclave_settings.CLOSING_CHUNK_AGENTS = CHUNK
    enclave_settings.CLOSING_NETWORK_OPTIONS = {
        "scenarios": SCENARIOS,
        "seed": 7,
        "horizon_buckets": 3,
    }
    gateway.reset_gateways()
    _restore_sealed_set(stack)
    gateway.ensure_unlocked(allow_new_keys=True)
    _remember_sealed_set(stack)
    yield stack
    gateway.reset_gateways()


def _remember_sealed_set(stack) -> None:
    """The enclave process outlives this test's database (flushed after each test): keep the
    sealed set of the keys it holds, or a restarted enclave would find none and make new ones
    (and envelopes and network parts sealed before the restart could no longer be opened)."""
    from enclave_bridge.models import SealedKeySet

    current = SealedKeySet.objects.filter(kms_key_id=stack.kms_key_id, is_current=True).first()
    if current is not None:
        stack.sealed_set = bytes(current.blob)


def _restore_sealed_set(stack) -> None:
    from enclave_bridge.models import SealedKeySet
    from enclave_bridge.services import sealed_key_set_store

    blob = getattr(stack, "sealed_set", None)
    if blob is not None and not SealedKeySet.objects.filter(kms_key_id=stack.kms_key_id).exists():
        sealed_key_set_store(blob=blob, reason="init", kms_key_id=stack.kms_key_id)


# --- the market ------------------------------------------------------------------------------------


def portfolio_payload(agent, week: str, n: int) -> dict[str, Any]:
    """A v2 portfolio of 10 contract rows (5 buckets × purchase/sale) and 5 forecasts; agent 3
    declares the canary equity, every 17th a PLA ≤ 0 (no FA)."""
    from prudencial.domain import formats

    equity = CANARY_EQUITY if n == 3 else 5_000_000.0 + 1000 * n
    deductions = dict.fromkeys(formats.DEDUCTION_FIELDS, 0.0)
    if n % 17 == 16:
        deductions["intangibles_brl"] = equity * 2  # PLA ≤ 0: no FA, documented reason
    return {
        "schema": formats.PORTFOLIO_SCHEMA_ID,
        "agent": {"acronym": agent.acronym, "cnpj": agent.cnpj},
        "week": week,
        "contracts": [
            {
                "bucket": b,
                "side": side,
                "contract_type": "fixed_price",
                "energy_type": "conventional",
                "submarket": "SE" if b % 2 == 0 else "S",
                "volume_mwm": volume,
                "amount_brl": round(volume * (150.0 + b) * 744, 2),
            }
            for b in range(5)
            for side, volume in (("purchase", 10.0 + (n % 7)), ("sale", 6.0 + b + (n % 3)))
        ],
        "forecasts": [
            {
                "bucket": b,
                "submarket": "SE",
                "energy_type": "conventional",
                "generation_mwm": 3.0 if agent.agent_class == "generator" else 0.0,
                "consumption_mwm": 2.0,
            }
            for b in range(5)
        ],
        "equity": {"equity_brl": equity, **deductions},
        "regulated_market_revenue_brl": 0.0,
    }


def counterparties_payload(agent, others, week: str) -> dict[str, Any]:
    from prudencial.domain import formats

    return {
        "schema": formats.COUNTERPARTIES_SCHEMA_ID,
        "agent": {"acronym": agent.acronym, "cnpj": agent.cnpj},
        "week": week,
        "counterparties": [
            {
                "rank": i + 1,
                "cnpj": o.cnpj,
                "acronym": o.acronym,
                "mtm_m0_brl": 100_000.0 * (3 - i),
                "mtm_m1_brl": 80_000.0,
                "mtm_m2_brl": 50_000.0,
                "mitigation_brl": 10_000.0,
                "mitigants": "fiança bancária",
                "volume_mwm": [(-1.0) ** i * 2.0, 1.0, 0.5],
            }
            for i, o in enumerate(others)
        ],
    }


@dataclass
class Market:
    week: Any
    agents: list
    plaintext: dict[int, dict[str, Any]] = field(default_factory=dict)  # agent id → portfolio
    missing: list[int] = field(default_factory=list)
    sender: Any = None
    staff: Any = None


def make_week(code_start: date, *, pld: bool = True):
    """An open week with its parameters (and the PLD history the network model needs), its
    deadline an hour away."""
    from django.utils import timezone

    from prudencial.models import Week, WeekStatus
    from prudencial.services.parameters import parameters_save
    from tests.enclave.payloads import PLD_HISTORY
    from tests.factories import week_with_parameters

    now = timezone.now()
    week = week_with_parameters(
        operation_start=code_start,
        operation_end=code_start + timedelta(days=6),
        opens_at=now - timedelta(days=2),
        deadline=now + timedelta(hours=1),
    )
    if pld:
        parameters_save(week=week, fields={"pld_history": PLD_HISTORY}, buckets={})
    Week.objects.filter(pk=week.pk).update(status=WeekStatus.OPEN)
    week.refresh_from_db()
    return week


def submit(week, agent, kind: str, payload: dict[str, Any], user) -> int:
    """Store a submission as the API would (ciphertext only) and have the enclave validate it
    in-process (its signed verdict stored): returns the submission id."""
    from prudencial.submissions import services
    from prudencial.submissions.models import Submission
    from tests.submissions.conftest import encrypt_for_enclave

    jwe = encrypt_for_enclave(payload)
    version = Submission.objects.filter(week=week, agent=agent, kind=kind).count() + 1
    submission = Submission.objects.create(
        week=week,
        agent=agent,
        kind=kind,
        version=version,
        channel="api",
        submitted_by=user,
        size_bytes=len(jwe),
        receipt=services.receipt_of(jwe),
        envelope=jwe,
    )
    verdict = services.submission_validate(submission_id=submission.pk)
    assert verdict is not None and verdict.status == "accepted", verdict and verdict.errors
    return submission.pk


def build_market(week, *, agents: int = AGENTS, missing_every: int = 40) -> Market:
    """``agents`` agents (traders, generators, free consumers); every ``missing_every``-th sends
    nothing (a ``missing`` result), every 5th no counterparties."""
    from django.db import connections

    from tests.factories import AgentFactory, UserFactory

    sender = UserFactory(username=f"sender{uuid.uuid4().hex[:6]}")
    staff = UserFactory(username=f"staff{uuid.uuid4().hex[:6]}", is_staff=True, is_superuser=True)
    made = [
        AgentFactory(acronym=f"{('CM', 'GE', 'CS')[n % 3]}{n:04d}", agent_class=CLASSES[n % 3])
        for n in range(agents)
    ]
    market = Market(week=week, agents=made, sender=sender, staff=staff)
    jobs = []
    for n, agent in enumerate(made):
        if n % missing_every == missing_every - 1:
            market.missing.append(agent.pk)
            continue
        payload = portfolio_payload(agent, week.code, n)
        market.plaintext[agent.pk] = payload
        jobs.append((agent, "portfolio", payload))
        if n % 5 != 4:
            others = [made[(n + k) % agents] for k in (1, 2, 3)]
            jobs.append((agent, "counterparties", counterparties_payload(agent, others, week.code)))

    def run(job):
        try:
            return submit(week, *job, sender)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(run, jobs))
    return market


@pytest.fixture
def market(enclave):
    """A few hundred agents' validated envelopes in an open week (202303001)."""
    week = make_week(date(2023, 3, 1))
    return build_market(week)


def past_deadline(week) -> None:
    from django.utils import timezone

    from prudencial.models import Week

    Week.objects.filter(pk=week.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    week.refresh_from_db()


# --- workers -------------------------------------------------------------------------------------


class Workers:
    """Real `celery worker` processes (prefork, one child each) on one queue of this test."""

    def __init__(self, stack, tmp_path: Path, addresses: list[str], extra_env: dict[str, str]):
        from django.conf import settings

        self.queue = f"closing-test-{uuid.uuid4().hex}"
        self.tmp_path = tmp_path
        db = settings.DATABASES["default"]
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": _database_url(db),
            "DATABASE_CONN_MAX_AGE": "0",
            "REDIS_URL": os.environ["REDIS_URL"],
            "ENCLAVE_ADDRESS": addresses[0],
            "ENCLAVE_ADDRESSES": ",".join(addresses),
            "ENCLAVE_KMS_KEY_ID": stack.kms_key_id,
            "ENCLAVE_TRUST_ROOT": str(stack.trust_root_path),
            "ENCLAVE_EXPECTED_PCRS": "measure",
            "CLOSING_CHUNK_AGENTS": str(CHUNK),
            "CLOSING_NETWORK_SCENARIOS": str(SCENARIOS),
            "CLOSING_NETWORK_SEED": "7",
            "LOG_LEVEL": "DEBUG",
            **extra_env,
        }
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, count: int = 1) -> None:
        for _n in range(count):
            n = len(self.processes)
            log = self.tmp_path / f"worker{n}.log"
            with log.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        [
                            sys.executable, "-m", "celery", "-A", "config.celery_app", "worker",
                            "--pool=prefork", "--concurrency=1", "-Q", self.queue,
                            "-n", f"{self.queue}-{n}@%h", "--without-gossip", "--without-mingle",
                            "--without-heartbeat", "--loglevel=DEBUG", "--prefetch-multiplier=1",
                        ],
                        cwd=PROJECT_DIR,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
            self.logs.append(log)

    def children(self) -> list[int]:
        """The pids of the workers' pool children (what runs the tasks)."""
        pids = []
        for process in self.processes:
            path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            if path.exists():
                pids += [int(p) for p in path.read_text().split()]
        return pids

    def kill_child(self) -> int | None:
        for pid in self.children():
            try:
                os.kill(pid, signal.SIGKILL)
                return pid
            except ProcessLookupError:
                continue
        return None

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def workers(enclave, stack, tmp_path):
    """workers(addresses=None, count=1, **env) → started Workers; this test's sends go to them."""
    from config.celery_app import app as celery_app

    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is unset: the closing tests need a Redis broker and real workers")
    started: list[Workers] = []
    eager, default_queue = celery_app.conf.task_always_eager, celery_app.conf.task_default_queue

    def start(addresses: list[str] | None = None, count: int = 1, **env: str) -> Workers:
        group = Workers(stack, tmp_path, addresses or [stack.address], env)
        group.start(count)
        started.append(group)
        celery_app.conf.task_always_eager = False
        celery_app.conf.task_default_queue = group.queue
        return group

    try:
        yield start
    finally:
        celery_app.conf.task_always_eager = eager
        celery_app.conf.task_default_queue = default_queue
        for group in started:
            group.stop()


def wait_until(predicate, group: Workers, *, timeout: float = 240.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if not group.alive():
            pytest.fail(f"a Celery worker exited:\n{group.log_text()[-5000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in {timeout}s; worker log:\n{group.log_text()[-6000:]}")
        time.sleep(0.2)


def closing_state(closing_id: int) -> str:
    from prudencial.closing.models import Closing

    return Closing.objects.get(pk=closing_id).state


def wait_done(closing_id: int, group: Workers, *, timeout: float = 240.0) -> None:
    wait_until(
        lambda: closing_state(closing_id) in ("done", "failed", "delayed"),
        group,
        timeout=timeout,
        what=f"end of closing {closing_id}",
    )
    assert closing_state(closing_id) == "done", _closing_report(closing_id, group)


def _closing_report(closing_id: int, group: Workers) -> str:
    from prudencial.closing.models import Closing

    closing = Closing.objects.get(pk=closing_id)
    return (
        f"{closing.state} {closing.error_code} {closing.error_message}\n{group.log_text()[-6000:]}"
    )


def results_snapshot(closing_id: int) -> dict[str, tuple]:
    """acronym → the stored figures of a closing (what an equal run must reproduce)."""
    from prudencial.closing.models import LeverageResult

    return {
        r.agent.acronym: (
            r.status,
            r.fa,
            r.fa_risk,
            r.res_fin_over_pla,
            tuple(r.var_share_by_bucket or ()),
            r.concentration_largest,
            r.concentration_top_five,
            tuple(sorted((k, repr(v)) for k, v in (r.network or {}).items())),
        )
        for r in LeverageResult.objects.filter(closing_id=closing_id).select_related("agent")
    }


def communities_snapshot(closing_id: int) -> list[tuple]:
    from prudencial.closing.models import CommunityResult

    return list(
        CommunityResult.objects.filter(closing_id=closing_id)
        .order_by("community")
        .values_list("community", "rank", "size", "members", "mean_cvar_propagated")
    )
