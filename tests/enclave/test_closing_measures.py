"""closing_network's systemic measures and community tracking (network_measures.py): computed
on the week's market by the real enclave process, published through the allow-list, their
options refused by name; the wiring checked in-process against the engine's own functions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from enclave_bridge.client import EnclaveError
from enclave_bridge.enclave import disclosure
from enclave_bridge.enclave.compute import parse_network
from enclave_bridge.enclave.network_measures import (
    MAX_TRACKING_ENTRIES,
    systemic_answer,
    tracking_answer,
)
from enclave_bridge.wire.protocol import ProtocolError
from prudencial.risk.tracking import compare_weeks

from .payloads import encrypt, equity, network_options, parameters, portfolio
from .test_enclave_process import _batch

pytestmark = pytest.mark.django_db(databases=[])

CANARY = 98_765_432.1


def _part(client, key, n=9, closing="m1", canary=False):
    items, _ = _batch(n, key)
    if canary:
        for i, item in enumerate(items):
            doc = portfolio(item["agent"], equity=equity(CANARY + i))
            doc["contracts"][0]["amount_brl"] = CANARY + i  # a price the engine reads
            item["portfolio"] = encrypt(doc, key)
    batch = client.stage_batch(parameters(), items)
    answer = client.closing_chunk_signed(batch, closing=closing, chunk=0).result
    return answer["network_part"], [i["agent"]["acronym"] for i in items]


def _network(client, part, **kwargs):
    options = kwargs.pop("options", {})
    return client.closing_network_signed(
        parameters=parameters(),
        parts=[part],
        options=network_options(scenarios=64, seed=2, **options),
        **kwargs,
    )


def _only_allowed(systemic: dict) -> None:
    figures = disclosure.SYSTEMIC_FIGURES
    assert set(systemic) <= {*figures["summary"], "scenarios", "agents"}
    for scenario in systemic["scenarios"].values():
        assert set(scenario) <= set(figures["scenario"])
        assert set(scenario["debtrank"]) <= set(figures["debtrank"])
        assert set(scenario["eisenberg_noe"]) <= set(figures["eisenberg_noe"])
        assert set(scenario["cover2"]) <= set(figures["cover2"])
    for row in systemic["agents"]:
        assert set(row) == {"agent", "scenarios"}
        for values in row["scenarios"].values():
            assert set(values) <= set(figures["agent"])


def test_the_network_answer_carries_the_systemic_measures_by_default(client, current_key):
    part, acronyms = _part(client, current_key)
    signed = _network(client, part)
    answer = signed.result
    systemic = answer["systemic"]
    assert systemic["schema"] == "prudencial/systemic/v1"
    assert systemic["n_agents"] == answer["market"]["agents"] == len(acronyms)
    assert sorted(r["agent"] for r in systemic["agents"]) == sorted(acronyms)
    # The stress prices are the week's scenarios' quantiles at the network's confidence.
    assert set(systemic["scenarios"]) == {"high", "low"}
    assert systemic["scenarios"]["high"]["quantile"] == 0.95
    assert systemic["scenarios"]["low"]["quantile"] == pytest.approx(0.05)
    assert systemic["capital_source"] == "expected_cost" and systemic["capital_fraction"] == 0.1
    _only_allowed(systemic)
    for s in systemic["scenarios"].values():
        dr = s["debtrank"]
        assert 0.0 <= dr["system_initial"] <= dr["system_final"] <= 1.0
        assert all(t["agent"] in acronyms for t in dr["top"])
        pair = s["cover2"]["agents"]
        assert pair is None or set(pair) <= set(acronyms)
    assert {"open", "network", "systemic", "tracking"} <= set(answer["timing_s"])
    assert answer["tracking"] == {"skipped": "no previous week's communities"}
    # Options change what is computed, and say so in the signed answer.
    other = _network(
        client,
        part,
        options={
            "confidence": 0.9,
            "systemic": {"sides": ["high"], "capital_fraction": 0.25, "debtrank": "fixed_point"},
        },
    ).result["systemic"]
    assert set(other["scenarios"]) == {"high"} and other["scenarios"]["high"]["quantile"] == 0.9
    assert other["capital_fraction"] == 0.25 and other["debtrank_method"] == "fixed_point"
    stress = _network(client, part, options={"systemic": {"pld": {"cap": 684.0}}}).result
    assert list(stress["systemic"]["scenarios"]) == ["cap"]
    off = _network(client, part, options={"systemic": {"enabled": False}}).result
    assert off["systemic"] == {"skipped": "disabled by network.systemic.enabled"}
    assert off["agents"] == answer["agents"]  # the network model is the same without them


def test_the_transition_from_last_weeks_communities_is_published(client, current_key):
    part, acronyms = _part(client, current_key, closing="m2")
    # Last week: the first five in community 0, the rest in 1; an agent gone this week in 1.
    previous = {a: (0 if i < 5 else 1) for i, a in enumerate(acronyms)} | {"CM9999": 1}
    answer = _network(client, part, previous=previous, previous_week="202302004").result
    tracking = answer["tracking"]
    current = {
        r["agent"]: (None if r["community_rank"] is None else r["community"])
        for r in answer["agents"]
    }
    expected = compare_weeks(
        previous, current, threshold=0.3, before="202302004", after="202303001"
    ).to_dict()
    assert (tracking["from"], tracking["to"]) == ("202302004", "202303001")
    assert tracking["links"] == expected["links"]
    assert tracking["flows"] == expected["flows"]
    assert tracking["events"] == expected["events"]
    assert sum(tracking["counts"].values()) == len(expected["events"])
    assert tracking["agents"]["previous"] == len(previous)
    assert tracking["communities"]["previous"] == 2
    # Communities and counts only: no agent acronym is in the transition.
    text = json.dumps(tracking)
    assert not any(a in text for a in [*acronyms, "CM9999"])
    with pytest.raises(EnclaveError) as exc:
        _network(client, part, previous=previous, previous_week="2023-02")
    assert "previous_week" in exc.value.message
    with pytest.raises(EnclaveError) as exc:
        _network(client, part, previous={"CM1": "zero"})
    assert "previous" in exc.value.message


@pytest.mark.parametrize(
    ("systemic", "name"),
    [
        ({"capital": [1.0, 2.0]}, "network.systemic.capital"),
        ({"speed": 1}, "network.systemic has unknown option(s): speed"),
        ({"enabled": "yes"}, "network.systemic.enabled"),
        ({"confidence": 1.0}, "network.systemic.confidence"),
        ({"confidence": 0}, "network.systemic.confidence"),
        ({"sides": ["high", "high"]}, "network.systemic.sides"),
        ({"sides": []}, "network.systemic.sides"),
        ({"sides": ["middle"]}, "network.systemic.sides"),
        ({"pld": -1}, "network.systemic.pld"),
        ({"pld": 1e9}, "network.systemic.pld"),
        ({"pld": {"a b": 100.0}}, "network.systemic.pld"),
        ({"pld": {"cap": "684"}}, "network.systemic.pld.cap"),
        ({"capital_fraction": 0}, "network.systemic.capital_fraction"),
        ({"capital_fraction": 11}, "network.systemic.capital_fraction"),
        ({"netting": 1}, "network.systemic.netting"),
        ({"debtrank": "pagerank"}, "network.systemic.debtrank"),
        ({"cover2_candidates": 1}, "network.systemic.cover2_candidates"),
        ({"cover2_candidates": 101}, "network.systemic.cover2_candidates"),
        ({"top": True}, "network.systemic.top"),
        ({"max_rounds": 0}, "network.systemic.max_rounds"),
        ({"batch_cells": 10**9}, "network.systemic.batch_cells"),
        ({"tolerance": 0.5}, "network.systemic.tolerance"),
        ({"reference_pld": 200.0}, "network.systemic.reference_pld is not an option"),
        ("on", "network.systemic must be a map"),
    ],
)
def test_bad_systemic_options_are_refused_by_name(systemic, name):
    with pytest.raises(ProtocolError) as exc:
        parse_network({"systemic": systemic}, systemic=True)
    assert name in exc.value.message, exc.value.message


def test_systemic_options_are_refused_by_the_process_and_by_compute(client, current_key):
    part, _ = _part(client, current_key, n=4, closing="m3")
    with pytest.raises(EnclaveError) as exc:
        _network(client, part, options={"systemic": {"cover2_candidates": 0}})
    assert "network.systemic.cover2_candidates" in exc.value.message
    with pytest.raises(ProtocolError) as refused:  # the compute op has no systemic measures
        parse_network({"systemic": {}})
    assert "network.systemic is an option of closing_network only" in refused.value.message
    defaults = parse_network({"confidence": 0.9}, systemic=True)["systemic"]
    assert defaults == {"enabled": True, "options": {"confidence": 0.9}}


@pytest.mark.parametrize(
    ("tracking", "name"),
    [
        ({"threshold": 0}, "network.tracking.threshold must be a number in (0, 1]"),
        ({"threshold": 1.5}, "network.tracking.threshold"),
        ({"threshold": True}, "network.tracking.threshold"),
        ({"threshold": "0.3"}, "network.tracking.threshold"),
        ({"threshold": float("nan")}, "network.tracking.threshold"),
        ({"jaccard": 0.5}, "network.tracking has unknown option(s): jaccard"),
        ([0.3], "network.tracking must be a map"),
    ],
)
def test_bad_tracking_options_are_refused_by_name(tracking, name):
    with pytest.raises(ProtocolError) as exc:
        parse_network({"tracking": tracking}, systemic=True)
    assert name in exc.value.message, exc.value.message


def test_the_tracking_threshold_is_an_option_of_the_closing_only(client, current_key):
    """Default 0.3; another threshold changes which communities are linked, and the answer
    says which one it used; compute refuses the option."""
    assert parse_network({}, systemic=True)["tracking"] == {"threshold": 0.3}
    with pytest.raises(ProtocolError) as refused:
        parse_network({"tracking": {"threshold": 0.5}})
    assert "network.tracking is an option of closing_network only" in refused.value.message
    previous = {"A": 0, "B": 0, "C": 0, "D": 0}
    agents = [  # A, B stay together; C, D move on: Jaccard 2/4 = 0.5 with the old community
        {"agent": a, "community": c, "community_rank": 1}
        for a, c in (("A", 7), ("B", 7), ("C", 8), ("D", 8))
    ]
    loose = tracking_answer(previous, agents, week="202303001", threshold=0.5)
    strict = tracking_answer(previous, agents, week="202303001", threshold=0.6)
    assert (loose["threshold"], strict["threshold"]) == (0.5, 0.6)
    assert loose["counts"]["split"] == 1 and strict["counts"]["split"] == 0
    assert strict["counts"]["death"] == 1 and strict["counts"]["birth"] == 2
    part, acronyms = _part(client, current_key, n=4, closing="m5")
    answer = _network(
        client,
        part,
        previous=dict.fromkeys(acronyms, 0),
        options={"tracking": {"threshold": 0.75}},
    ).result
    assert answer["tracking"]["threshold"] == 0.75


def test_a_canary_in_the_portfolios_is_in_neither_answer(client, current_key):
    part, acronyms = _part(client, current_key, closing="m4", canary=True)
    previous = dict.fromkeys(acronyms, 0)
    answer = _network(client, part, previous=previous, previous_week="202302004").result
    assert "skipped" not in answer["systemic"] and "skipped" not in answer["tracking"]
    for text in (json.dumps(answer["systemic"]), json.dumps(answer["tracking"])):
        assert "98765432" not in text and "9.876543" not in text


# --- in-process: the wiring against the engine's own functions ------------------------------


def test_systemic_answer_is_the_engines_on_its_result_and_scenario_quantiles(monkeypatch, caplog):
    from prudencial.risk.network import network_risk
    from prudencial.risk.pld import ScenarioModel, pld_history_2017
    from prudencial.risk.systemic import systemic_measures
    from prudencial.risk_tools.synthetic import synthetic_market

    market = synthetic_market(20, 12, 4, seed=5)
    scenarios = ScenarioModel().draw(200, 3, np.asarray(pld_history_2017()))
    engine = network_risk(market, scenarios, seed=3)
    spec = parse_network({"systemic": {"top": 3}}, systemic=True)["systemic"]
    got = systemic_answer(market, engine, scenarios, spec)
    direct = systemic_measures(market, engine, options={"top": 3, "pld": scenarios.pld})
    expected = disclosure.published_systemic(direct)
    for name in ("scenarios", "agents", "n_agents", "capital_source"):
        assert got[name] == expected[name], name
    assert systemic_answer(market, None, None, spec) == {"skipped": "no network model this week"}
    # A market the engine refuses (e.g. no capital anywhere) is skipped, quoting nothing.
    import prudencial.risk.systemic as systemic

    def refuse(*args, **kwargs):
        raise ValueError("options.capital[3] of agent CS03 is 98765432.1")

    monkeypatch.setattr(systemic, "systemic_measures", refuse)
    assert systemic_answer(market, engine, scenarios, spec) == {
        "skipped": "the systemic measures could not be computed for this market"
    }
    assert "ValueError" in caplog.text and "98765432" not in caplog.text


def test_the_transition_lists_are_bounded_with_their_full_counts():
    n = MAX_TRACKING_ENTRIES + 10
    previous = {f"A{i}": i for i in range(n)}
    agents = [{"agent": f"A{i}", "community": i, "community_rank": 1} for i in range(n)]
    agents.append({"agent": "LONE", "community": n, "community_rank": None})
    answer = tracking_answer(previous, agents, week="202303001")
    assert answer["from"] == "previous" and answer["counts"]["continuation"] == n
    assert len(answer["events"]) == len(answer["links"]) == MAX_TRACKING_ENTRIES
    assert answer["truncated"] == {"links": n, "flows": n, "events": n}
    assert answer["agents"] == {"previous": n, "current": n, "stayed": n}  # LONE: isolated
    assert tracking_answer(None, agents, week="202303001") == {
        "skipped": "no previous week's communities"
    }
