"""DebtRank, Eisenberg–Noe and cover-2 (prudencial.risk.systemic), on networks computed by hand."""

import itertools
import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from enclave_bridge.enclave.disclosure import SYSTEMIC_FIGURES, published_systemic
from prudencial.risk import bootstrap_pld, network_risk, pld_history_2017, systemic
from prudencial.risk.market import Market
from prudencial.risk.systemic import (
    SystemicOptions,
    contract_obligations,
    cover2,
    debtrank,
    eisenberg_noe,
    exposure_network,
    systemic_measures,
)
from prudencial.risk_tools.synthetic import synthetic_market


def _csr(rows):
    return sp.csr_matrix(np.array(rows, dtype=float))


# --- Eisenberg–Noe --------------------------------------------------------------------------


def test_chain_default_is_fundamental_then_contagious():
    """A owes B 10, B owes C 10; A has 4, B nothing: A pays 4 (fundamental, wave 1), so B can
    pay only 4 (contagious, wave 2); C loses 6."""
    c = eisenberg_noe(_csr([[0, 10, 0], [0, 0, 10], [0, 0, 0]]), np.array([4.0, 0, 0]))
    assert c.payments.tolist() == [4.0, 4.0, 0.0]
    assert c.wave.tolist() == [1, 2, 0]
    assert c.credit_loss.tolist() == [0.0, 6.0, 6.0]
    assert c.recovery.tolist() == [0.4, 0.4, 1.0]


def test_ring_without_cash_clears_in_full_the_greatest_clearing_vector():
    """Eisenberg and Noe (2001), Theorem 2: the clearing vector found is the greatest one. A
    ring A→B→C→A of 10 each with no outside cash also clears at 0, but full payment (10, 10,
    10) is a clearing vector and the greatest."""
    c = eisenberg_noe(_csr([[0, 10, 0], [0, 0, 10], [10, 0, 0]]), np.zeros(3))
    assert c.payments.tolist() == [10.0, 10.0, 10.0]
    assert c.wave.tolist() == [0, 0, 0]


def test_short_ring_by_hand():
    """A→B 10, B→C 10, C→A 5, no cash: A gets 5 and defaults (wave 1), pays 5; B then gets 5
    (wave 2) and pays 5; C gets 5 and owes 5 (pays in full). p = (5, 5, 5)."""
    c = eisenberg_noe(_csr([[0, 10, 0], [0, 0, 10], [5, 0, 0]]), np.zeros(3))
    assert c.payments == pytest.approx([5, 5, 5])
    assert c.wave.tolist() == [1, 2, 0]
    assert c.rounds == 2


def test_outside_creditor_is_paid_pro_rata():
    """A has 6 and owes B 4 and the spot market 8: it pays half of each (B gets 2)."""
    c = eisenberg_noe(_csr([[0, 4], [0, 0]]), np.array([6.0, 0]), outside=np.array([8.0, 0]))
    assert c.payments[0] == pytest.approx(6.0)
    assert c.credit_loss[1] == pytest.approx(2.0)


@pytest.mark.parametrize("seed", range(8))
def test_clearing_vector_solves_eisenberg_noes_linear_programme(seed):
    """Eisenberg and Noe (2001), Lemma 4: with strictly increasing f, max f(p) subject to
    p ≤ Πᵀp + e and 0 ≤ p ≤ p̄ is attained at the (greatest) clearing vector. f = Σp, solved
    by scipy's linprog on random networks, must give our fictitious-default answer."""
    rng = np.random.default_rng(seed)
    n = 12
    L = rng.exponential(10, (n, n)) * (rng.random((n, n)) < 0.3)
    np.fill_diagonal(L, 0)
    e = rng.exponential(6, n) * (rng.random(n) < 0.6)
    outside = rng.exponential(5, n) * (rng.random(n) < 0.3)
    c = eisenberg_noe(sp.csr_matrix(L), e, outside=outside)
    owed = L.sum(axis=1) + outside
    pi = np.divide(L, owed[:, None], out=np.zeros_like(L), where=owed[:, None] > 0)
    lp = linprog(
        -np.ones(n), A_ub=np.eye(n) - pi.T, b_ub=e, bounds=list(zip(np.zeros(n), owed, strict=True)),
        method="highs",
    )  # fmt: skip
    assert lp.success
    assert c.payments == pytest.approx(lp.x, rel=1e-7, abs=1e-7)
    # Fixed point: p = min(p̄, e + Πᵀp).
    assert c.payments == pytest.approx(np.minimum(owed, e + pi.T @ c.payments), abs=1e-9)


