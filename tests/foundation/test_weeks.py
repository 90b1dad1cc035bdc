"""Weeks: codes, database constraints, the lifecycle (every pair of statuses), the beat services
that open and close them, and the parameters a new week inherits."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from prudencial.api.errors import exception_handler
from prudencial.exceptions import TransitionError
from prudencial.models import ParameterBucket, RiskParameters, Week, WeekStatus
from prudencial.services.parameters import BUCKET_FIELDS
from prudencial.services.weeks import (
    close_due_weeks,
    next_week_code,
    open_due_weeks,
    week_create,
    week_open,
    week_transition,
)
from tests.factories import (
    PLD_CAP,
    PLD_FLOOR,
    WeekFactory,
    brasilia,
    correlation_matrix,
    default_buckets,
    save_parameters,
    week_with_parameters,
)

pytestmark = pytest.mark.django_db

MARCH = date(2023, 3, 1)
LABELS = {
    "scheduled": "Agendada",
    "open": "Aberta",
    "closed": "Encerrada",
    "computed": "Calculada",
    "published": "Publicada",
}
ALLOWED = {
    ("scheduled", "open"),
    ("open", "closed"),
    ("closed", "computed"),
    ("computed", "published"),
}
NEXT = {"scheduled": "Aberta", "open": "Encerrada", "closed": "Calculada", "computed": "Publicada"}


def week_starting(start: date, **kwargs) -> Week:
    return WeekFactory(operation_start=start, operation_end=start + timedelta(days=6), **kwargs)


def set_status(week: Week, status: str) -> Week:
    """Put a week in a status without the lifecycle (test set-up only)."""
    Week.objects.filter(pk=week.pk).update(status=status)
    week.refresh_from_db()
    return week


# --- codes -----------------------------------------------------------------------------------


def test_first_code_of_a_month():
    assert next_week_code(MARCH) == "202303001"
    assert next_week_code(date(2023, 12, 17)) == "202312001"


def test_codes_follow_the_operation_end_month():
    first = week_starting(date(2023, 3, 6))
    second = week_starting(date(2023, 3, 13))
    across = week_starting(date(2023, 3, 27))  # ends on 2 April
    january = week_starting(date(2022, 12, 26))  # ends on 1 January
    assert [first.code, second.code, across.code, january.code] == [
        "202303001",
        "202303002",
        "202304001",
        "202301001",
    ]
    assert next_week_code(MARCH) == "202303003"
    assert next_week_code(date(2023, 5, 1)) == "202305001"


def test_next_code_follows_the_highest_not_the_count():
    week_starting(date(2023, 3, 6), code="202303005")
    assert next_week_code(MARCH) == "202303006"


def test_a_month_holds_at_most_999_weeks():
    week_starting(date(2023, 3, 6), code="202303998")
    assert next_week_code(MARCH) == "202303999"
    week_starting(date(2023, 3, 13), code="202303999")
    with pytest.raises(ValidationError) as info:
        next_week_code(MARCH)
    assert info.value.message_dict == {"code": ["O mês 202303 já tem 999 semanas."]}
    with pytest.raises(ValidationError):
        week_starting(date(2023, 3, 20))
    assert Week.objects.count() == 2


def test_duplicate_code_through_the_service_names_the_field():
    week_starting(date(2023, 3, 6), code="202303001")
    with pytest.raises(ValidationError) as info:
        week_starting(date(2023, 3, 13), code="202303001")
    assert list(info.value.message_dict) == ["code"]


def test_an_explicit_code_must_be_of_the_operation_end_month():
    with pytest.raises(ValidationError) as info:
        week_starting(date(2023, 3, 6), code="202301001")
    assert "code" in info.value.message_dict
    assert not Week.objects.exists()


def test_window_out_of_order_is_refused_by_the_service():
    start = date(2023, 3, 6)
    with pytest.raises(ValidationError):
        week_create(
            operation_start=start,
            operation_end=start + timedelta(days=6),
            opens_at=brasilia(date(2023, 3, 15), 20),
            deadline=brasilia(date(2023, 3, 15), 20),
        )
    assert not Week.objects.exists()


# --- database constraints (bypassing the services) -------------------------------------------


def valid_week_fields(**overrides) -> dict:
    fields = {
        "code": "202303001",
        "operation_start": date(2023, 3, 6),
        "operation_end": date(2023, 3, 12),
        "opens_at": brasilia(date(2023, 3, 13)),
        "deadline": brasilia(date(2023, 3, 15), 20),
    }
    return {**fields, **overrides}


def test_the_valid_fields_are_accepted():
    assert Week.objects.create(**valid_week_fields()).status == WeekStatus.SCHEDULED


@pytest.mark.parametrize(
    "overrides",
    [
        {"opens_at": brasilia(date(2023, 3, 15), 20)},  # = deadline
        {"opens_at": brasilia(date(2023, 3, 16))},  # after the deadline
        {"operation_end": date(2023, 3, 6)},  # = start
        {"operation_end": date(2023, 3, 1)},  # before the start
        {"code": "202313001"},  # month 13
        {"code": "202300001"},  # month 0
        {"code": "20230301"},  # 8 characters
        {"code": "2023A3001"},
        {"code": "20230300a"},
        {"code": ""},
        {"status": "draft"},
    ],
    ids=repr,
)
def test_database_refuses_a_broken_week(overrides):
    with pytest.raises(IntegrityError), transaction.atomic():
        Week.objects.create(**valid_week_fields(**overrides))
    assert not Week.objects.exists()


def test_database_refuses_a_duplicate_code():
    Week.objects.create(**valid_week_fields())
    with pytest.raises(IntegrityError), transaction.atomic():
        Week.objects.create(**valid_week_fields(operation_start=date(2023, 3, 7)))
    assert Week.objects.count() == 1


# --- lifecycle -------------------------------------------------------------------------------

PAIRS = list(itertools.product(LABELS, LABELS))


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_transition(current, target):
    week = week_with_parameters() if current == "scheduled" else set_status(WeekFactory(), current)

    if (current, target) in ALLOWED:
        returned = week_transition(week=week, to=target)
        assert returned.status == target
        assert week.status == target
        week.refresh_from_db()
        assert week.status == target
        assert week.history.first().status == target
        return

    with pytest.raises(TransitionError) as info:
        week_transition(week=week, to=target)
    allowed = NEXT.get(current, "nenhuma")
    assert info.value.messages == [
        f"A semana {week.code} está {LABELS[current]}: não pode passar para "
        f"{LABELS[target]}. Transição permitida: {allowed}."
    ]
    assert info.value.code == "invalid_transition"
    week.refresh_from_db()
    assert week.status == current


def test_a_transition_records_who_made_it_in_the_history(superuser):
    week = week_with_parameters()
    week_transition(week=week, to=WeekStatus.OPEN, by=superuser)  # e.g. a command, no request
    week_transition(week=week, to=WeekStatus.CLOSED)  # beat: nobody
    records = list(week.history.order_by("history_id").values_list("status", "history_user"))
    assert records[-2:] == [("open", superuser.pk), ("closed", None)]


def test_transition_checks_the_stored_status_not_a_stale_copy():
    week = week_with_parameters()
    stale = Week.objects.get(pk=week.pk)
    week_open(week=week)
    with pytest.raises(TransitionError):
        week_open(week=stale)
    assert Week.objects.get(pk=week.pk).status == WeekStatus.OPEN


def test_unknown_status_is_refused():
    week = WeekFactory()
    with pytest.raises(ValueError):
        week_transition(week=week, to="draft")
    week.refresh_from_db()
    assert week.status == WeekStatus.SCHEDULED


def test_transition_error_is_http_409_in_the_api():
    response = exception_handler(TransitionError("não pode", code="invalid_transition"), {})
    assert response.status_code == 409
    assert response.data == {
        "error": {"code": "invalid_transition", "message": "não pode", "fields": {}}
    }


def test_opening_without_parameters_is_refused():
    week = WeekFactory()
    assert not RiskParameters.objects.filter(week=week).exists()
    with pytest.raises(TransitionError) as info:
        week_open(week=week)
    assert info.value.code == "parameters_missing"
    assert info.value.messages == [
        f"A semana {week.code} não tem parâmetros CCEE: cadastre-os antes de abrir."
    ]
    week.refresh_from_db()
    assert week.status == WeekStatus.SCHEDULED


def test_opening_with_missing_buckets_is_refused():
    week = week_with_parameters()
    ParameterBucket.objects.filter(parameters__week=week, index=6).delete()
    with pytest.raises(TransitionError) as info:
        week_open(week=week)
    assert info.value.code == "parameters_incomplete"
    week.refresh_from_db()
    assert week.status == WeekStatus.SCHEDULED


# --- beat: open and close by the clock -------------------------------------------------------


def test_open_due_weeks_opens_only_due_weeks_with_parameters_and_is_idempotent():
    due = week_with_parameters(operation_start=date(2023, 3, 6))
    no_parameters = week_starting(date(2023, 3, 13))
    RiskParameters.objects.filter(week=no_parameters).delete()  # it had copied due's
    no_parameters.opens_at = due.opens_at
    no_parameters.deadline = due.deadline
    no_parameters.save()
    future = week_starting(date(2023, 3, 20))
    missed = week_starting(date(2023, 2, 27))
    missed.opens_at = due.opens_at - timedelta(days=5)
    missed.deadline = due.opens_at - timedelta(minutes=1)
    missed.save()
    now = due.opens_at  # the boundary: opens at opens_at

    assert open_due_weeks(now=now) == [due.code]
    assert open_due_weeks(now=now) == []

    statuses = dict(Week.objects.values_list("code", "status"))
    assert statuses == {
        due.code: "open",
        no_parameters.code: "scheduled",
        future.code: "scheduled",
        missed.code: "scheduled",
    }


def test_open_due_weeks_does_nothing_before_the_window():
    week = week_with_parameters()
    assert open_due_weeks(now=week.opens_at - timedelta(seconds=1)) == []
    week.refresh_from_db()
    assert week.status == WeekStatus.SCHEDULED


def test_close_due_weeks_closes_open_weeks_past_their_deadline_and_is_idempotent():
    due = week_with_parameters(operation_start=date(2023, 3, 6))
    later = week_with_parameters(operation_start=date(2023, 3, 13))
    scheduled = week_starting(date(2023, 2, 27))
    assert open_due_weeks(now=due.opens_at) == [due.code]
    assert open_due_weeks(now=later.opens_at) == [later.code]
    assert set(Week.objects.filter(status="open").values_list("code", flat=True)) == {
        due.code,
        later.code,
    }
    now = due.deadline  # the boundary: closes at the deadline

    assert close_due_weeks(now=now) == [due.code]
    assert close_due_weeks(now=now) == []

    statuses = dict(Week.objects.values_list("code", "status"))
    assert statuses == {due.code: "closed", later.code: "open", scheduled.code: "scheduled"}
    assert close_due_weeks(now=now - timedelta(seconds=1)) == []


# --- parameters a new week inherits ----------------------------------------------------------


def parameters_snapshot(week: Week) -> dict:
    parameters = RiskParameters.objects.get(week=week)
    return {
        "scalars": {
            f: getattr(parameters, f)
            for f in (
                "confidence",
                "liquidation_days",
                "pld_floor",
                "pld_cap",
                "k",
                "theta",
                "netting",
                "sigma_period",
                "fa_alert_threshold",
            )
        },
        "correlation": parameters.correlation,
        "buckets": list(
            ParameterBucket.objects.filter(parameters=parameters)
            .order_by("index")
            .values("index", *BUCKET_FIELDS)
        ),
    }


def test_week_create_copies_the_previous_weeks_parameters():
    march = week_with_parameters(operation_start=date(2023, 3, 6))
    april = week_starting(date(2023, 3, 27))  # ends in April: code 202304001

    assert april.code == "202304001"
    copied = RiskParameters.objects.get(week=april)
    assert copied.first_month == date(2023, 4, 1)
    assert parameters_snapshot(april) == parameters_snapshot(march)
    assert len(parameters_snapshot(april)["buckets"]) == 7
    assert copied.correlation == correlation_matrix()
    # Own rows, not shared ones.
    assert copied.pk != march.parameters.pk
    assert not set(copied.buckets.values_list("pk", flat=True)) & set(
        march.parameters.buckets.values_list("pk", flat=True)
    )


def test_week_create_copies_the_latest_earlier_week():
    week_with_parameters(operation_start=date(2023, 3, 6))
    second = week_with_parameters(
        operation_start=date(2023, 3, 13), correlation=correlation_matrix(0.5)
    )
    third = week_starting(date(2023, 3, 20))
    assert RiskParameters.objects.get(week=third).correlation == correlation_matrix(0.5)
    assert parameters_snapshot(third) == parameters_snapshot(second)


def test_week_create_copies_nothing_from_later_weeks():
    week_with_parameters(operation_start=date(2023, 3, 6))
    earlier = week_starting(date(2023, 1, 2))
    assert not RiskParameters.objects.filter(week=earlier).exists()


@pytest.mark.parametrize("status", ["computed", "published"])
def test_parameters_are_frozen_once_computed(status):
    week = set_status(week_with_parameters(), status)
    before = parameters_snapshot(week)
    with pytest.raises(ValidationError) as info:
        save_parameters(
            week=week,
            first_month=MARCH,
            correlation=correlation_matrix(0.5),
            buckets=default_buckets(),
            pld_floor=PLD_FLOOR,
            pld_cap=PLD_CAP,
        )
    assert info.value.message_dict == {
        "week": [f"A semana {week.code} já foi calculada; seus parâmetros não podem mudar."]
    }
    assert parameters_snapshot(week) == before


@pytest.mark.parametrize("status", ["scheduled", "open", "closed"])
def test_parameters_may_change_until_computed(status):
    week = set_status(week_with_parameters(), status)
    save_parameters(
        week=week,
        first_month=MARCH,
        correlation=correlation_matrix(0.5),
        buckets=default_buckets(),
        pld_floor=Decimal("61.07"),
        pld_cap=PLD_CAP,
    )
    after = parameters_snapshot(week)
    assert after["correlation"] == correlation_matrix(0.5)
    assert after["scalars"]["pld_floor"] == Decimal("61.07")
    assert len(after["buckets"]) == 7


def test_a_scheduled_week_that_missed_its_window_is_reported(caplog):
    week = week_starting(date(2023, 3, 6))  # no parameters: it cannot open
    with caplog.at_level("ERROR", logger="prudencial.services.weeks"):
        assert open_due_weeks(now=week.deadline + timedelta(hours=1)) == []
    assert f"week {week.code} missed its whole window" in caplog.text
