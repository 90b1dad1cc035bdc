"""Times: Brasília wall-clock in, UTC in the database, Brasília with offset out of the API."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from prudencial.models import Week
from tests.factories import brasilia, week_with_parameters

pytestmark = pytest.mark.django_db


def stored_deadline(week: Week) -> datetime:
    """The deadline as the database holds it, read without the ORM, as naive UTC."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadline FROM prudencial_week WHERE id = %s", [week.pk])
        raw = cursor.fetchone()[0]
    if isinstance(raw, str):
        raw = datetime.fromisoformat(raw)
    if raw.tzinfo is None:  # SQLite: naive, in UTC
        return raw
    return raw.astimezone(UTC).replace(tzinfo=None)


def test_settings():
    assert settings.USE_TZ is True
    assert settings.TIME_ZONE == "America/Sao_Paulo"


def test_brasilia_evening_is_stored_as_utc():
    week = week_with_parameters(
        opens_at=brasilia(date(2023, 3, 13)), deadline=brasilia(date(2023, 3, 15), 20)
    )
    assert stored_deadline(week) == datetime(2023, 3, 15, 23, 0)

    week.refresh_from_db()
    assert week.deadline == datetime(2023, 3, 15, 23, 0, tzinfo=UTC)
    local = timezone.localtime(week.deadline)
    assert (local.hour, local.utcoffset().total_seconds()) == (20, -3 * 3600)


def test_naive_times_are_taken_as_brasilia():
    aware = timezone.make_aware(datetime(2023, 3, 15, 20, 0))
    assert aware.astimezone(UTC) == datetime(2023, 3, 15, 23, 0, tzinfo=UTC)


def test_the_zone_database_is_used_not_a_fixed_offset():
    # Brasília kept daylight saving time until February 2019 (UTC−2).
    week = week_with_parameters(
        opens_at=brasilia(date(2018, 12, 3)), deadline=brasilia(date(2018, 12, 10), 20)
    )
    assert stored_deadline(week) == datetime(2018, 12, 10, 22, 0)


def test_api_renders_brasilia_time_with_offset(client_for, agent_user):
    week = week_with_parameters(
        opens_at=brasilia(date(2023, 3, 13)), deadline=brasilia(date(2023, 3, 15), 20)
    )
    body = client_for(agent_user).get(f"/api/v1/weeks/{week.code}/").json()
    assert body["deadline"] == "2023-03-15T20:00:00-03:00"
    assert body["opens_at"] == "2023-03-13T00:00:00-03:00"
