"""The alert rule (prudencial.domain.alerts), without Django: bands at their exact boundaries,
limits at theirs, the band list's checks naming the field, and the business-day deadline."""

from __future__ import annotations

from datetime import date

import pytest

from prudencial.domain import alerts
from prudencial.domain.errors import DomainError

BANDS = [{"code": "attention", "from": 0.8}, {"code": "alert", "from": 1.0}]


@pytest.mark.parametrize(
    ("fa", "band"),
    [
        (0.0, None),
        (0.7999999, None),
        (0.8, "attention"),  # the start is in the band
        (0.9999999, "attention"),
        (1.0, "alert"),
        (1.0000001, "alert"),
        (25.0, "alert"),
        (None, None),
        (float("nan"), None),
    ],
)
def test_fa_band_at_the_exact_boundaries(fa, band):
    found = alerts.classify_fa(fa, BANDS)
    assert (found.code if found else None) == band


@pytest.mark.parametrize(
    ("value", "breached"), [(0.25, False), (0.2500001, True), (0.2499, False), (None, False)]
)
def test_a_limit_is_breached_only_above_it(value, breached):
    params = alerts.check_alert_parameters({"fa_bands": BANDS})
    found = alerts.breaches({"concentration_largest": value}, params)
    assert [b.figure for b in found] == (["concentration_largest"] if breached else [])


def test_breaches_lists_each_figure_with_its_rule():
    params = alerts.check_alert_parameters(
        {
            "fa_bands": BANDS,
            "concentration_limit_largest": 0.3,
            "concentration_limit_top_five": 0.9,
        }
    )
    found = alerts.breaches(
        {"fa": 0.85, "concentration_largest": 0.31, "concentration_top_five": 0.9, "fa_risk": 9},
        params,
    )
    assert found == [
        alerts.Breach("fa", 0.85, "attention", 0.8),
        alerts.Breach("concentration_largest", 0.31, "", 0.3),
    ]  # top five at exactly its limit is no breach; fa_risk is not a figure with a rule


def test_nothing_under_the_lowest_band_and_the_limits():
    assert (
        alerts.breaches(
            {"fa": 0.79, "concentration_largest": 0.1, "concentration_top_five": 0.5},
            {"fa_bands": BANDS},
        )
        == []
    )


def test_the_default_means_what_the_threshold_meant():
    params = alerts.check_alert_parameters({"fa_alert_threshold": 1.2})
    assert params.fa_bands == (alerts.Band("alert", 1.2),)
    assert params.concentration_limit_largest == 0.25
    assert params.concentration_limit_top_five == 1.0
    assert params.case_response_days == 5
    assert alerts.classify_fa(1.19, params.fa_bands) is None
    assert alerts.classify_fa(1.2, params.fa_bands).code == "alert"


@pytest.mark.parametrize(
    ("bands", "field", "code"),
    [
        ("alert", "fa_bands", "list"),
        ([], "fa_bands", "band_count"),
        ([{"code": f"b{i}", "from": i + 1} for i in range(11)], "fa_bands", "band_count"),
        ([{"code": "alert"}], "fa_bands[0].from", "required"),
        ([{"from": 1}], "fa_bands[0].code", "required"),
        ([{"code": "Alert", "from": 1}], "fa_bands[0].code", "band_code"),
        ([{"code": "alert", "from": 0}], "fa_bands[0].from", "minimum_strict"),
        ([{"code": "alert", "from": "1"}], "fa_bands[0].from", "number"),
        ([{"code": "alert", "from": float("inf")}], "fa_bands[0].from", "finite"),
        ([{"code": "alert", "from": 1, "to": 2}], "fa_bands[0].to", "schema"),
        (BANDS[::-1], "fa_bands[1].from", "band_order"),
        ([{"code": "a", "from": 1}, {"code": "b", "from": 1}], "fa_bands[1].from", "band_order"),
        ([{"code": "a", "from": 1}, {"code": "a", "from": 2}], "fa_bands[1].code", "band_code"),
        (["x"], "fa_bands[0]", "object"),
    ],
)
def test_bad_bands_name_the_field_and_the_rule(bands, field, code):
    with pytest.raises(DomainError) as exc:
        alerts.parse_bands(bands)
    assert (exc.value.field, exc.value.code) == (field, code)


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({"concentration_limit_largest": 0}, "concentration_limit_largest", "minimum_strict"),
        ({"concentration_limit_top_five": -1}, "concentration_limit_top_five", "minimum_strict"),
        ({"concentration_limit_top_five": 101}, "concentration_limit_top_five", "at_most"),
        (
            {"concentration_limit_largest": 0.6, "concentration_limit_top_five": 0.5},
            "concentration_limit_largest",
            "limit_order",
        ),
        ({"case_response_days": 0}, "case_response_days", "between"),
        ({"case_response_days": 61}, "case_response_days", "between"),
        ({"case_response_days": 2.5}, "case_response_days", "integer"),
    ],
)
def test_bad_limits_name_the_field_and_the_rule(data, field, code):
    with pytest.raises(DomainError) as exc:
        alerts.check_alert_parameters(data)
    assert (exc.value.field, exc.value.code) == (field, code)


def test_the_threshold_moves_the_alert_band_and_is_refused_out_of_order():
    assert alerts.bands_with_threshold(BANDS, 1.5) == [
        {"code": "attention", "from": 0.8},
        {"code": "alert", "from": 1.5},
    ]
    assert alerts.alert_threshold(BANDS) == 1.0
    # Without an "alert" band the highest band is the threshold.
    assert alerts.alert_threshold([{"code": "low", "from": 0.5}, {"code": "high", "from": 2}]) == 2
    with pytest.raises(DomainError) as exc:
        alerts.bands_with_threshold(BANDS, 0.7)
    assert (exc.value.field, exc.value.code) == ("fa_alert_threshold", "alert_band")


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (date(2026, 12, 2), 5, date(2026, 12, 9)),  # Wednesday → next Wednesday
        (date(2026, 12, 4), 1, date(2026, 12, 7)),  # Friday → Monday
        (date(2026, 12, 5), 1, date(2026, 12, 7)),  # Saturday → Monday
        (date(2026, 12, 23), 2, date(2026, 12, 28)),  # over Christmas (Friday 25)
        (date(2026, 4, 1), 1, date(2026, 4, 2)),
        (date(2026, 4, 2), 1, date(2026, 4, 6)),  # Good Friday 3 April 2026
        (date(2026, 11, 19), 1, date(2026, 11, 23)),  # 20 November (Friday)
        (date(2026, 12, 2), 0, date(2026, 12, 2)),
    ],
)
def test_business_days_skip_weekends_and_national_holidays(start, days, due):
    assert alerts.add_business_days(start, days) == due


def test_easter():
    assert [alerts.easter(y) for y in (2024, 2025, 2026, 2027)] == [
        date(2024, 3, 31),
        date(2025, 4, 20),
        date(2026, 4, 5),
        date(2027, 3, 28),
    ]
