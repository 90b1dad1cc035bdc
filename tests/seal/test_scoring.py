"""The seal's score against hand computation, for hand-built agents that together touch every
row of B3's table (seed 003), the mandatory penalties and the level cut-offs exactly."""

from __future__ import annotations

import importlib

import pytest

from seal.scoring import ItemInput, ScoringError, level_for, score

SEED = importlib.import_module("seal.migrations.0002_seed_b3_criteria")
CUTOFFS = {2: 30, 3: 55}
ROWS = {row[0]: row for row in SEED.ROWS}


def items(decisions: dict[str, str], units: dict[str, int] | None = None) -> list[ItemInput]:
    """Every criterion of the seeded catalogue, not achieved unless named."""
    units = units or {}
    out = []
    for code, _line, _measure, points, mandatory, _kind, max_units, group, _d in SEED.ROWS:
        out.append(
            ItemInput(
                code=code,
                points=points,
                mandatory=mandatory,
                decision=decisions.get(code, "not_achieved"),
                units=units.get(code, 1),
                max_units=max_units,
                exclusive_group=group,
            )
        )
    return out


def test_the_seed_holds_every_row_of_the_table():
    # 15 measures of the table; the weights as printed; two mandatory (marked *).
    assert [(r[0], r[3], r[4]) for r in SEED.ROWS] == [
        ("fs-annual", 0, True),
        ("fs-half-yearly", 10, False),
        ("fs-quarterly", 5, False),
        ("contracts-daily", 10, True),
        ("contracts-real-time", 20, False),
        ("audit-annual", 5, False),
        ("audit-half-yearly", 10, False),
        ("channel-spreadsheet", 0, False),
        ("channel-api", 7, False),
        ("discrepancy", -15, False),
        ("advisory-board", 5, False),
        ("board-of-directors", 5, False),
        ("risk-policy", 3, False),
        ("risk-area", 4, False),
        ("internal-audit", 4, False),
    ]
    assert SEED.MISSED_MANDATORY_POINTS == -10


def test_agent_a_full_governance_every_positive_row():
    # Hand: fs group max(0, 10) = 10; quarterly 3 × 5 = 15; contracts group max(10, 20) = 20;
    # audit group max(5, 10) = 10; channel group max(0, 7) = 7; boards 5 + 5; governance
    # 3 + 4 + 4. Total 10 + 15 + 20 + 10 + 7 + 10 + 11 = 83. No penalty. Level 3.
    achieved = {code: "achieved" for code in ROWS if code != "discrepancy"}
    achieved["discrepancy"] = "not_achieved"
    result = score(items(achieved, {"fs-quarterly": 3}), cutoffs=CUTOFFS)
    assert (result.points, result.penalties, result.total, result.level) == (83, 0, 83, 3)
    by = {r["code"]: r for r in result.items}
    assert by["fs-annual"]["note"] == "superseded_by:fs-half-yearly"
    assert by["contracts-daily"]["awarded"] == 0 and by["contracts-real-time"]["awarded"] == 20
    assert by["audit-annual"]["awarded"] == 0 and by["audit-half-yearly"]["awarded"] == 10
    assert by["channel-spreadsheet"]["awarded"] == 0 and by["channel-api"]["awarded"] == 7
    assert by["fs-quarterly"]["awarded"] == 15
    assert result.complete and result.missed_mandatory == []


def test_agent_b_minimum_obligations_spreadsheet_and_a_discrepancy():
    # Hand: annual FS 0 (met), daily 10 (met), spreadsheet 0, annual audit 5, discrepancy −15,
    # one quarterly statement 5. Total 0 + 10 + 0 + 5 − 15 + 5 = 5. Level 1.
    decisions = {
        "fs-annual": "achieved",
        "contracts-daily": "achieved",
        "channel-spreadsheet": "achieved",
        "audit-annual": "achieved",
        "discrepancy": "achieved",
        "fs-quarterly": "achieved",
    }
    result = score(items(decisions, {"fs-quarterly": 1}), cutoffs=CUTOFFS)
    assert (result.points, result.penalties, result.total, result.level) == (5, 0, 5, 1)
    assert {r["code"]: r["awarded"] for r in result.items}["discrepancy"] == -15


def test_agent_c_misses_both_mandatory_measures():
    # Hand: API 7 + board of directors 5 + risk policy 3 = 15; two mandatory missed: −20.
    # Total −5. Level 1.
    decisions = {
        "fs-annual": "not_achieved",
        "contracts-daily": "not_achieved",
        "channel-api": "achieved",
        "board-of-directors": "achieved",
        "risk-policy": "achieved",
    }
    result = score(items(decisions), cutoffs=CUTOFFS)
    assert (result.points, result.penalties, result.total) == (15, -20, -5)
    assert result.missed_mandatory == ["fs-annual", "contracts-daily"]
    assert result.level == 1