# --- DebtRank -------------------------------------------------------------------------------


def test_debtrank_chain_by_hand():
    """Battiston et al. (2012), Eqs. 1–3: A fails (h=1); W[A,B] = 0.5 gives B 0.5 in round 1;
    B passes 1 × 0.5 to C in round 2. With equal values, R_A = (0.5 + 0.5)/3."""
    w = _csr([[0, 0.5, 0], [0, 0, 1], [0, 0, 0]])
    run = debtrank(w, np.array([1.0, 0, 0]))
    assert run.distress.tolist() == [1.0, 0.5, 0.5]
    assert run.rounds == 3
    assert (np.full(3, 1 / 3) @ run.distress - 1 / 3) == pytest.approx(1 / 3)


def test_debtrank_passes_distress_once_on_a_cycle_fixed_point_reverberates():
    """A ↔ B with W = 0.5 both ways, A shocked to 0.4. Battiston: B gets 0.2, gives 0.1 back
    to A (then both are inactive): (0.5, 0.2). Fixed point h = h0 + Wᵀh: h_A = 0.4 + 0.25 h_A,
    so (8/15, 4/15)."""
    w = _csr([[0, 0.5], [0.5, 0]])
    assert debtrank(w, np.array([0.4, 0])).distress == pytest.approx([0.5, 0.2])
    fixed = debtrank(w, np.array([0.4, 0]), method="fixed_point").distress
    assert fixed == pytest.approx([8 / 15, 4 / 15])


def test_debtrank_caps_distress_at_one():
    w = _csr([[0, 0.8, 0], [0, 0, 0], [0, 0.8, 0]])
    run = debtrank(w, np.array([[1.0], [0.0], [1.0]]))
    assert run.distress[:, 0].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("seed", range(5))
def test_battiston_never_exceeds_the_fixed_point(seed):
    rng = np.random.default_rng(seed)
    w = rng.random((15, 15)) * (rng.random((15, 15)) < 0.25)
    np.fill_diagonal(w, 0)
    h0 = rng.random((15, 4)) * (rng.random((15, 4)) < 0.3)
    b = debtrank(sp.csr_matrix(w), h0).distress
    f = debtrank(sp.csr_matrix(w), h0, method="fixed_point").distress
    assert np.all(b <= f + 1e-12)


# --- the exposure network of a market -------------------------------------------------------


def _market():
    """S (GE) sells B (CM) 100 MWh at 200; B sells C (CS) 100 MWh at 250; C also sells 10 back to
    B at 320 (a reciprocal contract, for netting)."""
    return Market(
        agent_ids=["S", "B", "C"],
        classes=["GE", "CM", "CS"],
        generation=[100.0, 0.0, 0.0],
        consumption=[0.0, 0.0, 110.0],
        seller=[0, 1, 2],
        buyer=[1, 2, 1],
        volume=[100.0, 100.0, 10.0],
        price=[200.0, 250.0, 320.0],
    )


def test_obligations_are_replacement_costs_netted_per_pair():
    """At PLD 300: S owes B 100·(300−200) = 10,000; B owes C 100·50 = 5,000; C's sale to B at
    320 is worth −200 to B, so B owes C 200 more... netted per pair: B owes C 5,200. At PLD 100
    the buyers owe: B owes S 10,000; C owes B 15,000 and B owes C 2,200 → C owes B 12,800."""
    high = contract_obligations(_market(), 300).toarray()
    assert high.tolist() == [[0, 10_000, 0], [0, 0, 5_200], [0, 0, 0]]
    gross = contract_obligations(_market(), 100, netting=False).toarray()
    assert gross[2, 1] == 15_000 and gross[1, 2] == 2_200 and gross[1, 0] == 10_000
    net = contract_obligations(_market(), 100).toarray()
    assert net[2, 1] == 12_800 and net[1, 2] == 0


