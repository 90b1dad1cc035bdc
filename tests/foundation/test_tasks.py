"""Celery tasks: registered under the names beat uses, idempotent when run eagerly, and one round
trip through a real worker process on Redis against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.utils import timezone

from config.celery_app import app as celery_app
from prudencial import tasks
from prudencial.models import AgentUserObjectPermission, Representation, Week, WeekStatus
from tests.factories import AgentFactory, UserFactory, grant, today, week_with_parameters

TASK_NAMES = {
    "prudencial.tasks.open_due_weeks",
    "prudencial.tasks.close_due_weeks",
    "prudencial.tasks.expire_representations",
    "submissions.dispatch_pending",
    "closing.start_due_closings",
    "closing.resume_stalled_closings",
    "closing.publish_due_weeks",
}
PROJECT_DIR = Path(__file__).resolve().parents[2]


def due_week() -> Week:
    """A scheduled week with parameters whose window is open right now."""
    now = timezone.now()
    return week_with_parameters(opens_at=now - timedelta(hours=1), deadline=now + timedelta(days=1))


def stale_representation():
    """A representation whose last day has passed while its permissions are still there, as
    when beat has not run since: granted while in force, then its end moved into the past."""
    user, agent = UserFactory(), AgentFactory()
    representation = grant(user, agent, valid_until=today() + timedelta(days=5))
    Representation.objects.filter(pk=representation.pk).update(
        valid_until=today() - timedelta(days=1)
    )
    assert AgentUserObjectPermission.objects.filter(user=user, content_object=agent).exists()
    return user, agent


def test_every_task_is_registered_and_every_beat_entry_names_one():
    assert set(celery_app.tasks) >= TASK_NAMES
    scheduled = {entry["task"] for entry in settings.PRUDENCIAL_BEAT_SCHEDULE.values()}
    assert scheduled == TASK_NAMES
    # Beat would write a Celery beat_schedule over the tables staff edit: there must be none.
    assert not celery_app.conf.beat_schedule


@pytest.mark.django_db
def test_open_due_weeks_task_is_idempotent():
    week = due_week()
    assert tasks.open_due_weeks.apply().get() == [week.code]
    assert tasks.open_due_weeks.apply().get() == []
    week.refresh_from_db()
    assert week.status == WeekStatus.OPEN


@pytest.mark.django_db
def test_close_due_weeks_task_is_idempotent():
    now = timezone.now()
    week = week_with_parameters(
        opens_at=now - timedelta(days=2), deadline=now - timedelta(minutes=1)
    )
    Week.objects.filter(pk=week.pk).update(status=WeekStatus.OPEN)
    still_open = week_with_parameters(
        opens_at=now - timedelta(days=1), deadline=now + timedelta(days=1)
    )
    Week.objects.filter(pk=still_open.pk).update(status=WeekStatus.OPEN)

    assert tasks.close_due_weeks.apply().get() == [week.code]
    assert tasks.close_due_weeks.apply().get() == []
    assert dict(Week.objects.values_list("code", "status")) == {
        week.code: "closed",
        still_open.code: "open",
    }


@pytest.mark.django_db
def test_expire_representations_task_is_idempotent():
    user, agent = stale_representation()
    kept_user = UserFactory()
    grant(kept_user, agent)

    assert tasks.expire_representations.apply().get() >= 1
    assert not AgentUserObjectPermission.objects.filter(user=user).exists()
    kept = set(
        AgentUserObjectPermission.objects.filter(user=kept_user).values_list("pk", flat=True)
    )
    assert len(kept) == 3

    tasks.expire_representations.apply().get()
    assert not AgentUserObjectPermission.objects.filter(user=user).exists()
    assert (
        set(AgentUserObjectPermission.objects.filter(user=kept_user).values_list("pk", flat=True))
        == kept
    )


@pytest.mark.django_db
def test_a_task_sent_from_a_write_waits_for_the_commit(django_capture_on_commit_callbacks):
    """Every task is Celery's DjangoTask: delay_on_commit sends nothing until the transaction
    commits, so a worker never looks for a row that is not there yet."""
    # Run what is sent in-process (with REDIS_URL set, as in CI, it would go to the broker).
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        _open_a_week_on_commit(django_capture_on_commit_callbacks)
    finally:
        celery_app.conf.task_always_eager = eager


def _open_a_week_on_commit(django_capture_on_commit_callbacks) -> None:
    week = due_week()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        tasks.open_due_weeks.delay_on_commit()
        week.refresh_from_db()
        assert week.status == WeekStatus.SCHEDULED  # not sent yet
    assert len(callbacks) == 1
    week.refresh_from_db()
    assert week.status == WeekStatus.OPEN


# --- a real worker ---------------------------------------------------------------------------


def _database_url(db: dict) -> str:
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def _wait(result, worker: subprocess.Popen, log: Path, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while not result.ready():
        if worker.poll() is not None:
            pytest.fail(f"the Celery worker exited with {worker.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no result from the Celery worker in {timeout}s:\n{log.read_text()}")
        time.sleep(0.1)
    return result.get(timeout=5)


@pytest.fixture
def celery_worker_process(tmp_path):
    """A real `celery worker` on its own queue, against this test's (committed) database."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is unset: the real-worker test needs a Redis broker")
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        pytest.skip(
            "the test database is SQLite in memory, which another process cannot open: "
            "set DATABASE_URL to PostgreSQL to run the real-worker test"
        )
    queue = f"foundation-test-{uuid.uuid4().hex}"  # no other worker may take our messages
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(db),  # the test database, test_<name>
        "DATABASE_CONN_MAX_AGE": "0",  # no connection left open when the test database goes
        "REDIS_URL": os.environ["REDIS_URL"],
    }
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config.celery_app", "worker",
                "--pool=solo", "-Q", queue, "-n", f"{queue}@%h", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
            ],
            cwd=PROJECT_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield {"queue": queue, "process": worker, "log": log}
    finally:
        celery_app.conf.task_always_eager = eager
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        with celery_app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_the_tasks_against_the_database(celery_worker_process):
    queue, worker, log = (celery_worker_process[k] for k in ("queue", "process", "log"))
    assert celery_app.conf.broker_url.startswith("redis://")
    user, agent = stale_representation()
    week = due_week()

    expired = tasks.expire_representations.apply_async(queue=queue)
    assert _wait(expired, worker, log) >= 1
    assert not AgentUserObjectPermission.objects.filter(user=user, content_object=agent).exists()

    opened = tasks.open_due_weeks.apply_async(queue=queue)
    assert _wait(opened, worker, log) == [week.code]
    week.refresh_from_db()
    assert week.status == WeekStatus.OPEN
    assert "succeeded" in log.read_text()
