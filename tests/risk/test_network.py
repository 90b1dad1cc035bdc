import numpy as np
import pytest

from prudencial.risk import (
    Market,
    bootstrap_pld,
    exposure_matrices,
    network_risk,
    network_stress,
    pld_history_2017,
)
from prudencial.risk.network import contract_book, propagate
from prudencial.risk_tools.synthetic import synthetic_market


def five_agents() -> Market:
    """G1 → T 100 MWh @100; T → C1 60 @120; T → C2 90 @110; G2 → C2 50 @100.

    G1 generates 100 (balanced), G2 generates 50 (balanced), T buys 100 and sells 150 (short 50),
    C1 consumes 60 (balanced), C2 consumes 150 against 140 bought (short 10).
    """
    return Market(
        agent_ids=["G1", "T", "C1", "C2", "G2"],
        classes=np.array(["GE", "CM", "CS", "CS", "GE"]),
        generation=np.array([100.0, 0.0, 0.0, 0.0, 50.0]),
        consumption=np.array([0.0, 0.0, 60.0, 150.0, 0.0]),
        seller=np.array([0, 1, 1, 4]),
        buyer=np.array([1, 2, 3, 3]),
        volume=np.array([100.0, 60.0, 90.0, 50.0]),
        price=np.array([100.0, 120.0, 110.0, 100.0]),
    )


