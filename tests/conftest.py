"""Shared fixtures. Kept light: nothing here touches the database unless a test asks for a
fixture that does, so the pure packages (tests/risk, tests/enclave, tests/attestation) run
without one. Django and project imports stay inside the fixtures for the same reason."""

from __future__ import annotations

import pytest

STAFF_GROUP = "Equipe CCEE (teste)"


def _tail(path, limit: int = 12000) -> str | None:
    try:
        data = path.read_bytes()
    except (OSError, AttributeError):
        return None
    return data[-limit:].decode("utf-8", "replace")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """A failed test that ran a real Celery worker or the enclave process shows their logs'
    tails: CI keeps only the report, and without them a stuck submission is a bare timeout."""
    report = yield
    if report.failed and hasattr(item, "funcargs"):
        worker = item.funcargs.get("worker")
        stack = item.funcargs.get("stack") or getattr(item.funcargs.get("enclave"), "stack", None)
        if isinstance(worker, dict) and (text := _tail(worker.get("log"))):
            report.sections.append(("Celery worker log (tail)", text))
        # tests/closing's ``workers`` starts groups of workers; their logs are in tmp_path.
        if "workers" in item.funcargs and "tmp_path" in item.funcargs:
            for log in sorted(item.funcargs["tmp_path"].glob("worker*.log")):
                if text := _tail(log, 8000):
                    report.sections.append((f"{log.name} (tail)", text))
        workdir = getattr(stack, "workdir", None)
        if workdir is not None:
            for name in ("enclave.log", "kms.log"):
                if text := _tail(workdir / name, 6000):
                    report.sections.append((f"{name} (tail)", text))
    return report


@pytest.fixture
def eager():
    """Celery tasks run in the test's process (no broker); the real-worker tests start their
    own `celery worker` (tests/submissions/conftest.py's ``worker``)."""
    from config.celery_app import app as celery_app

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture
def api_client():
    """An anonymous DRF test client."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(autouse=True)
def _staff_force_login_passes_the_second_factor(monkeypatch):
    """The admin asks staff for a TOTP code (prudencial.access.otp): ``force_login`` of a staff
    account also marks the session verified, as after typing a valid code. The second factor
    itself is tested through the login form (tests/access)."""
    from django.test import Client

    original = Client.force_login

    def force_login(self, user, backend=None):
        original(self, user, backend)
        if user.is_staff:
            from tests.access.helpers import verify_second_factor

            verify_second_factor(self, user)

    monkeypatch.setattr(Client, "force_login", force_login)


@pytest.fixture
def client_for(db):
    """client_for(user) → an APIClient that sends a real API token of the user (a new one,
    through prudencial.access's service, with the default lifetime)."""
    from rest_framework.test import APIClient

    from prudencial.access.tokens import token_create

    def make(user):
        _token, key = token_create(user=user, name="test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return make


@pytest.fixture
def staff_group(db):
    """CCEE staff: the global view permission on every prudencial model."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=STAFF_GROUP)
    group.permissions.set(
        Permission.objects.filter(
            content_type__app_label="prudencial", codename__startswith="view_"
        )
    )
    return group


@pytest.fixture
def staff_user(staff_group):
    from tests.factories import UserFactory

    user = UserFactory(username="ccee.staff", is_staff=True)
    user.groups.add(staff_group)
    return user


@pytest.fixture
def ccee_staff(db):
    """A staff member of the real "Equipe CCEE" group (setup_roles), not a superuser."""
    from prudencial.management.commands.setup_roles import setup_staff_group
    from tests.factories import UserFactory

    group, _ = setup_staff_group()
    user = UserFactory(username="equipe.ccee", is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def superuser(db):
    from tests.factories import UserFactory

    return UserFactory(username="ccee.admin", is_staff=True, is_superuser=True)


@pytest.fixture
def agent_a(db):
    from tests.factories import AgentFactory

    return AgentFactory(acronym="AGA")


@pytest.fixture
def agent_b(db):
    from tests.factories import AgentFactory

    return AgentFactory(acronym="AGB")


@pytest.fixture
def agent_user(agent_a):
    """A user who controls agent A (and nothing else), in force since 30 days ago."""
    from tests.factories import UserFactory, grant

    user = UserFactory(username="joao.silva")
    grant(user, agent_a)
    return user
