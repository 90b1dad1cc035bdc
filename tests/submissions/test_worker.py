"""End to end with a real Celery worker process on Redis, the real enclave process and
PostgreSQL: the POST answers 202 at once, the worker validates after commit; and a canary value
inside a submission never reaches the database (pg_dump), the logs of the application and the
worker, or the messages that passed through Redis (MONITOR on this run's Redis DB index)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import uuid
from urllib.parse import urlparse

import pytest
from django.conf import settings

from prudencial.submissions.models import Batch, Submission, Verdict
from tests.submissions.conftest import (
    WEEK,
    counterparties,
    encrypt_for_enclave,
    open_week,
    portfolio,
    wait_for,
)


@pytest.fixture
def setup(worker, enclave, client_for):
    from tests.factories import AgentFactory, UserFactory, grant

    week = open_week()
    trader = AgentFactory(acronym="CM47", agent_class="trader")
    generator = AgentFactory(acronym="GE12", agent_class="generator")
    user = UserFactory(username="ana.lima")
    grant(user, trader)
    grant(user, generator)
    return {"week": week, "trader": trader, "generator": generator, "api": client_for(user)}


def _verdict(submission_id: int):
    return Verdict.objects.filter(submission_id=submission_id).first()


def test_submitted_through_the_api_and_validated_by_the_worker(setup, worker):
    api, trader = setup["api"], setup["trader"]
    response = api.post(
        f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/",
        {"jwe": encrypt_for_enclave(portfolio(trader))},
        format="json",
    )
    assert response.status_code == 202
    verdict = wait_for(lambda: _verdict(response.json()["id"]), worker)
    assert verdict.status == "accepted"
    [row] = api.get(f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/submissions/").json()
    assert row["status"] == "accepted" and row["verdict_verified"] and row["is_current"]


class RedisMonitor:
    """`redis-cli MONITOR` in a subprocess: every command Redis runs, while the test runs."""

    def __init__(self, url: str, path):
        parsed = urlparse(url)
        self.db = int((parsed.path or "/0").lstrip("/") or 0)
        self.path = path
        self._out = path.open("wb")
        self.process = subprocess.Popen(
            [
                "redis-cli", "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379),
                "MONITOR",
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._out.close()
        return self.path.read_text("utf-8", errors="replace")

    def our_lines(self, text: str) -> list[str]:
        """Commands on this run's DB index only (other helpers use other indexes)."""
        return [line for line in text.splitlines() if f"[{self.db} " in line]


def _decoded(lines: list[str]) -> str:
    """The lines, plus every Celery message body in them decoded (kombu sends base64 bodies):
    a canary hidden by the transport's encoding would still be found."""
    out = list(lines)
    for line in lines:
        for quoted in re.findall(r'"((?:[^"\\]|\\.)*)"', line):
            text = quoted.encode().decode("unicode_escape", errors="replace")
            try:
                message = json.loads(text)
            except ValueError:
                continue
            if isinstance(message, dict) and isinstance(message.get("body"), str):
                try:
                    out.append(base64.b64decode(message["body"]).decode("utf-8", "replace"))
                except ValueError:
                    out.append(message["body"])
    return "\n".join(out)


def _pg_dump() -> str:
    db = settings.DATABASES["default"]
    command = [
        shutil.which("pg_dump") or "pg_dump",
        "-h", db.get("HOST") or "127.0.0.1", "-p", str(db.get("PORT") or 5432),
        "-U", db.get("USER") or "postgres", "--data-only", db["NAME"],
    ]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    return subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout


def test_a_canary_never_leaves_the_envelope(setup, worker, tmp_path, caplog):
    if not shutil.which("redis-cli") or not shutil.which("pg_dump"):
        pytest.skip("needs redis-cli and pg_dump")
    caplog.set_level("DEBUG")
    api, trader, generator = setup["api"], setup["trader"], setup["generator"]
    canary = f"CANARIO-{uuid.uuid4().hex}"
    monitor = RedisMonitor(os.environ["REDIS_URL"], tmp_path / "redis-monitor.log")
    try:
        single = api.post(
            f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/counterparties/",
            {"jwe": encrypt_for_enclave(counterparties(trader, generator, mitigants=canary))},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"canary-{canary[-8:]}",
        )
        assert single.status_code == 202, single.content
        bad = portfolio(trader)
        bad["contracts"][0]["amount_brl"] = 0.0
        bad["contracts"][0]["submarket"] = canary  # a refused value is never echoed either
        refused = api.post(
            f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/",
            {"jwe": encrypt_for_enclave(bad)},
            format="json",
        )
        batch = api.post(
            f"/api/v1/weeks/{WEEK}/batch/",
            {
                "jwe": encrypt_for_enclave(
                    {
                        "schema": "prudencial/batch/v1",
                        "week": WEEK,
                        "portfolios": [portfolio(generator)],
                        "counterparties": [counterparties(generator, trader, mitigants=canary)],
                    }
                ),
                "agents": [generator.pk],
            },
            format="json",
        )
        assert batch.status_code == 202, batch.content
        ids = [single.json()["id"], refused.json()["id"]]
        wait_for(lambda: all(_verdict(i) for i in ids), worker)
        wait_for(lambda: Batch.objects.get(pk=batch.json()["id"]).status != "received", worker)
        api.get(f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/submissions/")
        api.get(f"/api/v1/weeks/{WEEK}/progress/")
        api.get(f"/api/v1/batches/{batch.json()['id']}/")
    finally:
        redis_text = monitor.stop()

    assert _verdict(ids[0]).status == "accepted"
    assert _verdict(ids[1]).status == "rejected"
    assert Batch.objects.get(pk=batch.json()["id"]).status == "accepted"
    assert Submission.objects.filter(batch_id=batch.json()["id"]).count() == 2

    dump = _pg_dump()
    assert single.json()["receipt"] in dump  # the dump is of the database we wrote
    assert canary not in dump

    ours = monitor.our_lines(redis_text)
    assert any("submissions.validate_submission" in line for line in ours), "MONITOR saw nothing"
    assert canary not in _decoded(ours)
    assert canary not in redis_text

    worker_log = worker["log"].read_text("utf-8", errors="replace")
    assert "submissions.validate_submission" in worker_log  # the worker's log is captured
    assert canary not in worker_log
    app_log = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records and canary not in app_log