def test_impact_and_initial_distress_by_hand():
    """Capital (1,000; 2,000; 10,000): W[S,B] = min(1, 10,000/2,000) = 1; W[B,C] = 0.52.
    Intrinsic: C consumes 110 and buys 100, sells 10 → requirement 120, resource 100: short 20
    MWh at p̂ = (250·100 + 320·10)/110; loss 20·(300 − p̂)."""
    net = exposure_network(_market(), 300, capital=[1_000, 2_000, 10_000])
    w = net.impact().toarray()
    assert w[0, 1] == 1.0 and w[1, 2] == pytest.approx(0.52)
    p_hat = (250 * 100 + 320 * 10) / 110
    assert net.intrinsic_loss[2] == pytest.approx(20 * (300 - p_hat))
    assert net.initial_distress()[2] == pytest.approx(20 * (300 - p_hat) / 10_000)
    assert net.intrinsic_loss[0] == pytest.approx(0.0)  # S is balanced


def test_systemic_measures_on_the_hand_market():
    result = systemic_measures(_market(), 300.0, options={"capital": [1_000, 2_000, 10_000]})
    s = result.scenarios["stress"]
    v = np.array([1_000, 2_000, 10_000]) / 13_000
    # S fails: B loses everything (1), passes 1 × 0.52 to C. R_S = v_B + 0.52 v_C.
    assert s.debtrank_impact[0] == pytest.approx(v[1] + 0.52 * v[2])
    assert s.debtrank_impact[1] == pytest.approx(0.52 * v[2])
    assert s.debtrank_impact[2] == 0.0
    # Eisenberg–Noe: S has 1,000 and owes 10,000 → pays 1,000 (wave 1); B then has 2,000 +
    # 1,000 and owes 5,200 plus its intrinsic loss, → defaults in wave 2.
    assert s.clearing.wave[0] == 1 and s.clearing.wave[1] == 2
    assert s.clearing.payments[0] == pytest.approx(1_000)
    published = result.published()
    c2 = published["scenarios"]["stress"]["cover2"]
    assert c2["certified"] and c2["exhaustive"] and set(c2["agents"]) == {"S", "B"}
    # S and B fail: only C is left to lose: 0.52·... C's distress from B's full failure.
    assert c2["loss"] == pytest.approx(float(f"{0.52 * v[2]:.4g}"))


def _brute_cover2(impact, weights, method):
    n = impact.shape[0]
    best = 0.0
    for i, j in itertools.combinations(range(n), 2):
        h0 = np.zeros(n)
        h0[[i, j]] = 1
        run = debtrank(impact, h0, method=method)
        best = max(best, float(weights @ run.distress - weights[i] - weights[j]))
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["battiston", "fixed_point"])
def test_cover2_exact_and_pruned_against_every_pair(seed, method):
    market = synthetic_market(18, 10, 4, seed=seed)
    prices = bootstrap_pld(pld_history_2017(), 500, seed=seed)
    result = systemic_measures(market, prices, options={"debtrank": method})
    for s in result.scenarios.values():
        impact = s.network.impact()
        truth = _brute_cover2(impact, s.weights, method)
        assert s.cover2.exhaustive and s.cover2.certified
        assert s.cover2.loss == pytest.approx(truth, abs=1e-12)
        opts = SystemicOptions(debtrank=method, cover2_candidates=3)
        pruned = cover2(impact, s.weights, s.debtrank_impact, s.debtrank_upper,
                        _least(impact, s, method), opts)  # fmt: skip
        assert pruned.loss <= truth + 1e-12
        assert pruned.bound >= truth - 1e-12  # the bound holds
        if pruned.certified:
            assert pruned.loss == pytest.approx(truth, abs=1e-12)
        assert pruned.pairs_evaluated <= 3


def _least(impact, s, method):
    n = impact.shape[0]
    harmless = np.diff(impact.indptr) == 0
    out = np.full(n, np.inf)
    for i in np.flatnonzero(~harmless):
        h0 = np.zeros(n)
        h0[i] = 1
        lost = s.weights * debtrank(impact, h0, method=method).distress
        lost[~harmless] = np.inf
        out[i] = lost.min()
    return out