def test_one_missed_mandatory_measure_costs_ten_once():
    # Hand: no financial statement at all (neither annual nor half-yearly: −10, once), daily 10,
    # API 7, annual audit 5, advisory board 5, risk area 4, internal audit 4
    # = 10 + 7 + 5 + 5 + 4 + 4 = 35; 35 − 10 = 25. Level 1 (below 30).
    decisions = {
        "contracts-daily": "achieved",
        "channel-api": "achieved",
        "audit-annual": "achieved",
        "advisory-board": "achieved",
        "risk-area": "achieved",
        "internal-audit": "achieved",
    }
    result = score(items(decisions), cutoffs=CUTOFFS)
    assert (result.points, result.penalties, result.total, result.level) == (35, -10, 25, 1)
    assert result.missed_mandatory == ["fs-annual"]
    by = {r["code"]: r for r in result.items}
    assert (by["fs-annual"]["penalty"], by["fs-annual"]["note"]) == (-10, "missed_mandatory")
    assert by["fs-half-yearly"]["penalty"] == 0  # not mandatory: nothing either way
    # With one more board the same agent is exactly at level 2's cut-off: 40 − 10 = 30.
    decisions["board-of-directors"] = "achieved"
    result = score(items(decisions), cutoffs=CUTOFFS)
    assert (result.points, result.penalties, result.total, result.level) == (40, -10, 30, 2)


# --- tier groups: a higher measure of the group includes the lower one --------------------------


def test_half_yearly_statements_meet_the_mandatory_annual_ones():
    # Hand: half-yearly FS 10 (annual not marked achieved, but half-yearly statements include
    # the annual ones: met, no −10), daily 10, API 7, advisory board 5, risk area 4, internal
    # audit 4 = 40. No penalty. Level 2.
    decisions = {
        "fs-half-yearly": "achieved",
        "contracts-daily": "achieved",
        "channel-api": "achieved",
        "advisory-board": "achieved",
        "risk-area": "achieved",
        "internal-audit": "achieved",
    }
    result = score(items(decisions), cutoffs=CUTOFFS)
    assert (result.points, result.penalties, result.total, result.level) == (40, 0, 40, 2)
    assert result.missed_mandatory == []
    by = {r["code"]: r for r in result.items}
    assert by["fs-annual"] == {
        "code": "fs-annual",
        "decision": "not_achieved",
        "points": 0,
        "units": 0,
        "awarded": 0,
        "penalty": 0,
        "note": "implied_by:fs-half-yearly",
        "implied_by": "fs-half-yearly",
    }
    assert by["fs-half-yearly"]["awarded"] == 10
    # The same total as when staff mark both achieved (annual then superseded).
    both = score(items({**decisions, "fs-annual": "achieved"}), cutoffs=CUTOFFS)
    assert both.total == result.total == 40


def test_real_time_sending_meets_the_mandatory_daily_sending():
    # Hand: real time 20 (daily not achieved, but real time includes it: met, no −10), annual
    # FS 0, spreadsheet 0, risk policy 3 = 23. No penalty. Level 1.
    decisions = {
        "contracts-real-time": "achieved",
        "fs-annual": "achieved",
        "channel-spreadsheet": "achieved",
        "risk-policy": "achieved",
    }
    result = score(items(decisions), cutoffs=CUTOFFS)
    assert (result.points, result.penalties, result.total, result.level) == (23, 0, 23, 1)
    by = {r["code"]: r for r in result.items}
    assert by["contracts-daily"]["implied_by"] == "contracts-real-time"
    assert by["contracts-daily"]["note"] == "implied_by:contracts-real-time"
    assert (by["contracts-daily"]["awarded"], by["contracts-daily"]["penalty"]) == (0, 0)
    assert by["contracts-real-time"]["awarded"] == 20
    both = score(items({**decisions, "contracts-daily": "achieved"}), cutoffs=CUTOFFS)
    assert both.total == result.total == 23
    assert {r["code"]: r["note"] for r in both.items}["contracts-daily"] == (
        "superseded_by:contracts-real-time"
    )


def test_both_mandatory_measures_met_through_their_higher_tiers():
    # Hand: half-yearly FS 10 + real time 20 + half-yearly audit 10 + API 7 = 47; neither
    # mandatory measure marked achieved, both implied: no penalty. Level 2.
    decisions = {
        "fs-half-yearly": "achieved",
        "contracts-real-time": "achieved",
        "audit-half-yearly": "achieved",
        "channel-api": "achieved",
    }
    result = score(items(decisions), cutoffs=CUTOFFS)
    assert (result.points, result.penalties, result.total, result.level) == (47, 0, 47, 2)
    assert result.missed_mandatory == []
    assert [r["code"] for r in result.items if r.get("implied_by")] == [
        "fs-annual",
        "contracts-daily",
    ]


