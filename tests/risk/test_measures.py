import numpy as np
import pytest

from prudencial.risk import cvar, var
from prudencial.risk.measures import merge_tail, tail_size, var_cvar_from_tail


def test_single_sample_is_its_own_var_and_cvar():
    assert var([7.5]) == 7.5
    assert cvar([7.5]) == pytest.approx(7.5, rel=1e-12)


def test_ties():
    # sorted: 1, 2, 2, 2, 5; α = 0.5 → αN = 2.5, k = 3, VaR = L(3) = 2
    # CVaR = (L4 + L5 + (3 − 2.5)·L3) / (5·0.5) = (2 + 5 + 1) / 2.5 = 3.2
    losses = [5.0, 2.0, 1.0, 2.0, 2.0]
    assert var(losses, 0.5) == 2.0
    assert cvar(losses, 0.5) == pytest.approx(3.2, rel=1e-12)


def test_tail_not_whole():
    # 1..25, α = 0.9 → αN = 22.5, k = 23: VaR = 23,
    # CVaR = (24 + 25 + 0.5·23) / 2.5 = 60.5 / 2.5 = 24.2
    losses = np.random.default_rng(0).permutation(np.arange(1.0, 26.0))
    assert var(losses, 0.9) == 23.0
    assert cvar(losses, 0.9) == pytest.approx(24.2, rel=1e-12)


def test_float_guard_on_whole_tail():
    # 0.95·100 = 95.00000000000001 in floating point; k must be 95, not 96.
    losses = np.arange(1.0, 101.0)[::-1]
    assert var(losses, 0.95) == 95.0
    assert cvar(losses, 0.95) == pytest.approx(np.mean([96, 97, 98, 99, 100]), rel=1e-12)


def test_vectorised_rows_match_row_by_row():
    rows = np.random.default_rng(1).normal(size=(6, 37))
    v, c = var(rows, 0.9), cvar(rows, 0.9)
    assert v.shape == c.shape == (6,)
    for i, row in enumerate(rows):
        assert v[i] == var(row, 0.9)
        assert c[i] == pytest.approx(cvar(row, 0.9), rel=1e-12)
        assert c[i] >= v[i]


def test_streamed_tail_equals_direct():
    rows = np.random.default_rng(2).lognormal(size=(4, 203))
    size = tail_size(203, 0.95)
    tail = None
    for start in range(0, 203, 17):
        tail = merge_tail(tail, rows[:, start : start + 17], size)
    v, c = var_cvar_from_tail(tail, 203, 0.95)
    np.testing.assert_array_equal(v, var(rows, 0.95))
    np.testing.assert_allclose(c, cvar(rows, 0.95), rtol=1e-12)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1])
def test_confidence_out_of_range(confidence):
    with pytest.raises(ValueError, match="confidence"):
        var([1.0, 2.0], confidence)


def test_empty_losses_rejected():
    with pytest.raises(ValueError, match="at least one"):
        cvar([])


def test_weighted_values_equal_the_expanded_sample():
    from prudencial.risk.measures import var_cvar_weighted

    # Ties across groups, N(1 − α) not whole (N = 23), and N = 1.
    values = np.array([[3.0, 1.0, 3.0, -2.0], [0.0, 5.0, 5.0, 5.0]])
    counts = np.array([4, 9, 3, 7])
    expanded = np.repeat(values, counts, axis=1)
    for confidence in (0.5, 0.9, 0.95, 0.99):
        v, c = var_cvar_weighted(values, counts, confidence)
        np.testing.assert_allclose(v, var(expanded, confidence))
        np.testing.assert_allclose(c, cvar(expanded, confidence))
    v, c = var_cvar_weighted([[7.5]], [1], 0.95)
    assert v[0] == c[0] == 7.5
    # By hand: N = 23, α = 0.9 → k = ⌈20.7⌉ = 21; row 0 sorted is −2×7, 1×9, 3×7: L(21) = 3;
    # CVaR = (2·3 + (21 − 20.7)·3) / 2.3 = 3.
    v, c = var_cvar_weighted(values[:1], counts, 0.9)
    assert v[0] == 3.0 and c[0] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="counts"):
        var_cvar_weighted(values, [1, 2], 0.95)
    with pytest.raises(ValueError, match="≥ 1"):
        var_cvar_weighted(values, [1, 0, 1, 1], 0.95)
