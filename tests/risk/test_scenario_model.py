"""The network model's scenario models (prudencial.risk.pld): the paper's bootstrap with contract
prices drawn per scenario, block and circular bootstraps, the forward lognormal; reproducible,
bounded and independent of how the engine splits the scenarios."""

from __future__ import annotations

import numpy as np
import pytest

from prudencial.risk.pld import (
    PAPER_SCENARIO_MODEL,
    ContractPriceModel,
    ScenarioModel,
    bootstrap_pld,
    paper_scenarios,
)

HISTORY = np.array([50.0, 80.0, 120.0, 300.0, 513.0, 40.0, 90.0, 200.0])


def test_the_default_pld_draw_is_bootstrap_pld_with_the_same_seed():
    drawn = PAPER_SCENARIO_MODEL.draw(500, 11, HISTORY)
    np.testing.assert_array_equal(drawn.pld, bootstrap_pld(HISTORY, 500, seed=11))
    assert drawn.model["pld"] == "bootstrap" and drawn.model["seed"] == 11
    assert drawn.model["contract_prices"] == {"draw": "history", "lower": 0.5, "upper": 1.0}
    np.testing.assert_array_equal(paper_scenarios(HISTORY, 500, 11).pld, drawn.pld)


@pytest.mark.parametrize("draw", ["history", "uniform"])
def test_contract_prices_stay_within_their_bounds_of_each_scenarios_pld(draw):
    model = ScenarioModel(contract_prices=ContractPriceModel(draw, lower=0.6, upper=0.9))
    scenarios = model.draw(300, 5, HISTORY)
    prices = scenarios.contract_price_block(40, 0, 300)
    assert prices.shape == (40, 300)
    assert np.all(prices >= 0.6 * scenarios.pld - 1e-9)
    assert np.all(prices <= 0.9 * scenarios.pld + 1e-9)
    # Drawn anew per contract and scenario: contracts differ within a scenario.
    assert (prices.std(axis=0) > 0).mean() > 0.5  # (a scenario at the lowest PLD clips all)


def test_a_scenarios_prices_do_not_depend_on_how_the_scenarios_are_split():
    scenarios = ScenarioModel().draw(1000, 3, HISTORY)
    whole = scenarios.contract_price_block(25, 0, 1000)
    parts = [scenarios.contract_price_block(25, a, b) for a, b in [(0, 70), (70, 640), (640, 1000)]]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    again = ScenarioModel().draw(1000, 3, HISTORY).contract_price_block(25, 0, 1000)
    np.testing.assert_array_equal(again, whole)  # the same seed, the same prices


def test_block_bootstraps_average_consecutive_weeks():
    plain = bootstrap_pld(HISTORY, 4000, seed=1, weeks_per_scenario=4, block_length=4)
    means = {np.mean(HISTORY[i : i + 4]) for i in range(HISTORY.size - 3)}
    assert set(np.round(plain, 9)) <= {round(m, 9) for m in means}
    circular = bootstrap_pld(
        HISTORY, 4000, seed=1, weeks_per_scenario=4, block_length=4, circular=True
    )
    wrapped = {np.mean(np.take(HISTORY, range(i, i + 4), mode="wrap")) for i in range(8)}
    assert set(np.round(circular, 9)) == {round(m, 9) for m in wrapped}


def test_the_forward_lognormal_has_the_forward_as_its_mean_and_respects_the_bounds():
    model = ScenarioModel(pld="forward_lognormal", forward=150.0, sigma=0.05, horizon_days=4.0,
                          contract_prices=None)  # fmt: skip
    pld = model.draw(200_000, 9).pld
    assert pld.mean() == pytest.approx(150.0, rel=2e-3)
    assert np.log(pld).std() == pytest.approx(0.05 * 2.0, rel=1e-2)
    capped = ScenarioModel(pld="forward_lognormal", forward=150.0, sigma=0.5, floor=60.0,
                           cap=200.0, contract_prices=None).draw(10_000, 9).pld  # fmt: skip
    assert capped.min() >= 60.0 and capped.max() <= 200.0
    assert model.to_dict()["contract_prices"] == "fixed"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pld": "garch"}, "scenario_model.pld"),
        ({"pld": "forward_lognormal", "sigma": 0.1}, "scenario_model.forward"),
        ({"pld": "forward_lognormal", "forward": 100.0}, "scenario_model.sigma"),
        ({"pld": "forward_lognormal", "forward": 1.0, "sigma": 0.1, "horizon_days": 0},
         "scenario_model.horizon_days"),
        ({"floor": 100.0, "cap": 50.0}, "scenario_model.floor"),
    ],
)  # fmt: skip
def test_a_bad_scenario_model_is_refused_naming_its_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ScenarioModel(**kwargs)


def test_bad_contract_price_bounds_and_missing_history_are_refused():
    with pytest.raises(ValueError, match="contract_prices bounds"):
        ContractPriceModel(lower=0.9, upper=0.5)
    with pytest.raises(ValueError, match="contract_prices.draw"):
        ContractPriceModel(draw="normal")
    with pytest.raises(ValueError, match="needs the PLD history"):
        ScenarioModel().draw(10, 1)
    with pytest.raises(ValueError, match="block_length must be"):
        bootstrap_pld(HISTORY, 10, seed=1, block_length=20)
