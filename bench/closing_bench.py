"""Weekly closing benchmark (not a test): a 20,000-agent week (40,000 envelopes, 200,000 contract
rows, 10,000 network scenarios) from gathering to stored results, with each stage's time, run by
real Celery workers against real enclave processes: 1 worker + 1 enclave, then 2 + 2.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_core_bench REDIS_URL=redis://127.0.0.1:6379/3 \
        .venv/bin/python bench/closing_bench.py [--agents 20000] [--scenarios 10000] \
        [--chunk 500] [--out bench/results/closing.md]

Setup (not timed): the agents, the week with its parameters and PLD history, and every envelope
validated by the enclave in batch splits (signed verdicts, as the batch path stores them). The
database named in DATABASE_URL is dropped and created again. Target: under 3 minutes on the
2-core machine; the wall time is shared with whatever else runs, so the CPU time of the worker
and enclave processes is recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")


def _recreate_database() -> None:
    url = urlparse(os.environ["DATABASE_URL"])
    name = url.path.lstrip("/")
    if not name.endswith("_bench"):
        sys.exit("DATABASE_URL must name a database ending in _bench: it is dropped and created")
    base = ["-h", url.hostname or "127.0.0.1", "-U", url.username or "postgres"]
    subprocess.run(["dropdb", *base, "--if-exists", name], check=True)
    subprocess.run(["createdb", *base, name], check=True)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes and their children so far (clock ticks → s)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    seen = set()
    stack = list(pids)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            stack += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total / tick


def setup_market(agents: int, stack) -> tuple:
    """Agents, week, parameters and 2 envelopes per agent, validated by enclave splits."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from enclave_bridge.models import EnclaveKey
    from prudencial.domain import formats
    from prudencial.models import Agent, Week, WeekStatus
    from prudencial.services.parameters import parameters_save
    from prudencial.submissions import services as submission_services
    from prudencial.submissions.models import Batch
    from tests.closing.conftest import counterparties_payload, portfolio_payload
    from tests.enclave.payloads import PLD_HISTORY, encrypt
    from tests.factories import make_cnpj, week_with_parameters

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x" * 12)
    classes = ("trader", "generator", "free_consumer")
    Agent.objects.bulk_create(
        [
            Agent(
                acronym=f"{('CM', 'GE', 'CS')[n % 3]}{n:05d}",
                cnpj=make_cnpj(n),
                legal_name=f"Agente {n}",
                agent_class=classes[n % 3],
                reporting_cadence="weekly",
            )
            for n in range(agents)
        ],
        batch_size=2000,
    )
    made = list(Agent.objects.order_by("acronym"))
    now = timezone.now()
    week = week_with_parameters(
        operation_start=date(2023, 3, 1),
        operation_end=date(2023, 3, 7),
        opens_at=now - timedelta(days=2),
        deadline=now + timedelta(hours=1),
    )
    parameters_save(week=week, fields={"pld_history": PLD_HISTORY}, buckets={})
    Week.objects.filter(pk=week.pk).update(status=WeekStatus.OPEN)
    week.refresh_from_db()
    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    t0 = time.monotonic()
    size = 1000  # a batch file of 1,000 agents stays within the enclave frame (8 MiB)
    for start in range(0, len(made), size):
        group = made[start : start + size]
        doc = {
            "schema": formats.BATCH_SCHEMA_ID,
            "week": week.code,
            "portfolios": [portfolio_payload(a, week.code, start + i) for i, a in enumerate(group)],
            "counterparties": [
                counterparties_payload(
                    a, [made[(start + i + k) % len(made)] for k in (1, 2, 3)], week.code
                )
                for i, a in enumerate(group)
            ],
        }
        jwe = encrypt(json.dumps(doc).encode(), key)
        batch = Batch.objects.create(
            week=week,
            submitted_by=user,
            size_bytes=len(jwe),
            receipt=submission_services.receipt_of(jwe),
            envelope=jwe,
        )
        batch.agents.set(group)
        processed = submission_services.batch_process(batch_id=batch.pk)
        assert processed.status == "accepted", processed.errors
        print(
            f"  split {start + len(group)}/{len(made)} ({time.monotonic() - t0:.0f}s)", flush=True
        )
    return week, user, made


