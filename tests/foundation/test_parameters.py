"""CCEE parameters: the correlation matrix rules, the seven buckets, the PLD bounds, the payload
for the risk engine and the week detail in the API."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from prudencial.models import ParameterBucket, RiskParameters
from prudencial.services.parameters import parameters_payload, validate_correlation
from tests.factories import (
    PLD_CAP,
    PLD_FLOOR,
    WeekFactory,
    correlation_matrix,
    default_buckets,
    save_parameters,
    week_with_parameters,
)

pytestmark = pytest.mark.django_db

MARCH = date(2023, 3, 1)


def broken(change) -> list[list[float]]:
    matrix = copy.deepcopy(correlation_matrix())
    change(matrix)
    return matrix


def _asymmetric(m):
    m[0][1] = 0.5


def _diagonal(m):
    m[3][3] = 0.99


def _out_of_range(m):
    m[0][1] = m[1][0] = 1.5


def _below_minus_one(m):
    m[2][5] = m[5][2] = -1.01


def _not_psd(m):
    # ρ01 = ρ12 = 0.9 but ρ02 = −0.9: impossible together (smallest eigenvalue −0.8).
    for i in range(7):
        for j in range(7):
            m[i][j] = 1.0 if i == j else 0.0
    m[0][1] = m[1][0] = m[1][2] = m[2][1] = 0.9
    m[0][2] = m[2][0] = -0.9


def _not_a_number(m):
    m[1][4] = m[4][1] = "x"


BAD_CORRELATIONS = {
    "not symmetric": broken(_asymmetric),
    "diagonal not 1": broken(_diagonal),
    "entry above 1": broken(_out_of_range),
    "entry below -1": broken(_below_minus_one),
    "not PSD": broken(_not_psd),
    "6x6": correlation_matrix(n=6),
    "8x8": correlation_matrix(n=8),
    "ragged": [row[: 7 - (i % 2)] for i, row in enumerate(correlation_matrix())],
    "7 rows of 6": [row[:6] for row in correlation_matrix()],
    "flat list": [1.0] * 49,
    "not a matrix": "identity",
    "null": None,
    "text entry": broken(_not_a_number),
}


@pytest.mark.parametrize("matrix", BAD_CORRELATIONS.values(), ids=BAD_CORRELATIONS.keys())
def test_bad_correlation_is_refused_naming_the_field(matrix):
    with pytest.raises(ValidationError) as info:
        validate_correlation(matrix)
    assert list(info.value.message_dict) == ["correlation"]
    assert "correlation" in info.value.message_dict["correlation"][0]


@pytest.mark.parametrize(
    "matrix",
    [
        correlation_matrix(),
        correlation_matrix(0.0),
        correlation_matrix(1.0),
        correlation_matrix(-0.5),
    ],
    ids=["0.9^|i-j|", "identity", "all ones", "-0.5^|i-j|"],
)
def test_valid_correlations_are_accepted(matrix):
    validate_correlation(matrix)


@pytest.mark.parametrize("matrix", BAD_CORRELATIONS.values(), ids=BAD_CORRELATIONS.keys())
def test_parameters_save_refuses_a_bad_correlation_and_keeps_the_old_parameters(matrix):
    week = week_with_parameters()
    with pytest.raises(ValidationError) as info:
        save_parameters(
            week=week,
            first_month=MARCH,
            correlation=matrix,
            buckets=default_buckets(),
            pld_floor=PLD_FLOOR,
            pld_cap=PLD_CAP,
        )
    assert "correlation" in info.value.message_dict
    parameters = RiskParameters.objects.get(week=week)
    assert parameters.correlation == correlation_matrix()
    assert parameters.buckets.count() == 7


@pytest.mark.parametrize("count", [0, 6, 8])
def test_exactly_seven_buckets(count):
    week = WeekFactory()
    buckets = (default_buckets() * 2)[:count]
    with pytest.raises(ValidationError) as info:
        save_parameters(
            week=week,
            first_month=MARCH,
            correlation=correlation_matrix(),
            buckets=buckets,
            pld_floor=PLD_FLOOR,
            pld_cap=PLD_CAP,
        )
    assert info.value.message_dict == {"buckets": ["São necessários 7 buckets (M+0 a M+6)."]}
    assert not RiskParameters.objects.filter(week=week).exists()


def test_a_bad_bucket_is_named_by_its_index_and_nothing_is_written():
    week = WeekFactory()
    buckets = default_buckets()
    buckets[3]["volatility"] = Decimal("-0.01")
    with pytest.raises(ValidationError) as info:
        save_parameters(
            week=week,
            first_month=MARCH,
            correlation=correlation_matrix(),
            buckets=buckets,
            pld_floor=PLD_FLOOR,
            pld_cap=PLD_CAP,
        )
    assert list(info.value.message_dict) == ["buckets[3]"]
    assert not RiskParameters.objects.filter(week=week).exists()
    assert not ParameterBucket.objects.exists()


def raw_parameters(week, **overrides) -> RiskParameters:
    fields = {
        "week": week,
        "first_month": MARCH,
        "correlation": correlation_matrix(),
        "pld_floor": PLD_FLOOR,
        "pld_cap": PLD_CAP,
    }
    return RiskParameters.objects.create(**{**fields, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {"pld_floor": PLD_CAP},
        {"pld_floor": Decimal("800"), "pld_cap": Decimal("700")},
        {"pld_floor": Decimal("0")},
        {"confidence": Decimal("1")},
        {"confidence": Decimal("0")},
        {"liquidation_days": 0},
        {"k": Decimal("-1")},
        {"theta": Decimal("-0.5")},
    ],
    ids=repr,
)
def test_database_refuses_out_of_range_parameters(overrides):
    week = WeekFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_parameters(week, **overrides)
    assert not RiskParameters.objects.exists()


def test_database_accepts_the_valid_bounds():
    assert raw_parameters(WeekFactory()).pld_floor == PLD_FLOOR


@pytest.mark.parametrize(
    ("field", "value"),
    [("bucket_index_range", {"index": 7}), ("bucket_volatility_nonnegative", {"volatility": -1})],
)
def test_database_refuses_a_broken_bucket(field, value):
    parameters = raw_parameters(WeekFactory())
    row = {"parameters": parameters, "index": 0, **default_buckets()[0], **value}
    with pytest.raises(IntegrityError), transaction.atomic():
        ParameterBucket.objects.create(**row)


def test_database_refuses_two_buckets_with_the_same_index():
    parameters = raw_parameters(WeekFactory())
    ParameterBucket.objects.create(parameters=parameters, index=0, **default_buckets()[0])
    with pytest.raises(IntegrityError), transaction.atomic():
        ParameterBucket.objects.create(parameters=parameters, index=0, **default_buckets()[1])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"pld_floor": Decimal("800"), "pld_cap": Decimal("700")}, "pld_floor"),
        ({"confidence": Decimal("1")}, "confidence"),
        ({"liquidation_days": 0}, "liquidation_days"),
    ],
    ids=["pld_floor>=cap", "confidence=1", "liquidation_days=0"],
)
def test_parameters_save_names_the_field_of_an_out_of_range_value(overrides, field):
    week = WeekFactory()
    kwargs = {
        "week": week,
        "first_month": MARCH,
        "correlation": correlation_matrix(),
        "buckets": default_buckets(),
        "pld_floor": PLD_FLOOR,
        "pld_cap": PLD_CAP,
        **overrides,
    }
    with pytest.raises(ValidationError) as info:
        save_parameters(**kwargs)
    assert field in info.value.message_dict


# --- payload and API -------------------------------------------------------------------------


def test_parameters_payload():
    week = week_with_parameters(first_month=MARCH)
    payload = parameters_payload(week.parameters)

    assert payload["week"] == week.code
    assert payload["confidence"] == 0.95
    assert payload["liquidation_days"] == 5
    assert [b["label"] for b in payload["buckets"]] == [
        "MAR/2023",
        "ABR/2023",
        "MAI/2023",
        "JUN/2023",
        "JUL/2023",
        "AGO/2023",
        "SET/2023",
    ]
    assert [b["hours"] for b in payload["buckets"]] == [744, 720, 744, 720, 744, 744, 720]
    assert [b["month"] for b in payload["buckets"]][:2] == ["2023-03-01", "2023-04-01"]
    assert [b["index"] for b in payload["buckets"]] == list(range(7))
    assert [b["volatility"] for b in payload["buckets"]] == [
        0.05,
        0.06,
        0.07,
        0.08,
        0.09,
        0.10,
        0.11,
    ]
    assert payload["forward_prices"] == {
        "SE": [150.0, 160.0, 170.0, 180.0, 190.0, 200.0, 210.0],
        "S": [151.0, 161.0, 171.0, 181.0, 191.0, 201.0, 211.0],
        "NE": [140.0, 150.0, 160.0, 170.0, 180.0, 190.0, 200.0],
        "N": [141.0, 151.0, 161.0, 171.0, 181.0, 191.0, 201.0],
    }
    assert payload["correlation"] == correlation_matrix()
    assert payload["pld_floor"] == 58.60
    assert payload["pld_cap"] == 751.73
    assert (payload["k"], payload["theta"]) == (0.0, 0.0)


def test_payload_months_cross_the_year_and_leap_february():
    week = week_with_parameters(first_month=date(2023, 11, 1))
    payload = parameters_payload(week.parameters)
    assert [(b["label"], b["hours"]) for b in payload["buckets"]] == [
        ("NOV/2023", 720),
        ("DEZ/2023", 744),
        ("JAN/2024", 744),
        ("FEV/2024", 696),  # 2024 is a leap year
        ("MAR/2024", 744),
        ("ABR/2024", 720),
        ("MAI/2024", 744),
    ]


def test_payload_refuses_incomplete_buckets():
    week = week_with_parameters()
    ParameterBucket.objects.filter(parameters__week=week, index=0).delete()
    with pytest.raises(ValidationError) as info:
        parameters_payload(RiskParameters.objects.get(week=week))
    assert list(info.value.message_dict) == ["buckets"]


def test_api_week_detail_shows_the_parameters(client_for, agent_user):
    week = week_with_parameters(first_month=MARCH)
    response = client_for(agent_user).get(f"/api/v1/weeks/{week.code}/")
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == week.code
    assert body["status"] == "scheduled"
    parameters = body["parameters"]
    assert parameters["confidence"] == "0.9500"
    assert parameters["liquidation_days"] == 5
    assert parameters["first_month"] == "2023-03-01"
    assert parameters["pld_floor"] == "58.60"
    assert parameters["pld_cap"] == "751.73"
    assert parameters["correlation"] == correlation_matrix()
    assert len(parameters["buckets"]) == 7
    first, last = parameters["buckets"][0], parameters["buckets"][6]
    assert first == {
        "index": 0,
        "label": "MAR/2023",
        "hours": 744,
        "volatility": "0.050000",
        "stress_price_long": "700.00",
        "stress_price_short": "60.00",
        "forward_prices": {"SE": 150.0, "S": 151.0, "NE": 140.0, "N": 141.0},
    }
    assert (last["label"], last["hours"]) == ("SET/2023", 720)


def test_api_week_without_parameters_shows_null(client_for, agent_user):
    week = WeekFactory()
    response = client_for(agent_user).get(f"/api/v1/weeks/{week.code}/")
    assert response.status_code == 200
    assert response.json()["parameters"] is None
