"""Fixtures of the alerts tests: closing rows created directly (no enclave), a week with its
parameters, the agent's users and staff with e-mail addresses, Celery eager."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import models
from django.utils import timezone

_counter = itertools.count(1)


def build(model, context=None, **values):
    """A row of ``model`` with ``values``; every other required field gets a plain value of its
    type (a related row is built the same way), so the fixtures hold whatever the closing app's
    models require beyond the contract's fields."""
    context = dict(context or {})
    for value in values.values():
        if isinstance(value, models.Model):
            context.setdefault(type(value), value)
    for field in model._meta.concrete_fields:
        if field.primary_key or field.name in values or field.attname in values:
            continue
        if field.null or field.has_default() or getattr(field, "auto_now", False):
            continue
        if getattr(field, "auto_now_add", False):
            continue
        if isinstance(field, models.ForeignKey):
            related = context.get(field.related_model)
            values[field.name] = related or build(field.related_model, context)
        elif field.choices:
            values[field.name] = field.choices[0][0]
        elif isinstance(field, models.JSONField):
            values[field.name] = {}
        elif isinstance(field, models.BooleanField):
            values[field.name] = False
        elif isinstance(field, models.IntegerField | models.FloatField | models.DecimalField):
            values[field.name] = next(_counter)
        elif isinstance(field, models.DateTimeField):
            values[field.name] = timezone.now()
        elif field.name.endswith("sha256"):
            values[field.name] = "0" * 64
        elif isinstance(field, models.CharField | models.TextField):
            size = field.max_length or 64
            values[field.name] = (f"x{next(_counter)}" * 64)[: min(size, 64)]
        else:
            raise NotImplementedError(f"{model.__name__}.{field.name}")
    return model.objects.create(**values)


@pytest.fixture
def week(db):
    from prudencial.services.parameters import parameters_save
    from tests.factories import week_with_parameters

    week = week_with_parameters()
    parameters_save(
        week=week,
        fields={
            "fa_bands": [{"code": "attention", "from": 0.8}, {"code": "alert", "from": 1.0}],
            "concentration_limit_largest": 0.25,
            "concentration_limit_top_five": 1.0,
        },
        buckets={},
    )
    week.refresh_from_db()
    return week


@pytest.fixture
def staff_member(db, settings):
    """A CCEE staff member of the real "Equipe CCEE" group (setup_roles), e-mailed by default."""
    from prudencial.management.commands.setup_roles import setup_staff_group
    from tests.factories import UserFactory

    group, _ = setup_staff_group()
    settings.ALERTS_STAFF_GROUP = group.name
    settings.ALERTS_STAFF_EMAILS = []
    user = UserFactory(username="analista.ccee", is_staff=True, email="Analista@CCEE.example")
    user.groups.add(group)
    return user


@pytest.fixture
def other_user(agent_b):
    """A user who controls agent B only."""
    from tests.factories import UserFactory, grant

    user = UserFactory(username="maria.outra")
    grant(user, agent_b)
    return user


@pytest.fixture
def make_closing(db):
    def make(week, *, sequence=1, state="done", is_current=True, supersedes=None, **extra):
        from prudencial.closing.models import Closing

        return build(
            Closing,
            week=week,
            sequence=sequence,
            state=state,
            is_current=is_current,
            supersedes=supersedes,
            **extra,
        )

    return make


@pytest.fixture
def make_result(db):
    def make(closing, agent, *, status="computed", fa=None, largest=None, top_five=None):
        from prudencial.closing.models import LeverageResult

        return build(
            LeverageResult,
            {type(closing.week): closing.week},
            closing=closing,
            agent=agent,
            status=status,
            fa=fa,
            concentration_largest=largest,
            concentration_top_five=top_five,
        )

    return make


@pytest.fixture
def send_decision(db):
    def send(result, by, action="sent"):
        from prudencial.closing.models import LeverageDecision

        reason = "" if action == "sent" else "Revisar o portfólio."
        return build(
            LeverageDecision,
            {type(result.closing): result.closing},
            result=result,
            action=action,
            by=by,
            reason=reason,
        )

    return send


@pytest.fixture
def past():
    return timezone.now() - timedelta(days=30)
