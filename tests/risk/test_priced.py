"""The network model with contract prices drawn per scenario (prudencial.risk.priced), against
the plain per-scenario loop of bench/risk_reference.py and against the fixed-price engine."""

from __future__ import annotations

import numpy as np
import pytest

from prudencial.risk import Market, network_risk, pld_history_2017
from prudencial.risk.pld import ContractPriceModel, ScenarioModel, Scenarios, paper_scenarios
from prudencial.risk_tools.synthetic import synthetic_market
from tests.risk.test_network import _reference_module, five_agents

FIGURES = (
    "var_intrinsic",
    "cvar_intrinsic",
    "var_propagated",
    "cvar_propagated",
    "var_total",
    "cvar_total",
)


class _Constant(Scenarios):
    """Scenarios whose contract prices are the traded ones in every scenario: the priced path
    must then give exactly what the fixed-price engine gives."""

    def __init__(self, pld, market):
        super().__init__(
            pld=pld, model={"pld": "test"}, contract_prices=ContractPriceModel("uniform")
        )
        object.__setattr__(self, "_market_prices", np.asarray(market.price, dtype=float))

    def contract_price_block(self, n_contracts, start, stop, out=None):
        stop = min(stop, self.n_scenarios)
        prices = np.repeat(self._market_prices[:, None], stop - start, axis=1)
        if out is not None:
            out[:] = prices
            return out
        return prices


def _all_prices(scenarios: Scenarios, n_contracts: int) -> np.ndarray:
    return scenarios.contract_price_block(n_contracts, 0, scenarios.n_scenarios)


@pytest.mark.parametrize("draw", ["history", "uniform"])
def test_drawn_prices_agree_with_the_reference_loop(draw):
    reference = _reference_module()
    market = synthetic_market(40, 25, 6, seed=3)
    scenarios = paper_scenarios(
        pld_history_2017(), 300, seed=5, contract_prices=ContractPriceModel(draw, 0.6, 1.0)
    )
    ours = network_risk(market, scenarios, chunk_size=37)
    prices = _all_prices(scenarios, market.n_contracts)
    theirs = reference.reference_network_risk(
        market, scenarios.pld.tolist(), contract_prices=prices.tolist()
    )
    assert ours.propagators.any()
    for name in FIGURES:
        np.testing.assert_allclose(getattr(ours, name), theirs[name], rtol=1e-10, atol=1e-13)
    assert ours.summary()["scenario_model"]["contract_prices"]["draw"] == draw
    assert ours.summary()["reference_source"] == "market_contracts_per_scenario"


def test_the_hand_network_with_two_drawn_price_sets():
    reference = _reference_module()
    market = five_agents()
    pld = np.array([200.0, 100.0, 150.0])
    scenarios = ScenarioModel(contract_prices=ContractPriceModel("uniform", 0.5, 1.0)).draw(
        3, seed=1, history=pld
    )
    intrinsic, propagated = reference.reference_exposures(
        market,
        scenarios.pld.tolist(),
        _all_prices(scenarios, market.n_contracts).tolist(),
    )
    result = network_risk(market, scenarios, confidence=0.5, keep_agents=range(5))
    for a in range(5):
        np.testing.assert_allclose(result.kept_losses[a]["intrinsic"], intrinsic[a], rtol=1e-12)
        np.testing.assert_allclose(result.kept_losses[a]["propagated"], propagated[a], rtol=1e-12)


@pytest.mark.parametrize(
    "options",
    [{}, {"cascade": True}, {"failure_probability": {"CM": 0.5, "GE": 0.3}, "seed": 9}],
    ids=["one_round", "cascade", "probabilistic"],
)
def test_constant_prices_give_the_fixed_price_engine(options):
    market = synthetic_market(60, 35, 8, seed=21)
    pld = paper_scenarios(pld_history_2017(), 400, seed=2).pld
    fixed = network_risk(market, pld, group_equal_prices=False, **options)
    priced = network_risk(market, _Constant(pld, market), chunk_size=53, **options)
    for name in (*FIGURES, "failure_frequency", "received_mean_mwh", "undelivered_max_mwh"):
        np.testing.assert_allclose(
            getattr(priced, name), getattr(fixed, name), rtol=1e-10, atol=1e-12
        )
    assert priced.rounds == fixed.rounds and priced.converged == fixed.converged
    np.testing.assert_allclose(priced.reference_price, fixed.reference_price, rtol=1e-12)


