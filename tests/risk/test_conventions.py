"""VaR/CVaR conventions and the incremental tail, against plain reference computations.

The references are written from the definitions (sorted losses, R's type 7 as numpy's
"linear" quantile, the worst-mean and Acerbi–Tasche CVaR), not from the code under test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prudencial.risk.measures import (
    PAPER_R,
    RiskConvention,
    TailKeeper,
    convention,
    var_cvar,
    var_cvar_from_tail,
    var_cvar_weighted,
)


def reference(losses: np.ndarray, alpha: float, conv: RiskConvention) -> tuple[float, float]:
    x = np.sort(losses)
    n = x.size
    k = math.ceil(alpha * n - 1e-9)
    if conv.quantile == "inverse_cdf":
        v = x[k - 1]
    else:
        v = float(np.quantile(x, alpha, method="linear"))
    if conv.cvar == "acerbi_tasche":
        c = (x[k:].sum() + (k - alpha * n) * x[k - 1]) / (n * (1 - alpha))
    else:
        m = max(1, math.floor(n * (1 - alpha) + 1e-9))
        c = x[n - m :].mean()
    return float(v), float(c)


CONVENTIONS = [
    RiskConvention(),
    RiskConvention("type7", "acerbi_tasche"),
    RiskConvention("inverse_cdf", "worst_mean"),
    PAPER_R,
]


@pytest.mark.parametrize("conv", CONVENTIONS, ids=lambda c: f"{c.quantile}-{c.cvar}")
@pytest.mark.parametrize("n", [1, 2, 19, 20, 21, 999, 1000])
@pytest.mark.parametrize("alpha", [0.9, 0.95, 0.99])
def test_every_convention_equals_its_definition(conv, n, alpha):
    rng = np.random.default_rng(n)
    rows = rng.normal(size=(3, n))
    rows[1] = np.round(rows[1])  # ties
    v, c = var_cvar(rows, alpha, conv)
    for r in range(3):
        ref_v, ref_c = reference(rows[r], alpha, conv)
        assert v[r] == pytest.approx(ref_v, abs=1e-12)
        assert c[r] == pytest.approx(ref_c, abs=1e-12)


@pytest.mark.parametrize("conv", CONVENTIONS, ids=lambda c: f"{c.quantile}-{c.cvar}")
def test_the_tail_alone_gives_the_same_figures(conv):
    rng = np.random.default_rng(7)
    n, alpha = 1000, 0.95
    rows = rng.normal(size=(4, n))
    size = conv.tail_size(n, alpha)
    tail = np.sort(rows, axis=1)[:, n - size :]
    rng.permuted(tail, axis=1, out=tail)  # any order
    np.testing.assert_allclose(
        var_cvar_from_tail(tail, n, alpha, conv), var_cvar(rows, alpha, conv), atol=1e-12
    )
    with pytest.raises(ValueError, match="tail must hold"):
        var_cvar_from_tail(tail[:, 1:], n, alpha, conv)


@pytest.mark.parametrize("conv", CONVENTIONS, ids=lambda c: f"{c.quantile}-{c.cvar}")
def test_distinct_values_with_counts_equal_the_expanded_sample(conv):
    rng = np.random.default_rng(3)
    values = rng.normal(size=(5, 52))
    counts = rng.integers(1, 200, size=52)
    expanded = np.repeat(values, counts, axis=1)
    np.testing.assert_allclose(
        var_cvar_weighted(values, counts, 0.95, conv), var_cvar(expanded, 0.95, conv), atol=1e-12
    )


def test_conventions_by_name_and_unknown_names_refused():
    assert convention(None) == convention("default") == RiskConvention()
    assert convention("paper_r") == PAPER_R
    with pytest.raises(ValueError, match="risk_convention"):
        convention("type8")
    with pytest.raises(ValueError, match="quantile must be one of"):
        RiskConvention("type8")
    with pytest.raises(ValueError, match="cvar must be one of"):
        RiskConvention("type7", "median")


@pytest.mark.parametrize("block", [1, 7, 64, 500])
def test_the_tail_keeper_holds_exactly_the_largest_values(block):
    rng = np.random.default_rng(block)
    rows, n, size = 6, 3000, 151
    data = rng.normal(size=(rows, n))
    data[2] = np.round(data[2] * 2)  # many ties at the threshold
    data[3] = np.linspace(0, 1, n)  # increasing: every block enters
    data[4] = np.linspace(1, 0, n)  # decreasing: nothing enters after warm-up
    data[5, : n // 2] = -np.inf
    keeper = TailKeeper(rows, size, block)
    for start in range(0, n, block):
        keeper.add(data[:, start : start + block])
    kept = np.sort(keeper.tail(), axis=1)
    np.testing.assert_array_equal(kept, np.sort(data, axis=1)[:, n - size :])
    assert keeper.seen == n
    # Fewer partitioned cells than re-partitioning the whole kept tail with every block.
    if block < size:
        assert keeper.cells_partitioned < rows * (size + block) * (n // block)


def test_the_tail_keeper_refuses_a_tail_before_it_has_seen_enough():
    keeper = TailKeeper(2, 10, 4)
    keeper.add(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="fewer than size"):
        keeper.tail()
    with pytest.raises(ValueError, match="size must be"):
        TailKeeper(2, 0, 4)
    with pytest.raises(ValueError, match="must not be NaN"):
        keeper.add(np.array([[1.0, np.nan], [2.0, 3.0]]))