def test_a_pending_higher_tier_does_not_meet_the_mandatory_measure():
    # Hand: half-yearly FS still pending gives nothing and meets nothing: annual −10; daily 10.
    # Total 0, incomplete.
    result = score(
        items({"fs-half-yearly": "pending", "contracts-daily": "achieved"}), cutoffs=CUTOFFS
    )
    assert (result.points, result.penalties, result.total) == (10, -10, 0)
    assert not result.complete and result.missed_mandatory == ["fs-annual"]
    assert "implied_by" not in {r["code"]: r for r in result.items}["fs-annual"]


def test_the_audit_tiers_count_the_higher_one_only():
    # The audit group has no mandatory measure. Hand: half-yearly audit 10 alone = 10; with the
    # annual audit too, still 10 (annual superseded). Plus the obligations 0 + 10 = 20 both ways.
    obligations = {"fs-annual": "achieved", "contracts-daily": "achieved"}
    alone = score(items({**obligations, "audit-half-yearly": "achieved"}), cutoffs=CUTOFFS)
    both = score(
        items({**obligations, "audit-half-yearly": "achieved", "audit-annual": "achieved"}),
        cutoffs=CUTOFFS,
    )
    assert (alone.total, alone.penalties, both.total) == (20, 0, 20)
    by_alone = {r["code"]: r for r in alone.items}
    assert (by_alone["audit-annual"]["awarded"], by_alone["audit-annual"]["note"]) == (0, "")
    assert {r["code"]: r["note"] for r in both.items}["audit-annual"] == (
        "superseded_by:audit-half-yearly"
    )
    # The annual audit alone gives its 5.
    annual = score(items({**obligations, "audit-annual": "achieved"}), cutoffs=CUTOFFS)
    assert annual.total == 15


def test_the_channel_alternatives_count_the_higher_one_only():
    # The channel group has no mandatory measure. Hand: API 7 alone = 7; with the spreadsheet
    # too, still 7 (spreadsheet superseded); the spreadsheet alone 0. Plus the obligations 10.
    obligations = {"fs-annual": "achieved", "contracts-daily": "achieved"}
    api = score(items({**obligations, "channel-api": "achieved"}), cutoffs=CUTOFFS)
    both = score(
        items({**obligations, "channel-api": "achieved", "channel-spreadsheet": "achieved"}),
        cutoffs=CUTOFFS,
    )
    sheet = score(items({**obligations, "channel-spreadsheet": "achieved"}), cutoffs=CUTOFFS)
    assert (api.total, both.total, sheet.total) == (17, 17, 10)
    assert {r["code"]: r["note"] for r in both.items}["channel-spreadsheet"] == (
        "superseded_by:channel-api"
    )
    assert all("implied_by" not in r for r in api.items)


def test_every_tier_group_of_the_seed_is_covered():
    # The groups the tests above exercise are exactly the seed's (a new group needs a case).
    groups = {row[7] for row in SEED.ROWS if row[7]}
    assert groups == {"fs", "contracts", "audit", "channel"}


def test_an_unevaluated_discrepancy_scores_nothing():
    result = score(
        items(
            {"fs-annual": "achieved", "contracts-daily": "achieved", "discrepancy": "not_evaluated"}
        ),
        cutoffs=CUTOFFS,
    )
    assert result.total == 10
    assert {r["code"]: r["note"] for r in result.items}["discrepancy"] == "no_data"


def test_a_mandatory_measure_cannot_be_left_unevaluated():
    with pytest.raises(ScoringError) as exc:
        score(items({"fs-annual": "not_evaluated"}), cutoffs=CUTOFFS)
    assert exc.value.field == "fs-annual"


def test_pending_items_leave_the_score_incomplete():
    result = score(
        items({"risk-area": "pending", "fs-annual": "achieved", "contracts-daily": "achieved"}),
        cutoffs=CUTOFFS,
    )
    assert not result.complete and result.total == 10


def test_units_beyond_the_maximum_are_refused():
    with pytest.raises(ScoringError):
        score(items({"fs-quarterly": "achieved"}, {"fs-quarterly": 4}), cutoffs=CUTOFFS)


@pytest.mark.parametrize(
    ("total", "level"), [(-35, 1), (29, 1), (30, 2), (31, 2), (54, 2), (55, 3), (83, 3)]
)
def test_level_boundaries_exactly_at_the_cutoffs(total, level):
    assert level_for(total, CUTOFFS) == level


def test_other_cutoffs_are_parameters():
    assert level_for(30, {2: 31, 3: 40}) == 1
    assert level_for(40, {2: 31, 3: 40}) == 3
    with pytest.raises(ScoringError):
        level_for(10, {2: 40, 3: 40})
    with pytest.raises(ScoringError):
        level_for(10, {2: 10})