def test_results_do_not_depend_on_the_block_size():
    market = synthetic_market(50, 30, 6, seed=8)
    scenarios = paper_scenarios(pld_history_2017(), 500, seed=4)
    a = network_risk(market, scenarios, chunk_size=7)
    b = network_risk(market, scenarios)
    for name in FIGURES:  # the same values; only the order of the tail's sum may differ
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-13, atol=1e-15)


def test_drawn_prices_put_cvar_beyond_var():
    """The paper's finding the fixed prices could not show: with single-week resamples of
    2017, 9 of 52 weeks sit at the cap, so with fixed prices the worst 5 % all sit at the cap
    and CVaR = VaR for every short agent; drawn prices spread the tail. (Not for all: an agent
    with one contract whose drawn price is clipped at lower·PLD in every cap scenario keeps a
    flat tail, which is the bound doing its job.)"""
    market = synthetic_market(120, 70, 10, seed=1)
    history = pld_history_2017()
    fixed = network_risk(market, ScenarioModel(contract_prices=None).draw(2000, 1, history))
    drawn = network_risk(market, paper_scenarios(history, 2000, seed=1))
    short = market.requirement - market.resource > 1e-6
    gap_fixed = (fixed.cvar_intrinsic - fixed.var_intrinsic)[short]
    gap_drawn = (drawn.cvar_intrinsic - drawn.var_intrinsic)[short]
    assert np.allclose(gap_fixed, 0.0, atol=1e-12)
    assert (gap_drawn > 1e-6).mean() > 0.8
    assert fixed.summary()["scenario_model"]["contract_prices"] == "fixed"