def test_five_agent_network_by_hand():
    m = exposure_matrices(five_agents(), [200.0, 100.0])
    # Reference prices (volume-weighted over each agent's contracts):
    #   T:  (100·100 + 60·120 + 90·110) / 250 = 27,100 / 250 = 108.4
    #   C1: 120;  C2: (90·110 + 50·100) / 140 = 14,900 / 140 = 106.428571…
    # Expected costs = requirement · reference price:
    #   G1 100·100 = 10,000; T 150·108.4 = 16,260; C1 60·120 = 7,200;
    #   C2 150·106.428571 = 15,964.2857…; G2 50·100 = 5,000
    c2_cost = 150 * 14_900 / 140
    # PLD 200: intrinsic = deficit·(PLD − p̂)/cost
    #   T:  50·(200 − 108.4)/16,260 = 4,580/16,260
    #   C2: 10·(200 − 106.428571)/15,964.2857 = 935.714286/15,964.2857
    expected_intrinsic = [0.0, 4_580 / 16_260, 0.0, 10 * (200 - 14_900 / 140) / c2_cost, 0.0]
    np.testing.assert_allclose(m.intrinsic[:, 0], expected_intrinsic, rtol=1e-12, atol=1e-15)
    # T is short and PLD 200 > 108.4, so it fails to deliver min(50, 150) = 50 MWh,
    # split by volume bought: C1 60/150·50 = 20 MWh, C2 90/150·50 = 30 MWh.
    np.testing.assert_allclose(m.undelivered[:, 0], [0, 50, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(m.received[:, 0], [0, 0, 20, 30, 0], atol=1e-12)
    # Propagated = received·(PLD − contract price)/cost:
    #   C1: 20·(200 − 120)/7,200 = 1,600/7,200 = 0.2222…
    #   C2: 30·(200 − 110)/15,964.2857 = 2,700/15,964.2857 = 0.169128…
    np.testing.assert_allclose(
        m.propagated[:, 0], [0, 0, 1_600 / 7_200, 2_700 / c2_cost, 0], rtol=1e-12, atol=1e-15
    )
    # PLD 100 < 108.4: T's short position gains (intrinsic 50·(100 − 108.4)/16,260 < 0),
    # so it does not fail and nothing propagates.
    assert m.intrinsic[1, 1] == pytest.approx(-420 / 16_260, rel=1e-12)
    assert not m.propagated[:, 1].any()
    np.testing.assert_allclose(m.total, m.intrinsic + m.propagated)


def chain() -> Market:
    """A → B → C → D, 100 MWh each at 100; A generates only 50, B and C are pass-through."""
    return Market(
        agent_ids=["A", "B", "C", "D"],
        classes=np.array(["GE", "CM", "CM", "CS"]),
        generation=np.array([50.0, 0.0, 0.0, 0.0]),
        consumption=np.array([0.0, 0.0, 0.0, 100.0]),
        seller=np.array([0, 1, 2]),
        buyer=np.array([1, 2, 3]),
        volume=np.array([100.0, 100.0, 100.0]),
        price=np.array([100.0, 100.0, 100.0]),
    )


def test_one_round_stops_at_the_first_buyer():
    m = exposure_matrices(chain(), [300.0])
    np.testing.assert_allclose(m.received[:, 0], [0, 50, 0, 0])
    assert m.rounds == 1
    # B: 50·(300 − 100)/(100·100) = 1.0
    np.testing.assert_allclose(m.propagated[:, 0], [0, 1.0, 0, 0])


def test_cascade_reaches_the_fixed_point():
    m = exposure_matrices(chain(), [300.0], cascade=True)
    # Round 1: A fails 50 → B; round 2: B now short 50 fails → C; round 3: C fails → D.
    assert m.rounds == 3 and m.converged
    np.testing.assert_allclose(m.undelivered[:, 0], [50, 50, 50, 0])
    np.testing.assert_allclose(m.received[:, 0], [0, 50, 50, 50])
    np.testing.assert_allclose(m.propagated[:, 0], [0, 1.0, 1.0, 1.0])


def test_cascade_on_a_cycle_converges_within_tolerance():
    # A ⇄ B: A short sells to B, B resells half back to A.
    market = Market(
        agent_ids=["A", "B", "C"],
        classes=np.array(["CM", "CM", "CS"]),
        generation=np.zeros(3),
        consumption=np.array([0.0, 0.0, 50.0]),
        seller=np.array([0, 1, 1]),
        buyer=np.array([1, 0, 2]),
        volume=np.array([100.0, 50.0, 50.0]),
        price=np.array([100.0, 100.0, 100.0]),
    )
    m = exposure_matrices(market, [400.0], cascade=True)
    assert m.converged and m.rounds > 3
    # Fixed point: A's shortfall = 50 + received_A, capped at its sales 100 → A fails 100,
    # B then misses 100 and fails its full 100 (50 to A, 50 to C); A's shortfall 100 = cap.
    np.testing.assert_allclose(m.undelivered[:, 0], [100, 100, 0], rtol=1e-6)


def test_conservation_on_a_synthetic_market():
    market = synthetic_market(120, 60, 20, seed=5)
    prices = bootstrap_pld(pld_history_2017(), 300, seed=5)
    book = contract_book(market, prices.mean())
    totals = {}
    for cascade in (False, True):
        undelivered, received, _ = propagate(book, prices, cascade=cascade).expand(200)
        shortfall = np.maximum(book.deficit[:, None] + received, 0)
        assert np.all(undelivered <= shortfall + 1e-9)
        assert np.all(undelivered <= market.sales[:, None] + 1e-9)
        assert np.all(received <= market.purchases[:, None] + 1e-9)
        np.testing.assert_allclose(received.sum(0), undelivered.sum(0), rtol=1e-12)
        # per contract: the undelivered share never exceeds the contract volume
        share = market.volume / market.sales[market.seller]
        per_contract = share[:, None] * undelivered[market.seller]
        assert np.all(per_contract <= market.volume[:, None] + 1e-9)
        assert undelivered.any()
        totals[cascade] = received.sum()
    assert totals[True] > totals[False]  # later rounds add failures


def test_probabilistic_failure_limits():
    market = synthetic_market(60, 30, 10, seed=2)
    prices = bootstrap_pld(pld_history_2017(), 400, seed=2)
    worst = network_risk(market, prices, seed=3)
    certain = network_risk(market, prices, failure_probability=1.0, seed=3)
    never = network_risk(market, prices, failure_probability={"GE": 0.0, "CM": 0.0}, seed=3)
    # p = 1 takes the Monte Carlo path (sparse split), the worst case a cumulative shortcut:
    # equal to rounding.
    np.testing.assert_allclose(certain.cvar_propagated, worst.cvar_propagated, rtol=1e-12)
    np.testing.assert_allclose(certain.var_total, worst.var_total, rtol=1e-12)
    assert worst.cvar_propagated.max() > 0
    assert not never.received_max_mwh.any() and not never.cvar_propagated.any()
    np.testing.assert_array_equal(never.cvar_intrinsic, worst.cvar_intrinsic)
    half = network_risk(market, prices, failure_probability=0.5, seed=3)
    assert 0 < half.received_mean_mwh.sum() < worst.received_mean_mwh.sum()


def test_same_seed_same_numbers():
    a = synthetic_market(80, 40, 10, seed=11)
    b = synthetic_market(80, 40, 10, seed=11)
    for name in ("generation", "consumption", "seller", "buyer", "volume", "price"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    pa = bootstrap_pld(pld_history_2017(), 500, seed=4)
    np.testing.assert_array_equal(pa, bootstrap_pld(pld_history_2017(), 500, seed=4))
    ra = network_risk(a, pa, failure_probability=0.3, seed=9, community_method="louvain")
    rb = network_risk(b, pa, failure_probability=0.3, seed=9, community_method="louvain")
    np.testing.assert_array_equal(ra.cvar_total, rb.cvar_total)
    np.testing.assert_array_equal(ra.community, rb.community)
    assert synthetic_market(80, 40, 10, seed=12).volume.sum() != a.volume.sum()


def test_chunking_does_not_change_results():
    market = synthetic_market(50, 30, 10, seed=8)
    prices = bootstrap_pld(pld_history_2017(), 333, seed=8)
    whole = network_risk(market, prices, cascade=True, failure_probability=0.7, seed=1)
    chunks = network_risk(
        market, prices, cascade=True, failure_probability=0.7, seed=1, chunk_size=25
    )
    for name in ("var_intrinsic", "cvar_propagated", "cvar_total", "received_max_mwh"):
        np.testing.assert_allclose(getattr(chunks, name), getattr(whole, name), rtol=1e-12)


def test_network_risk_matches_full_matrices():
    market = synthetic_market(40, 20, 8, seed=4)
    prices = bootstrap_pld(pld_history_2017(), 200, seed=4)
    full = exposure_matrices(market, prices)
    result = network_risk(market, prices, confidence=0.9, keep_agents=[3])
    from prudencial.risk import cvar, var

    np.testing.assert_allclose(result.var_total, var(full.total, 0.9), rtol=1e-12)
    np.testing.assert_allclose(result.cvar_propagated, cvar(full.propagated, 0.9), rtol=1e-12)
    np.testing.assert_allclose(result.kept_losses[3]["total"], full.total[3])


def test_result_table_and_dict():
    market = synthetic_market(60, 30, 10, seed=6)
    result = network_risk(market, bootstrap_pld(pld_history_2017(), 200, seed=6))
    rows = result.per_agent_table()
    assert len(rows) == 100
    k = result.n_communities
    assert {r["n_communities"] for r in rows} == {k}
    trading = [c for c in result.community_table if not c.isolated]
    lone = [c for c in result.community_table if c.isolated]
    assert len(trading) == k and len(lone) == result.n_isolated > 0  # this market has some
    # Ranks 1…K for communities of agents that trade, lone agents after them.
    assert sorted(c.rank for c in trading) == list(range(1, k + 1))
    assert sorted(c.rank for c in lone) == list(range(k + 1, k + len(lone) + 1))
    worst = min(result.community_table, key=lambda c: c.rank)
    assert worst.mean_cvar_propagated == max(c.mean_cvar_propagated for c in trading)
    traded = next(r for a, r in enumerate(rows) if not result.isolated[a])
    assert traded["network_position"] == f"{traded['community_rank']} of {k}"
    alone = [r for a, r in enumerate(rows) if result.isolated[a]]
    assert all(r["network_position"] == "isolated" and r["community_rank"] is None for r in alone)
    assert all(r["cvar_intrinsic"] > 0 for r in alone if r["net_mwh"] < 0)  # own figures kept
    data = result.to_dict()
    assert data["n_communities"] == k and len(data["agents"]) == 100
    assert data["n_isolated"] == len(alone)


def test_network_stress_floor_and_cap():
    out = network_stress(five_agents(), {"floor": 33.68, "cap": 533.82}, reference_pld=150.0)
    # At the cap T fails (533.82 > 108.4) and C1 loses 20·(533.82 − 120)/7,200.
    assert out["cap"]["propagated"][2] == pytest.approx(20 * (533.82 - 120) / 7_200, rel=1e-12)
    assert out["cap"]["failing_sellers"] == 1 and out["floor"]["failing_sellers"] == 0


def test_market_validation():
    with pytest.raises(ValueError, match="market.seller and market.buyer must differ"):
        Market(["A", "B"], np.array(["GE", "CS"]), np.zeros(2), np.zeros(2),
               np.array([0]), np.array([0]), np.array([1.0]), np.array([1.0]))  # fmt: skip
    with pytest.raises(ValueError, match="market.volume"):
        Market(["A", "B"], np.array(["GE", "CS"]), np.zeros(2), np.zeros(2),
               np.array([0]), np.array([1]), np.array([-1.0]), np.array([1.0]))  # fmt: skip


def test_synthetic_market_follows_table_1():
    m = synthetic_market(seed=1)
    assert m.n_agents == 1000
    assert [int((m.classes == c).sum()) for c in ("CS", "GE", "CM")] == [600, 350, 50]
    assert not np.any(m.classes[m.seller] == "CS")  # consumers never sell
    assert not m.generation[m.classes != "GE"].any()
    assert not m.consumption[m.classes != "CS"].any()
    assert (m.net < 0).any() and (m.net > 0).any()
    history = pld_history_2017()
    assert m.price.min() >= history.min() and m.price.max() <= history.max()


def with_unhedged_consumer() -> Market:
    """five_agents() plus U, a consumer of 100 MWh without any contract.

    The market's contracts trade at a volume-weighted mean of
    (100·100 + 60·120 + 90·110 + 50·100) / 300 = 32,100 / 300 = 107 R$/MWh.
    """
    base = five_agents()
    return Market(
        agent_ids=[*base.agent_ids, "U"],
        classes=np.array([*base.classes, "CS"]),
        generation=np.append(base.generation, 0.0),
        consumption=np.append(base.consumption, 100.0),
        seller=base.seller,
        buyer=base.buyer,
        volume=base.volume,
        price=base.price,
    )


def test_unhedged_consumer_is_valued_at_the_market_contract_price():
    market = with_unhedged_consumer()
    # U expected to buy its 100 MWh at the market's contract price 107 (CstEsp = 10,700) and
    # pays PLD instead: at PLD 200 it loses 100·(200 − 107)/10,700 = 93/107 of its expected cost.
    # The reference must not come from the scenarios themselves: with one scenario at 200 a
    # scenario-mean reference would be 200 and the unhedged consumer would show no loss at all.
    single = exposure_matrices(market, [200.0])
    assert single.intrinsic[5, 0] == pytest.approx(93 / 107, rel=1e-12)
    stress = network_stress(market, {"cap": 533.82})
    assert stress["cap"]["intrinsic"][5] == pytest.approx((533.82 - 107) / 107, rel=1e-12)
    # An explicit reference still wins (e.g. CCEE's forward price for the month).
    forward = exposure_matrices(market, [200.0], reference_pld=150.0)
    assert forward.intrinsic[5, 0] == pytest.approx(50 / 150, rel=1e-12)
    # Agents with contracts keep their own reference price.
    np.testing.assert_allclose(
        single.intrinsic[:5], exposure_matrices(five_agents(), [200.0]).intrinsic
    )


def test_higher_prices_never_lower_an_unhedged_consumers_loss():
    market = with_unhedged_consumer()
    prices = bootstrap_pld(pld_history_2017(), 400, seed=3)
    low = network_risk(market, prices)
    high = network_risk(market, prices + 100.0)
    # Every short agent loses more when every scenario is R$ 100/MWh dearer.
    assert high.var_intrinsic[5] > low.var_intrinsic[5]
    assert high.cvar_intrinsic[5] > low.cvar_intrinsic[5]
    assert high.cvar_intrinsic[5] == pytest.approx(low.cvar_intrinsic[5] + 100 / 107, rel=1e-12)
    assert low.reference_price[5] == pytest.approx(107.0, rel=1e-12)


def test_market_without_contracts_falls_back_to_the_scenario_mean_and_says_so():
    market = Market(["U", "G"], np.array(["CS", "GE"]), np.array([0.0, 10.0]),
                    np.array([10.0, 0.0]), np.zeros(0), np.zeros(0), np.zeros(0),
                    np.zeros(0))  # fmt: skip
    # No contract price anywhere: the only price at hand is the scenarios' mean (150 here).
    result = network_risk(market, [100.0, 200.0], confidence=0.5)
    assert result.summary()["reference_source"] == "scenario_mean"
    assert result.var_intrinsic[0] == pytest.approx(-50 / 150)
    assert result.cvar_intrinsic[0] == pytest.approx(50 / 150)
    given = network_risk(market, [100.0, 200.0], confidence=0.5, reference_pld=100.0)
    assert given.summary()["reference_source"] == "given"
    assert given.cvar_intrinsic[0] == pytest.approx(1.0)
    traded = network_risk(five_agents(), [100.0, 200.0], confidence=0.5)
    assert traded.summary()["reference_source"] == "market_contracts"


def _reference_module():
    """bench/risk_reference.py: the per-agent, per-scenario loop kept as the reference."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "risk_reference.py"
    spec = importlib.util.spec_from_file_location("risk_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_engine_agrees_with_the_reference_loop():
    """The vectorised engine and the naive loop of bench/ agree to 1e-9 relative (the bench
    checks the paper's case; this keeps the agreement under test on every run)."""
    reference = _reference_module()
    market = synthetic_market(90, 50, 10, seed=13)
    prices = bootstrap_pld(pld_history_2017(), 400, seed=13)
    ours = network_risk(market, prices, chunk_size=70)
    theirs = reference.reference_network_risk(market, prices.tolist())
    assert ours.propagators.any()
    for name, values in theirs.items():
        np.testing.assert_allclose(getattr(ours, name), values, rtol=1e-9, atol=1e-12)
    # The hand-built network too, where the reference's loop can be read line by line.
    intrinsic, propagated = reference.reference_exposures(five_agents(), [200.0, 100.0])
    m = exposure_matrices(five_agents(), [200.0, 100.0])
    np.testing.assert_allclose(m.intrinsic, intrinsic, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m.propagated, propagated, rtol=1e-12, atol=1e-15)


def test_failure_probability_per_agent():
    """A per-agent array: an agent with p = 0 never fails, p = 1 fails whenever it can."""
    market = five_agents()
    prices = [200.0] * 50
    never = np.ones(5)
    never[1] = 0.0  # T, the only short seller
    quiet = exposure_matrices(market, prices, failure_probability=never, seed=1)
    assert not quiet.undelivered.any() and not quiet.propagated.any()
    always = exposure_matrices(market, prices, failure_probability=np.ones(5), seed=1)
    np.testing.assert_allclose(always.undelivered[1], 50.0)
    half = np.full(5, 1.0)
    half[1] = 0.5
    some = exposure_matrices(market, prices, failure_probability=half, seed=1)
    fails = some.undelivered[1] > 0
    assert 0 < fails.sum() < 50
    # Where T fails, C1 receives its 20 MWh share; where it does not, nothing.
    np.testing.assert_allclose(some.received[2], np.where(fails, 20.0, 0.0))
    with pytest.raises(ValueError, match="between 0 and 1"):
        exposure_matrices(market, prices, failure_probability=np.full(5, 1.5))


@pytest.mark.parametrize("cascade", [False, True])
def test_grouping_equal_prices_is_exact(cascade):
    """Single-week bootstrap scenarios repeat the history's 52 prices: computing each distinct
    price once (the default) must give the streamed engine's figures, field by field."""
    market = synthetic_market(60, 35, 6, seed=21)
    prices = bootstrap_pld(pld_history_2017(), 2_000, seed=21)
    assert np.unique(prices).size <= 52
    kwargs = {"cascade": cascade, "keep_agents": [0, 70], "community_method": "louvain", "seed": 1}
    grouped = network_risk(market, prices, **kwargs)
    streamed = network_risk(market, prices, group_equal_prices=False, chunk_size=300, **kwargs)
    for name in (
        "var_intrinsic", "cvar_intrinsic", "var_propagated", "cvar_propagated", "var_total",
        "cvar_total", "received_mean_mwh", "received_max_mwh", "undelivered_mean_mwh",
        "undelivered_max_mwh", "failure_frequency",
    ):  # fmt: skip
        np.testing.assert_allclose(
            getattr(grouped, name), getattr(streamed, name), rtol=1e-12, atol=1e-12, err_msg=name
        )
    assert grouped.rounds == streamed.rounds and grouped.converged == streamed.converged
    assert np.any(grouped.cvar_propagated > 0)
    for agent in (0, 70):
        for series in ("propagated", "total"):
            np.testing.assert_allclose(
                grouped.kept_losses[agent][series], streamed.kept_losses[agent][series]
            )