def upload_trade_network(week, user, made, contracts: int, part_size: int) -> dict:
    """The week's registered contracts as a staff upload in parts (prudencial/contracts/v1 with
    `part`), each validated by the enclave; returns counts and times."""
    import random
    import uuid

    from enclave_bridge.models import EnclaveKey
    from prudencial.closing import trade_network
    from prudencial.domain import formats
    from tests.enclave.payloads import encrypt

    rng = random.Random(11)
    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    rows = []
    for _ in range(contracts):
        seller, buyer = rng.sample(range(len(made)), 2)
        rows.append(
            {
                "seller_cnpj": made[seller].cnpj,
                "buyer_cnpj": made[buyer].cnpj,
                "bucket": rng.randrange(3),
                "volume_mwm": round(rng.lognormvariate(0.0, 0.8), 3),
                "price_brl_mwh": round(rng.uniform(120.0, 320.0), 2),
            }
        )
    count = -(-contracts // part_size)
    set_id = f"bench-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    sizes = []
    for index in range(1, count + 1):
        part = {"set": set_id, "index": index, "count": count}
        doc = {
            "schema": formats.CONTRACTS_SCHEMA_ID,
            "week": week.code,
            "part": part,
            "contracts": rows[(index - 1) * part_size : index * part_size],
        }
        jwe = encrypt(json.dumps(doc).encode(), key)
        sizes.append(len(jwe))
        uploaded = trade_network.trade_network_submit(
            user=user,
            week=week.code,
            jwe=jwe,
            idempotency_key=f"{set_id}-{index}",
            part_set=set_id,
            part_index=index,
            part_count=count,
        )
        trade_network.trade_network_validate(upload_id=uploaded.upload.pk)
        print(f"  trade network part {index}/{count} ({time.monotonic() - t0:.0f}s)", flush=True)
    return {
        "contracts": contracts,
        "parts": count,
        "largest_part_chars": max(sizes),
        "upload_and_validate_s": round(time.monotonic() - t0, 1),
    }


def run(args) -> dict:
    import django

    _recreate_database()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    from config.celery_app import app as celery_app
    from enclave_bridge import gateway
    from enclave_bridge.devstack import LocalEnclaveStack
    from prudencial.closing import services
    from prudencial.closing.models import Closing, LeverageResult
    from tests.closing.conftest import Workers, past_deadline, results_snapshot, second_enclave

    out: dict = {"agents": args.agents, "scenarios": args.scenarios, "chunk": args.chunk}
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalEnclaveStack(Path(tmp), enclave_args=["--workers", "1"])
        stack.start()
        try:
            settings.ENCLAVE_ADDRESS = stack.address
            settings.ENCLAVE_KMS_KEY_ID = stack.kms_key_id
            settings.ENCLAVE_TRUST_ROOT = str(stack.trust_root_path)
            settings.ENCLAVE_EXPECTED_PCRS = "measure"
            gateway.reset_gateways()
            gateway.ensure_unlocked(allow_new_keys=True)
            t0 = time.monotonic()
            week, user, made = setup_market(args.agents, stack)
            out["setup_s"] = round(time.monotonic() - t0, 1)
            if args.contracts:
                out["trade_network"] = upload_trade_network(
                    week, user, made, args.contracts, args.part_size
                )
                print(json.dumps(out["trade_network"]), flush=True)
            past_deadline(week)
            celery_app.conf.task_always_eager = False
            env = {
                "CLOSING_CHUNK_AGENTS": str(args.chunk),
                "CLOSING_NETWORK_SCENARIOS": str(args.scenarios),
                "ENCLAVE_TIMEOUT": "900",
                "LOG_LEVEL": "WARNING",
            }
            other = None
            snapshots = []
            for n in (1, 2)[: args.runs]:
                addresses = [stack.address]
                if n == 2:
                    other = second_enclave(stack)
                    addresses.append(other.address)
                group = Workers(stack, Path(tmp), addresses, env)
                group.start(n)
                celery_app.conf.task_default_queue = group.queue
                time.sleep(8)  # the workers' start is not the closing's time
                enclave_pids = [p.pid for p in stack.processes[-1:]]
                if other is not None:
                    enclave_pids += [p.pid for p in other.processes]
                pids = [p.pid for p in group.processes] + enclave_pids
                cpu0 = _cpu_seconds(pids)
                started = time.monotonic()
                closing = (
                    services.closing_start(week=week, by=user)
                    if n == 1
                    else services.closing_correct(week=week, by=user, why="bench: 2 workers")
                )
                while True:
                    closing.refresh_from_db()
                    if closing.state in ("done", "failed", "delayed"):
                        break
                    time.sleep(0.5)
                wall = time.monotonic() - started
                cpu = _cpu_seconds(pids) - cpu0
                group.stop()
                assert closing.state == "done", (closing.state, closing.error_message)
                snapshots.append(results_snapshot(closing.pk))
                out[f"run_{n}"] = {
                    "workers": n,
                    "enclaves": len(addresses),
                    "wall_s": round(wall, 1),
                    "cpu_s": round(cpu, 1),
                    "stage_times_s": Closing.objects.get(pk=closing.pk).stage_times,
                    "results": LeverageResult.objects.filter(closing=closing).count(),
                    "computed": LeverageResult.objects.filter(
                        closing=closing, status="computed"
                    ).count(),
                    "communities": closing.communities.count(),
                    "network_source": Closing.objects.get(pk=closing.pk).network_source,
                }
                print(json.dumps(out[f"run_{n}"]), flush=True)
            if len(snapshots) == 2:
                out["same_results"] = snapshots[0] == snapshots[1]
            if other is not None:
                other.stop()
        finally:
            stack.stop()
    out["machine"] = {
        "cpus": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
        "python": platform.python_version(),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--scenarios", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument(
        "--contracts", type=int, default=0,
        help="also upload the week's trade network of this many contracts, in parts (the "
        "closing then uses it instead of the counterparties' declarations)",
    )  # fmt: skip
    parser.add_argument("--part-size", type=int, default=25_000)
    parser.add_argument("--runs", type=int, choices=(1, 2), default=2, help="1: one worker only")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "closing.json"))
    args = parser.parse_args()
    out = run(args)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