def test_result_of_network_risk_needs_the_stress_prices_and_uses_its_reference():
    market = synthetic_market(30, 15, 5, seed=3)
    prices = bootstrap_pld(pld_history_2017(), 400, seed=3)
    engine = network_risk(market, prices)
    with pytest.raises(ValueError, match="options.pld is required"):
        systemic_measures(market, engine)
    a = systemic_measures(market, engine, options={"pld": {"cap": 533.82}})
    b = systemic_measures(market, 533.82)
    assert list(a.scenarios) == ["cap"]
    assert a.scenarios["cap"].debtrank_impact == pytest.approx(
        b.scenarios["stress"].debtrank_impact
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"capital": [1.0, 2.0]}, r"options.capital must have one entry per agent \(3\)"),
        ({"capital": [1.0, -2.0, 3.0]}, r"options.capital\[1\] of agent B must be finite"),
        ({"capital": [0.0, 0.0, 0.0]}, "capital sums to zero"),
        ({"capital_fraction": 0}, "options.capital_fraction"),
        ({"debtrank": "pagerank"}, "options.debtrank"),
        ({"cover2_candidates": 1}, "options.cover2_candidates"),
        ({"sides": ["middle"]}, "options.sides"),
        ({"colour": "red"}, "options.colour is not a systemic option"),
        ({"pld": {"x": -1}}, "options.pld.x must be a finite price"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        systemic_measures(_market(), [100.0, 300.0], options=options)


# --- what is published ----------------------------------------------------------------------


def _walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def test_published_holds_fractions_and_ids_only_canary():
    """No R$ amount, volume or price leaves: every number published is a fraction in [0, 1]
    (or a count / wave / round / option), and none of the market's confidential numbers or the
    capital appears."""
    market = synthetic_market(60, 35, 5, seed=2)
    canary = 987_654.321
    capital = np.full(market.n_agents, canary)
    prices = bootstrap_pld(pld_history_2017(), 500, seed=2)
    result = systemic_measures(market, prices, options={"capital": capital})
    published = published_systemic(result)
    assert published == result.published() or set(published) <= set(result.published())
    text = json.dumps(published)
    assert "987654" not in text and "987,654" not in text
    secrets = {
        round(float(x), 2)
        for x in (*market.volume, *market.price, *market.generation, *market.consumption)
        if x > 1
    }
    counts = ("rounds", "distressed", "defaulted", "defaults", "fundamental", "contagious",
              "n_agents", "candidates", "pairs_evaluated", "en_default_wave",
              "cover2_candidates")  # fmt: skip
    for path, value in _walk(published):
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        leaf = path.rsplit(".", 1)[-1]
        if leaf.startswith("timings_s") or path.startswith(".timings_s"):
            continue
        if any(leaf.startswith(c) for c in counts):
            assert float(value).is_integer(), path
            continue
        # Shares are in [0, 1]; a credit loss may exceed the capital, and a bound sums two shares.
        ratio = leaf in ("en_credit_loss_over_capital", "bound")
        assert value >= 0.0 and (ratio or value <= 1.0 + 1e-9), (path, value)
        assert round(float(value), 2) not in secrets, path
    assert "pld" not in text.replace("pld_", "")


def test_disclosure_allow_list_drops_unlisted_names():
    result = systemic_measures(_market(), 300.0, options={"capital": [1_000, 2_000, 10_000]})
    published = published_systemic(result)
    assert set(published) <= set(SYSTEMIC_FIGURES["summary"]) | {"scenarios", "agents"}
    scenario = published["scenarios"]["stress"]
    assert set(scenario["debtrank"]) <= set(SYSTEMIC_FIGURES["debtrank"])
    row = published["agents"][0]
    assert set(row["scenarios"]["stress"]) <= set(SYSTEMIC_FIGURES["agent"])


# --- the fast paths against a plain reference -----------------------------------------------
#
# systemic_measures computes every agent's impact with batched breadth-first layers
# (`_Battiston`), the fixed-point impact through a template fixed point and bounds
# (`_FixedPoint`, `_top_fixed_point`), the zero-impact partners lazily (`_least_zero`) and the
# Eisenberg–Noe defaulters by a Neumann series. Each is checked here against the plain
# per-seed dense loops below (the code systemic.py ran before, rewritten from the definitions).


def _plain_run(w, h0, method, tol=1e-12, max_rounds=10_000):
    """Battiston et al. (2012) Eqs. 1–3, or the least fixed point of h = min(1, h0 + Wᵀh)."""
    w = np.asarray(w.toarray() if sp.issparse(w) else w, dtype=float)
    h = np.minimum(np.asarray(h0, dtype=float), 1.0)
    if method == "battiston":
        active, inactive = h > 0, np.zeros(h.size, bool)
        while active.any():
            h = np.minimum(1.0, h + w.T @ np.where(active, h, 0.0))
            inactive |= active
            active = (h > 0) & ~inactive
        return h
    h0 = h.copy()
    for _ in range(max_rounds):
        nxt = np.minimum(1.0, h0 + w.T @ h)
        moved = float(np.max(nxt - h, initial=0.0))
        h = nxt
        if moved <= tol:
            break
    return h


def _plain_impacts(w, v, groups, method):
    out = []
    for g in groups:
        h0 = np.zeros(w.shape[0])
        h0[list(g)] = 1.0
        out.append(max(float(v @ _plain_run(w, h0, method) - v[list(g)].sum()), 0.0))
    return np.array(out)


def _plain_least(w, v, seeds, method):
    harmless = np.asarray(w.sum(axis=1)).ravel() == 0
    out = np.full(len(seeds), np.inf)
    for j, s in enumerate(seeds):
        if harmless.any():
            h0 = np.zeros(w.shape[0])
            h0[s] = 1.0
            lost = v * _plain_run(w, h0, method)
            lost[~harmless] = np.inf
            out[j] = lost.min()
    return out


def _random_impact(seed, n=40, density=0.08, strong=0.6, sinks=0.3, isolated=0.05, ones=0.15):
    """W with relays, sinks (owe nobody), sources (owed by nobody), isolated agents, a share
    of entries at 1 (capital smaller than the claim) and weights with some zeros."""
    rng = np.random.default_rng(seed)
    w = rng.random((n, n)) * (rng.random((n, n)) < density)
    w = np.where(rng.random((n, n)) < ones, 1.0, np.minimum(1.0, w * (0.2 + strong)))
    w *= w > 0
    w[rng.random(n) < sinks] = 0.0  # owe nobody
    w[:, rng.random(n) < 0.1] = 0.0  # owed by nobody
    lone = rng.random(n) < isolated
    w[lone] = 0.0
    w[:, lone] = 0.0
    np.fill_diagonal(w, 0.0)
    v = rng.random(n) * (rng.random(n) > 0.1)
    return sp.csr_matrix(w), v / v.sum()


def _varied_impact(seed, n=40):
    """Networks from mostly unsaturated (no entry at 1, low gains: no agent saturates the
    largest component) to saturated ones, sparse to dense."""
    ones = (0.0, 0.03, 0.15)[seed % 3]
    strong = (0.2, 0.5, 0.8)[seed // 3 % 3]
    density = (0.05, 0.1, 0.15, 0.1)[seed // 3 % 4]
    return _random_impact(seed, n=n, density=density, strong=strong, ones=ones)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("sparse_share", [0.0, 0.05, 1e9])  # always dense, mixed, always sparse
def test_battiston_batches_match_the_plain_runs(seed, sparse_share, monkeypatch):
    """Single seeds and pairs, in several batches, on one or two threads."""
    monkeypatch.setattr(systemic, "_SPARSE_FLOPS", sparse_share)
    monkeypatch.setattr(systemic, "_WORKERS", 1 + seed % 2)
    rng = np.random.default_rng(100 + seed)
    w, v = _varied_impact(seed, n=30 + 5 * (seed % 4))
    hurts = np.flatnonzero(np.diff(w.indptr) > 0)
    groups = [(int(i),) for i in hurts]
    groups += [tuple(int(x) for x in rng.choice(hurts, 2, replace=False)) for _ in range(15)]
    engine = systemic._Battiston(w, v, batch_cells=7 * w.shape[0])
    assert engine.batch < len(groups)
    got = engine.impacts(groups)
    want = _plain_impacts(w, v, groups, "battiston")
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_battiston_layers_by_hand():
    """S → R1 0.5, S → K 0.6, R1 → K 0.8, R1 → R2 1, R2 → K 0.4 (K owes nobody; its in-weights
    sum to 1.8, so its distress is capped). S fails: round 1 R1 = 0.5, K = 0.6; round 2 R1
    passes 0.5: K = 0.6 + 0.4 = 1.0, R2 = 0.5; round 3 R2 passes 0.5: K = min(1, 1.2) = 1.
    R({S}) = (0.5 + 0.5 + 1)/4. S and R1 fail: R2 = 1 and K = min(1, 0.6 + 0.8) = 1 in round 1:
    R({S, R1}) = (1 + 1)/4."""
    w = sp.csr_matrix(
        np.array([[0, 0.5, 0, 0.6], [0, 0, 1.0, 0.8], [0, 0, 0, 0.4], [0, 0, 0, 0]], dtype=float)
    )
    engine = systemic._Battiston(w, np.full(4, 0.25), batch_cells=100)
    assert engine.relay.tolist() == [1, 2]  # owe and are owed
    assert engine.impacts([(0,), (0, 1)]) == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize("seed", range(12))
def test_fixed_point_runs_and_bounds_match_the_plain_runs(seed):
    """Exact runs (cold, warm from the template, pairs) equal the plain fixed point; the bounds
    hold for every seed; the template settles the members it saturates exactly."""
    rng = np.random.default_rng(200 + seed)
    w, v = _varied_impact(seed, n=35)
    opts = SystemicOptions(batch_cells=5 * w.shape[0])
    fp = systemic._FixedPoint(w, v, opts)
    hurts = np.flatnonzero(np.diff(w.indptr) > 0)
    truth = _plain_impacts(w, v, [(int(i),) for i in hurts], "fixed_point")
    assert fp.impacts([(int(i),) for i in hurts]) == pytest.approx(truth, rel=1e-9, abs=1e-12)
    lower, upper = fp.bounds(hurts, 1e-9)
    assert np.all(lower <= truth + 1e-12) and np.all(truth <= upper + 1e-12)
    settled = fp.above[hurts] & fp.saturated[hurts]
    assert truth[settled] == pytest.approx(fp.base - v[hurts[settled]], rel=1e-9, abs=1e-12)
    pairs = [tuple(int(x) for x in rng.choice(hurts, 2, replace=False)) for _ in range(10)]
    want = _plain_impacts(w, v, pairs, "fixed_point")
    assert fp.impacts(pairs) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_fixed_point_template_by_hand():
    """A ↔ B with W = 1 both ways, B → C 0.3, D → A 0.5 (D is owed by nobody). The unshocked
    map's greatest fixed point on what {A, B} reaches is T = (1, 1, 0.3): A and B saturate each
    other. A's failure has exactly T as its fixed point: R_fp(A) = v_B + 0.3 v_C. D reaches
    {A, B} and starts from max(e_D, T); its fixed point is T + e_D: R_fp(D) = v_A + v_B +
    0.3 v_C (D's 0.5 on A adds nothing to a saturated A)."""
    w = np.zeros((4, 4))
    w[0, 1] = w[1, 0] = 1.0
    w[1, 2] = 0.3
    w[3, 0] = 0.5
    v = np.array([0.1, 0.2, 0.3, 0.4])
    fp = systemic._FixedPoint(sp.csr_matrix(w), v, SystemicOptions())
    assert fp.template.tolist() == pytest.approx([1, 1, 0.3, 0])
    assert fp.above.tolist() == [True, True, False, True]
    got = fp.impacts([(0,), (3,)])
    assert got == pytest.approx([0.2 + 0.3 * 0.3, 0.1 + 0.2 + 0.3 * 0.3])


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("need", [1, 3, 6])
def test_top_fixed_point_is_exact_where_cover2_looks(seed, need):
    """The pruning rule against brute force: the `need` largest fixed-point impacts are exact
    (and so is every entry marked exact); every other entry is an upper bound that stays below
    the need-th largest, so cover-2's candidates and bound are those of the exact figures."""
    w, v = _varied_impact(seed)
    hurts = np.flatnonzero(np.diff(w.indptr) > 0)
    single = _plain_impacts(w, v, [(int(i),) for i in hurts], "battiston")
    truth = _plain_impacts(w, v, [(int(i),) for i in hurts], "fixed_point")
    fp = systemic._FixedPoint(w, v, SystemicOptions())
    values, exact = systemic._top_fixed_point(fp, hurts, single, need)
    assert values[exact] == pytest.approx(truth[exact], rel=1e-9, abs=1e-12)
    assert np.all(values >= truth - 1e-12)
    top = np.argsort(-truth, kind="stable")[:need]
    assert exact[top].all()
    if (~exact).any():
        assert values[~exact].max() < np.sort(truth)[-min(need, truth.size)]


@pytest.mark.parametrize("seed", range(6))
def test_least_zero_partner_against_brute_force(seed):
    """Without an isolated or capital-less agent the zero-impact partner is searched in
    decreasing order of single: where computed it is the brute-force least, and the best gain
    single − least is the brute-force best (what cover-2 uses)."""
    w, v = _random_impact(seed, n=30, isolated=0.0, sinks=0.35)
    v = np.maximum(v, 1e-3)
    v /= v.sum()
    hurts = np.flatnonzero(np.diff(w.indptr) > 0)
    single = _plain_impacts(w, v, [(int(i),) for i in hurts], "battiston")
    brute = _plain_least(w, v, hurts, "battiston")
    got = systemic._least_zero(w, v, hurts, single, SystemicOptions())
    done = np.isfinite(got)
    assert got[done] == pytest.approx(brute[done], rel=1e-12, abs=1e-15)
    assert np.max(single - got) == pytest.approx(np.max(single - brute), rel=1e-12)


def test_least_zero_is_zero_with_an_agent_nobody_reaches():
    w, v = _random_impact(3, n=30, isolated=0.2)
    hurts = np.flatnonzero(np.diff(w.indptr) > 0)
    got = systemic._least_zero(w, v, hurts, np.ones(hurts.size), SystemicOptions())
    assert got.tolist() == [0.0] * hurts.size
    assert _plain_least(w, v, hurts, "battiston").tolist() == [0.0] * hurts.size


def _plain_systemic(result, market_scenario, method, candidates):
    """What systemic_measures published before: every impact and fixed-point impact from a
    plain run per agent, cover-2 from those."""
    s = market_scenario
    impact = s.network.impact()
    n = impact.shape[0]
    hurts = np.flatnonzero(np.diff(impact.indptr) > 0)
    seeds = [(int(i),) for i in hurts]
    single = np.zeros(n)
    single[hurts] = _plain_impacts(impact, s.weights, seeds, method)
    upper = single.copy()
    upper[hurts] = np.maximum(
        _plain_impacts(impact, s.weights, seeds, "fixed_point"), single[hurts]
    )
    least = np.full(n, np.inf)
    least[hurts] = _plain_least(impact, s.weights, hurts, method)
    opts = SystemicOptions(debtrank=method, cover2_candidates=candidates)
    c2 = cover2(impact, s.weights, single, upper, least, opts,
                runs=lambda g: _plain_impacts(impact, s.weights, g, method))  # fmt: skip
    return single, upper, c2


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("method", "candidates"), [("battiston", 40), ("battiston", 3),
                                                     ("fixed_point", 4)])  # fmt: skip
def test_systemic_measures_publish_what_the_plain_runs_give(seed, method, candidates):
    market = synthetic_market(70, 40, 10, seed=seed, n_contracts=400)
    prices = bootstrap_pld(pld_history_2017(), 500, seed=seed)
    opts = {"debtrank": method, "cover2_candidates": candidates}
    result = systemic_measures(market, prices, options=opts)
    for s in result.scenarios.values():
        single, upper, c2 = _plain_systemic(result, s, method, candidates)
        assert s.debtrank_impact == pytest.approx(single, rel=1e-11, abs=1e-15)
        exact = s.debtrank_upper_exact
        assert s.debtrank_upper[exact] == pytest.approx(upper[exact], rel=1e-9, abs=1e-12)
        assert np.all(s.debtrank_upper >= upper - 1e-12)
        assert s.cover2.agents == c2.agents
        assert s.cover2.loss == pytest.approx(c2.loss, rel=1e-11, abs=1e-15)
        assert s.cover2.bound == pytest.approx(c2.bound, rel=1e-9, abs=1e-12)
        assert (s.cover2.certified, s.cover2.exhaustive) == (c2.certified, c2.exhaustive)
        assert (s.cover2.candidates, s.cover2.pairs_evaluated, s.cover2.distressed) == (
            c2.candidates, c2.pairs_evaluated, c2.distressed)  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_neumann_defaulters_match_the_sparse_lu(seed):
    rng = np.random.default_rng(300 + seed)
    n = 25
    owed = rng.exponential(10, (n, n)) * (rng.random((n, n)) < 0.25)
    np.fill_diagonal(owed, 0)
    outside = rng.exponential(3, n) * (rng.random(n) < 0.5)
    total = owed.sum(axis=1) + outside
    pi = np.divide(owed, total[:, None], out=np.zeros_like(owed), where=total[:, None] > 0)
    inner = sp.csr_matrix(pi.T)
    b = rng.exponential(2, n)
    got = systemic._neumann(inner, b)
    if got is None:  # a block that pays only itself: left to the LU
        return
    want = np.linalg.solve(np.eye(n) - pi.T, b)
    assert got == pytest.approx(want, rel=1e-12)


def test_neumann_leaves_a_closed_group_to_the_lu():
    """A block of defaulters that pays only itself (Π restricted to it stochastic) is singular:
    the series is not used there (the LU and its downward fallback are, as before), while a
    block that leaks is solved by it."""
    closed = sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]]))
    assert systemic._neumann(closed, np.ones(2)) is None
    leaky = sp.csr_matrix(np.array([[0, 0.5], [0.5, 0]]))
    assert systemic._neumann(leaky, np.ones(2)) == pytest.approx([2.0, 2.0])


