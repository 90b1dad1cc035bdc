"""Fixtures of the seal tests: a cycle, evaluations of two agents, the agents' users and
CCEE staff with the seal's permissions. The enclave fixtures are the submissions tests' own."""

from __future__ import annotations

from datetime import date

import pytest

from tests.submissions.conftest import enclave, enclave_settings, stack  # noqa: F401

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\nstartxref\n9\n%%EOF\n"


@pytest.fixture
def seal_staff(db):
    """A CCEE staff member with the seal's and the registry's view/change permissions."""
    from django.contrib.auth.models import Group, Permission

    from tests.factories import UserFactory

    group, _ = Group.objects.get_or_create(name="Equipe CCEE selo (teste)")
    group.permissions.set(
        Permission.objects.filter(content_type__app_label__in=["seal", "prudencial"]).exclude(
            codename__startswith="delete_"
        )
    )
    user = UserFactory(username="selo.staff", is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def other_user(agent_b):
    from tests.factories import UserFactory, grant

    user = UserFactory(username="ana.costa")
    grant(user, agent_b)
    return user


@pytest.fixture
def cycle(db):
    from seal import services

    return services.cycle_create(
        code="2026", starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31)
    )


@pytest.fixture
def evaluation_a(cycle, agent_a, seal_staff):
    from seal import services

    return services.evaluation_create(agent=agent_a, cycle=cycle, by=seal_staff)


@pytest.fixture
def evaluation_b(cycle, agent_b, seal_staff):
    from seal import services

    return services.evaluation_create(agent=agent_b, cycle=cycle, by=seal_staff)


def decide_all(evaluation, by, decision: str = "not_achieved", **overrides: str) -> None:
    """Every criterion decided (``overrides`` by code); the discrepancy stays not evaluated."""
    from seal import services

    for item in evaluation.items.select_related("criterion"):
        code = item.criterion.code
        if code == "discrepancy" and code not in overrides:
            continue
        services.item_decide(item=item, decision=overrides.get(code, decision), by=by)


def published(evaluation, by):
    """Decide, review, notify and publish once the response period is over."""
    from datetime import timedelta

    from django.utils import timezone

    from seal import services

    decide_all(evaluation, by, **{"fs-annual": "achieved", "contracts-daily": "achieved"})
    services.evaluation_transition(evaluation=evaluation, to="under_review", by=by)
    services.evaluation_transition(evaluation=evaluation, to="notified", by=by)
    evaluation.refresh_from_db()
    later = evaluation.response_ends_at + timedelta(seconds=1)
    assert later > timezone.now()
    return services.evaluation_transition(evaluation=evaluation, to="published", by=by, now=later)
