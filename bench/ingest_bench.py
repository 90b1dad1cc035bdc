"""Sustained ingestion through the API (issue 9 target): gunicorn, PostgreSQL, Redis, a Celery
worker and the enclave process running, locust (headless, bounded in time) on the same machine
POSTing encrypted submissions at a target rate; then every row and verdict counted. Not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ingest REDIS_URL=redis://127.0.0.1:6379/12 \
        .venv/bin/python bench/ingest_bench.py [--rate 300] [--duration 300] [--users 100] \
        [--gunicorn-workers 4] [--worker-concurrency 2] [--out bench/results/ingest.md]

Runs in a throw-away test database (``test_<name>``, created and dropped here) and flushes the
Redis DB index it is given (use one of your own). Target: 300 submissions/s for 5 minutes, p95
of the 202 under 100 ms, no submission lost (rows = 202s, and every row gets its verdict).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
WEEK = "202303001"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(db: dict) -> str:
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return (
        f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


def wait_http(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not listen on {port} in {timeout}s")


def market(n_agents: int):
    """An open week, ``n_agents`` traders, one user controlling them all, and its token."""
    from datetime import date, timedelta

    from django.utils import timezone

    from prudencial.models import Week, WeekStatus
    from prudencial.services import weeks
    from tests.factories import AgentFactory, UserFactory, grant

    now = timezone.now()
    week = weeks.week_create(
        operation_start=date(2023, 3, 1),
        operation_end=date(2023, 3, 7),
        opens_at=now - timedelta(days=1),
        deadline=now + timedelta(days=1),
        code=WEEK,
    )
    Week.objects.filter(pk=week.pk).update(status=WeekStatus.OPEN)
    user = UserFactory(username="bench.ingest")
    agents = [AgentFactory(acronym=f"CM{n:04d}", agent_class="trader") for n in range(n_agents)]
    for agent in agents:
        grant(user, agent)
    try:  # expiring tokens (prudencial.access), where that app is installed
        from prudencial.access.tokens import token_create

        return user, agents, token_create(user=user, name="ingest-bench")[1]
    except ImportError:
        from rest_framework.authtoken.models import Token

        return user, agents, Token.objects.get_or_create(user=user)[0].key


def envelopes(agents, per_agent: int, path: Path) -> int:
    from enclave_bridge.models import EnclaveKey
    from prudencial.domain import formats
    from tests.enclave.payloads import encrypt

    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    items = []
    for i in range(per_agent):
        for agent in agents:
            who = {"acronym": agent.acronym, "cnpj": agent.cnpj}
            payload = formats.example_payload("portfolio", agent=who, week=WEEK)
            payload["contracts"][0]["volume_mwm"] = 10.0 + i  # a different plaintext each time
            items.append([agent.pk, "portfolio", encrypt(payload, key)])
    path.write_text(json.dumps({"week": WEEK, "items": items}))
    return len(items[0][2])


def warm_up(port: int, token: str, data: Path) -> list[float]:
    """A few POSTs before the load (every gunicorn worker imports the app on its first)."""
    import urllib.request

    items = json.loads(data.read_text())["items"]
    times = []
    for agent_id, kind, jwe in items[:8]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/weeks/{WEEK}/agents/{agent_id}/{kind}/",
            data=json.dumps({"jwe": jwe}).encode(),
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 202, response.status
        times.append(round((time.perf_counter() - start) * 1000, 1))
    print(f"warm-up POSTs (ms): {times}", flush=True)
    return times


def batch_phase(port: int, token: str, user, n_agents: int) -> dict:
    """A multi-agent XLSX template of ``n_agents`` (bench/batch_bench.py's agents: six contract
    rows, three forecasts, five counterparties each) POSTed to the batch route, then waited for
    until the worker stored its submissions: end to end, from the POST to the last row."""
    import urllib.request

    from batch_bench import _payloads

    from enclave_bridge.enclave.xlsx import build_template
    from enclave_bridge.models import EnclaveKey
    from prudencial.submissions.models import Batch, Submission
    from tests.enclave.payloads import encrypt
    from tests.factories import AgentFactory, grant

    pairs = [_payloads(n, n_agents) for n in range(n_agents)]
    agents = []
    for portfolio, _ in pairs:
        who = portfolio["agent"]
        agent = AgentFactory(acronym=who["acronym"], cnpj=who["cnpj"], agent_class="trader")
        grant(user, agent)
        agents.append(agent)
    book = build_template([d for pair in pairs for d in pair], kind="all", week=WEEK)
    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    body = json.dumps({"jwe": encrypt(book, key), "agents": [a.pk for a in agents]}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/weeks/{WEEK}/batch/",
        data=body,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        batch_id = json.loads(response.read())["id"]
    answered = time.perf_counter() - start
    while Batch.objects.filter(pk=batch_id, status="received").exists():
        if time.perf_counter() - start > 600:
            break
        time.sleep(0.2)
    done = time.perf_counter() - start
    batch = Batch.objects.get(pk=batch_id)
    made = Submission.objects.filter(batch=batch)
    return {
        "batch_agents": n_agents,
        "batch_body_mib": len(body) / 2**20,
        "batch_202_s": answered,
        "batch_end_to_end_s": done,
        "batch_status": batch.status,
        "batch_submissions": made.count(),
        "batch_accepted": made.filter(verdict__status="accepted").count(),
    }


def read_stats(prefix: Path) -> dict:
    with open(f"{prefix}_stats.csv") as f:
        rows = list(csv.DictReader(f))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    return {
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]),
        "p95_ms": float(total["95%"]),
        "p99_ms": float(total["99%"]),
        "max_ms": float(total["Max Response Time"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="target submissions/s")
    parser.add_argument("--duration", type=int, default=300, help="seconds of load (≤ 300)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--per-agent", type=int, default=10, help="distinct envelopes per agent")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--drain-timeout", type=int, default=900)
    parser.add_argument(
        "--batch-agents", type=int, default=0, help="then a multi-agent XLSX batch (0: none)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/ingest.md")
    args = parser.parse_args()
    args.duration = min(args.duration, 300)
    if not os.environ.get("REDIS_URL"):
        sys.exit("ingest_bench: set REDIS_URL to a Redis DB index of your own")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    if connection.vendor != "postgresql":
        sys.exit("ingest_bench: set DATABASE_URL to a PostgreSQL server")
    import redis

    from enclave_bridge import gateway
    from enclave_bridge.devstack import LocalEnclaveStack
    from prudencial.submissions.models import Submission, Verdict

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    processes: list[subprocess.Popen] = []
    figures: dict = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            stack = LocalEnclaveStack(tmp / "enclave", enclave_args=["--log-level", "WARNING"])
            stack.start()
            try:
                settings.ENCLAVE_ADDRESS = stack.address
                settings.ENCLAVE_KMS_KEY_ID = stack.kms_key_id
                settings.ENCLAVE_TRUST_ROOT = str(stack.trust_root_path)
                settings.ENCLAVE_EXPECTED_PCRS = "measure"
                gateway.reset_gateways()
                gateway.ensure_unlocked(allow_new_keys=True)
                user, agents, token = market(args.agents)
                data = tmp / "envelopes.json"
                jwe_chars = envelopes(agents, args.per_agent, data)
                connection.close()  # the server processes take over the database
                env = {
                    **os.environ,
                    "DJANGO_SETTINGS_MODULE": "config.settings.test",
                    "DATABASE_URL": database_url(settings.DATABASES["default"]),
                    "DATABASE_CONN_MAX_AGE": "60",
                    "ENCLAVE_ADDRESS": stack.address,
                    "ENCLAVE_KMS_KEY_ID": stack.kms_key_id,
                    "ENCLAVE_TRUST_ROOT": str(stack.trust_root_path),
                    "ENCLAVE_EXPECTED_PCRS": "measure",
                    "LOG_LEVEL": "WARNING",
                }
                port = free_port()
                logs = tmp / "logs"
                logs.mkdir()
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "gunicorn",
                            "config.wsgi",
                            "-b",
                            f"127.0.0.1:{port}",
                            "-w",
                            str(args.gunicorn_workers),
                            "--worker-class",
                            "gthread",
                            "--threads",
                            "4",
                            "--log-level",
                            "warning",
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=(logs / "gunicorn.log").open("wb"),
                        stderr=subprocess.STDOUT,
                    )  # fmt: skip
                )
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "celery",
                            "-A",
                            "config.celery_app",
                            "worker",
                            f"--concurrency={args.worker_concurrency}",
                            "--loglevel=WARNING",
                            "--without-gossip",
                            "--without-mingle",
                            "--without-heartbeat",
                            "-n",
                            f"ingest-{os.getpid()}@%h",
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=(logs / "worker.log").open("wb"),
                        stderr=subprocess.STDOUT,
                    )  # fmt: skip
                )
                wait_http(port)
                figures["warmup_ms"] = warm_up(port, token, data)
                prefix = tmp / "locust"
                started = time.monotonic()
                subprocess.run(
                    [
                        sys.executable, "-m", "locust", "-f", str(ROOT / "bench/ingest_locust.py"),
                        "--headless", "-u", str(args.users), "-r", str(args.users),
                        "-t", f"{args.duration}s", "--host", f"http://127.0.0.1:{port}",
                        "--csv", str(prefix), "--only-summary", "--stop-timeout", "10",
                    ],
                    cwd=ROOT,
                    env={
                        **env,
                        "INGEST_TOKEN": token,
                        "INGEST_ENVELOPES": str(data),
                        "INGEST_RATE_PER_USER": str(args.rate / args.users),
                    },
                    check=False,
                )  # fmt: skip
                load_time = time.monotonic() - started
                figures.update(read_stats(prefix))
                received = Submission.objects.count()
                drain_start = time.monotonic()
                while time.monotonic() - drain_start < args.drain_timeout:
                    verdicts = Verdict.objects.count()
                    if verdicts >= received:
                        break
                    time.sleep(1)
                drained = time.monotonic() - drain_start
                figures.update(
                    {
                        "load_s": load_time,
                        "rows": received,
                        "verdicts": Verdict.objects.count(),
                        "accepted": Verdict.objects.filter(status="accepted").count(),
                        "drain_after_load_s": drained,
                        "validations_per_s": Verdict.objects.count() / (load_time + drained),
                        "jwe_chars": jwe_chars,
                    }
                )
                if args.batch_agents:
                    figures.update(batch_phase(port, token, user, args.batch_agents))
                connection.close()
            finally:
                for process in reversed(processes):
                    process.terminate()
                for process in processes:
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                stack.stop()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    # Every 202 (the load's and the warm-up's) must have its row; rows beyond them are requests
    # the load generator cut off at its time limit after the server had stored them.
    answered = figures["requests"] - figures["failures"] + len(figures["warmup_ms"])
    figures["lost"] = max(0, answered - figures["rows"])
    figures["stored_unanswered"] = max(0, figures["rows"] - answered)
    print(json.dumps(figures, indent=1), flush=True)
    write(args, figures, load_before)
    return 0


def write(args, f: dict, load_before: str) -> None:
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# Ingestion bench (bench/ingest_bench.py)",
        "",
        f"{platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
        f"load average before {load_before}, after {load_after}",
        "",
        f"Target rate {args.rate:g}/s for {args.duration} s, {args.users} locust users "
        f"(FastHttpUser), gunicorn {args.gunicorn_workers} gthread workers × 4 threads, Celery "
        f"worker concurrency {args.worker_concurrency}, enclave process, PostgreSQL and Redis, "
        f"all on this machine; {args.agents} agents, portfolio envelopes of {f['jwe_chars']} "
        "characters encrypted before the run.",
        "",
        "| figure | value | target |",
        "|---|---:|---|",
        f"| 202 answers (+ {len(f['warmup_ms'])} warm-up) | {f['requests'] - f['failures']:,} | |",
        f"| failures (not 202) | {f['failures']:,} | 0 |",
        f"| achieved rate | {f['rps']:.1f}/s | 300/s |",
        f"| p50 / p95 / p99 of the POST | {f['p50_ms']:.0f} / {f['p95_ms']:.0f} / "
        f"{f['p99_ms']:.0f} ms | p95 < 100 ms |",
        f"| rows stored | {f['rows']:,} | = 202 answers |",
        f"| lost (202 without a row) | {f['lost']} | 0 |",
        f"| stored, answer cut off by the time limit | {f['stored_unanswered']} | |",
        f"| verdicts | {f['verdicts']:,} ({f['accepted']:,} accepted) | = rows |",
        f"| validation drain after the load | {f['drain_after_load_s']:.0f} s | |",
        f"| validations per second over load + drain | {f['validations_per_s']:.1f}/s | |",
    ]
    if "batch_agents" in f:
        lines += [
            f"| XLSX batch of {f['batch_agents']:,} agents ({f['batch_body_mib']:.1f} MiB body): "
            f"202 in | {f['batch_202_s']:.2f} s | |",
            f"| same, POST → {f['batch_submissions']:,} submissions stored "
            f"({f['batch_accepted']:,} accepted, batch {f['batch_status']}) | "
            f"{f['batch_end_to_end_s']:.1f} s | < 30 s |",
        ]
    lines += [""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"written {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