def test_fixed_point_runs_stop_on_what_is_left_not_on_the_last_move():
    """S → A 0.1, A ↔ B 0.9 both ways: h_A = 0.1 + 0.9·h_B, h_B = 0.9·h_A, so h_A = 0.1/0.19
    and h_B = 0.09/0.19; the iteration closes in on it at rate 0.9 a round, so stopping at a
    move ≤ 1e-12 would leave ~1e-11. The runs stop when the geometric tail is below 1% of the
    tolerance: the figure is the closed form to 1e-13."""
    w = np.zeros((3, 3))
    w[0, 1], w[1, 2], w[2, 1] = 0.1, 0.9, 0.9
    v = np.array([0.2, 0.3, 0.5])
    fp = systemic._FixedPoint(sp.csr_matrix(w), v, SystemicOptions())
    want = 0.3 * 0.1 / 0.19 + 0.5 * 0.09 / 0.19
    assert abs(fp.impacts([(0,)])[0] - want) < 1e-13
    moved, last = np.array([1e-13, 1e-13, 0.0]), np.array([1.05e-13, 1e-11, np.nan])
    assert systemic._settled(moved, last, 1e-12).tolist() == [False, True, True]


def test_equal_impacts_are_listed_in_agent_order():
    """Two sellers with the same book and capital hurt the buyer alike: their impacts are
    equal, so `top` lists them in agent order and cover-2 takes the first pair of the tie,
    whatever order the sums were taken in (ties are equal to 12 decimals)."""
    market = Market(
        agent_ids=["B", "S1", "S2"],
        classes=["CM", "GE", "GE"],
        generation=[0.0, 100.0, 100.0],
        consumption=[200.0, 0.0, 0.0],
        seller=[1, 2],
        buyer=[0, 0],
        volume=[100.0, 100.0],
        price=[200.0, 200.0],
    )
    result = systemic_measures(market, 300.0, options={"capital": [5_000, 1_000, 1_000]})
    top = result.published()["scenarios"]["stress"]["debtrank"]["top"]
    assert [t["agent"] for t in top] == ["S1", "S2"]
    assert top[0]["impact"] == top[1]["impact"]
    assert systemic._first_max(np.array([0.3, 0.5, 0.5 + 1e-15, 0.5])) == 1
    assert systemic._first_max(np.array([0.3, 0.5, 0.5 + 1e-9])) == 2


@pytest.mark.parametrize("shape", [(7, 5, 3), (0, 4, 2), (6, 0, 3), (30, 30, 64)])
def test_reused_buffer_product_is_the_sparse_product(shape):
    rows, inner, cols = shape
    rng = np.random.default_rng(sum(shape))
    a = sp.random(rows, inner, density=0.3, format="csr", random_state=rng)
    x = rng.random((inner, cols))
    out = np.full((rows, cols), np.nan)
    assert systemic._spmm(a, x, out) is out
    assert out == pytest.approx(a @ x, rel=1e-15, abs=0)