def test_the_paper_r_convention_on_every_path():
    """risk_convention reaches every path: the grouped and streamed fixed-price ones (the
    intrinsic figure in closed form) and the priced one, each against var_cvar on the full
    losses; 400 scenarios at 95 %: type 7 interpolates between L(380) and L(381)."""
    from prudencial.risk import exposure_matrices
    from prudencial.risk.measures import PAPER_R, var_cvar

    market = synthetic_market(40, 25, 6, seed=11)
    # A continuous PLD (2017's bootstrap puts the whole tail at the cap, where every
    # convention agrees): lognormal around a forward price, contract prices within its bounds.
    scenarios = ScenarioModel(
        pld="forward_lognormal",
        forward=200.0,
        sigma=0.4,
        contract_prices=ContractPriceModel("uniform", 0.5, 1.0),
    ).draw(400, seed=6)
    pld = scenarios.pld
    full = exposure_matrices(market, pld)
    moved = False
    for options in (
        {},
        {"group_equal_prices": False},
        {"group_equal_prices": False, "chunk_size": 37},
    ):
        ours = network_risk(market, pld, risk_convention="paper_r", **options)
        default = network_risk(market, pld, **options)
        assert ours.summary()["risk_convention"] == {"quantile": "type7", "cvar": "worst_mean"}
        for name, losses in (
            ("intrinsic", full.intrinsic),
            ("propagated", full.propagated),
            ("total", full.total),
        ):
            var_, cvar_ = var_cvar(losses, 0.95, PAPER_R)
            np.testing.assert_allclose(getattr(ours, f"var_{name}"), var_, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(getattr(ours, f"cvar_{name}"), cvar_, rtol=1e-10, atol=1e-13)
            moved |= not np.allclose(getattr(default, f"var_{name}"), var_)
    assert moved  # the conventions differ on this sample, so the test can fail
    priced = network_risk(
        market, scenarios, risk_convention="paper_r", keep_agents=range(market.n_agents)
    )
    for name in ("intrinsic", "propagated", "total"):
        series = np.array([priced.kept_losses[a][name] for a in range(market.n_agents)])
        var_, cvar_ = var_cvar(series, 0.95, PAPER_R)
        np.testing.assert_allclose(getattr(priced, f"var_{name}"), var_, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(getattr(priced, f"cvar_{name}"), cvar_, rtol=1e-10, atol=1e-13)


def test_communities_whose_means_differ_by_rounding_noise_are_ranked_by_the_tie_break():
    from prudencial.risk.communities import Communities
    from prudencial.risk.network import _community_table

    labels = np.array([0, 0, 1, 1, 2])
    communities = Communities(membership=labels, modularity=0.0, method="test")
    # Community 0's mean is above community 1's by rounding noise only (a few ulps).
    propagated = np.array([0.1, 0.2 + 1e-16, 0.15, 0.15, 0.05])
    total = np.array([0.3, 0.3, 0.5, 0.5, 0.1])  # community 1 has the larger total
    table, ranks = _community_table(
        communities, np.zeros(5), propagated, total, np.zeros(5, dtype=bool)
    )
    by_label = {c.community: c.rank for c in table}
    assert by_label == {1: 1, 0: 2, 2: 3}
    assert ranks.tolist() == [2, 2, 1, 1, 3]
    # Equal in both: the label decides.
    table, _ = _community_table(
        communities,
        np.zeros(5),
        propagated,
        np.array([0.3, 0.3, 0.3, 0.3, 0.1]),
        np.zeros(5, dtype=bool),
    )
    assert {c.community: c.rank for c in table} == {0: 1, 1: 2, 2: 3}


def _with_uncosted() -> Market:
    """five_agents plus X, a short consumer whose only contract is priced 0 (its expected cost
    is 0 although it loses at PLD), and Y, a generator with no requirement (nothing to cost)."""
    base = five_agents()
    return Market(
        agent_ids=[*base.agent_ids, "X", "Y"],
        classes=np.array([*base.classes, "CS", "GE"]),
        generation=np.array([*base.generation, 0.0, 30.0]),
        consumption=np.array([*base.consumption, 100.0, 0.0]),
        seller=np.array([*base.seller, 0]),
        buyer=np.array([*base.buyer, 5]),
        volume=np.array([*base.volume, 60.0]),
        price=np.array([*base.price, 0.0]),
    )


def test_agents_without_an_expected_cost_get_r_amounts_and_no_relative_figure():
    market = _with_uncosted()
    pld = np.array([200.0, 100.0, 150.0, 50.0])
    result = network_risk(market, pld, confidence=0.5)
    rows = {r["agent"]: r for r in result.per_agent_table()}
    x, y = rows["X"], rows["Y"]
    assert x["no_expected_cost"] and y["no_expected_cost"] and not rows["T"]["no_expected_cost"]
    assert x["cvar_total"] is None and x["var_intrinsic"] is None
    # X is short 40 MWh with p̂ = 0: it loses 40·PLD; at 50 % the CVaR is the mean of the two
    # worst (200, 150) and the VaR the second worst... of the four sorted losses.
    assert x["cvar_intrinsic_brl"] == pytest.approx(40 * (200 + 150) / 2, rel=1e-12)
    assert x["var_intrinsic_brl"] == pytest.approx(40 * 100, rel=1e-12)
    # Y has generation and no requirement: it sells its surplus at PLD below what it planned.
    planned = result.reference_price[6]
    assert y["cvar_intrinsic_brl"] == pytest.approx(30 * (planned - (50 + 100) / 2), rel=1e-12)
    # Everyone else's R$ figure is its fraction times its expected cost.
    t = rows["T"]
    assert t["cvar_total_brl"] == pytest.approx(t["cvar_total"] * t["expected_cost"], rel=1e-12)
    # Community means count only agents with an expected cost.
    community = result.community[5]
    members = [a for a in range(7) if result.community[a] == community and a not in (5, 6)]
    figures = next(c for c in result.community_table if c.community == community)
    expected = np.mean(result.cvar_propagated[members]) if members else 0.0
    assert figures.mean_cvar_propagated == pytest.approx(expected, abs=1e-15)
    assert result.network_mean["cvar_total"] == pytest.approx(
        result.cvar_total[:5].mean(), rel=1e-12
    )


def test_r_amounts_on_the_priced_path_equal_the_fixed_path_under_constant_prices():
    market = synthetic_market(60, 35, 8, seed=21)
    pld = paper_scenarios(pld_history_2017(), 400, seed=2).pld
    fixed = network_risk(market, pld, group_equal_prices=False)
    priced = network_risk(market, _Constant(pld, market), chunk_size=53)
    for name in FIGURES:
        np.testing.assert_allclose(
            getattr(priced, f"{name}_brl"), getattr(fixed, f"{name}_brl"), rtol=1e-10, atol=1e-8
        )
    np.testing.assert_array_equal(priced.no_expected_cost, fixed.no_expected_cost)
