"""TailKeeper and the network engine's general (streamed) path: exact tails, however fed."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from prudencial.risk import bootstrap_pld, exposure_matrices, network_risk, pld_history_2017
from prudencial.risk import network as network_module
from prudencial.risk.measures import PAPER_R, TailKeeper, _select_largest, var_cvar
from prudencial.risk_tools.synthetic import synthetic_market


def _awkward_rows(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """Rows that have tripped selections up: ties, runs, infinities, mostly one value."""
    data = rng.normal(size=(rows, n))
    data[1] = np.round(data[1] * 2)  # many ties at the threshold
    data[2] = np.linspace(0, 1, n)  # increasing: every block enters
    data[3] = np.linspace(1, 0, n)  # decreasing: nothing enters after the first
    data[4, : n // 2] = -np.inf
    data[5, rng.random(n) < 0.85] = 0.0  # a buyer without a propagated loss in most scenarios
    data[6] = 0.0  # never a propagated loss
    data[7, rng.random(n) < 0.9] = 3.0  # one value above most, below the tail
    data[8, rng.random(n) < 0.5] = np.inf
    return data


def _largest(data: np.ndarray, size: int) -> np.ndarray:
    return np.sort(data, axis=1)[:, data.shape[1] - size :]


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("block", [1, 7, 64, 151, 500, 3000, 5000])
def test_the_tail_keeper_keeps_exactly_the_largest_values(block, overwrite):
    rng = np.random.default_rng(block)
    n, size = 3000, 151
    data = _awkward_rows(rng, 10, n)
    keeper = TailKeeper(data.shape[0], size, min(block, n))
    for start in range(0, n, block):
        keeper.add(data[:, start : start + block].copy(), overwrite=overwrite)
    np.testing.assert_array_equal(np.sort(keeper.tail(), axis=1), _largest(data, size))
    assert keeper.seen == n
    # Dense buffer: at most (size + width) / width ≤ 2 cells partitioned a value, and a
    # first block of everything partitioned once.
    assert keeper.cells_partitioned <= 2 * data.size
    if block >= n:
        assert keeper.cells_partitioned == data.size


def test_blocks_of_any_width_in_any_order_and_a_tail_read_midway():
    rng = np.random.default_rng(3)
    n, size = 2000, 101
    data = _awkward_rows(rng, 9, n)
    keeper = TailKeeper(data.shape[0], size, 50)
    cuts = [0, 120, 121, 171, 900, 905, 2000]  # wider and narrower than the declared block
    for i, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        keeper.add(data[:, a:b], overwrite=i % 2 == 0)
        if keeper.seen >= size:  # reading the tail leaves the keeper usable
            np.testing.assert_array_equal(
                np.sort(keeper.tail(), axis=1), _largest(data[:, :b], size)
            )
    np.testing.assert_array_equal(np.sort(keeper.tail(), axis=1), _largest(data, size))


def test_overwrite_reorders_only_what_it_may():
    data = np.random.default_rng(4).normal(size=(3, 400))
    block = data.copy()
    keeper = TailKeeper(3, 20, 400)
    keeper.add(block, overwrite=True)  # partitioned where it lies: same rows, reordered
    np.testing.assert_array_equal(np.sort(block, axis=1), np.sort(data, axis=1))
    frozen = data.copy()
    frozen.flags.writeable = False
    other = TailKeeper(3, 20, 400)
    other.add(frozen, overwrite=True)  # read-only: copied instead
    np.testing.assert_array_equal(frozen, data)
    np.testing.assert_array_equal(np.sort(other.tail(), axis=1), _largest(data, 20))
    plain = TailKeeper(3, 20, 400)
    copy = data.copy()
    plain.add(copy)
    np.testing.assert_array_equal(copy, data)  # without overwrite the block is left alone


def test_nan_is_refused_on_every_path():
    bad = np.zeros((2, 300))
    bad[1, 7] = np.nan
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="must not be NaN"):
            TailKeeper(2, 10, 300).add(bad.copy(), overwrite=overwrite)
        keeper = TailKeeper(2, 10, 100)
        keeper.add(np.zeros((2, 100)), overwrite=overwrite)
        with pytest.raises(ValueError, match="must not be NaN"):
            keeper.add(bad[:, :100].copy(), overwrite=overwrite)


def test_a_keeper_without_rows():
    keeper = TailKeeper(0, 5, 10)
    keeper.add(np.zeros((0, 10)), overwrite=True)
    assert keeper.tail().shape == (0, 5)
    assert keeper.cells_partitioned == 0


def test_select_largest_on_rows_of_both_kinds():
    """Rows mostly of one value are sorted, the others partitioned, in one call."""
    rng = np.random.default_rng(5)
    data = _awkward_rows(rng, 10, 1000)
    for rows in (slice(None), [5, 6], [0, 2, 3]):  # mixed, all repeated, none repeated
        part = data[rows].copy()
        _select_largest(part, 1000 - 60)
        np.testing.assert_array_equal(np.sort(part, axis=1), np.sort(data[rows], axis=1))
        np.testing.assert_array_equal(np.sort(part[:, -60:], axis=1), _largest(data[rows], 60))


def _multi_week_prices(n: int, seed: int) -> np.ndarray:
    """Distinct prices (what multi-week scenarios give): the path that must not group them."""
    return np.random.default_rng(seed).lognormal(np.log(180.0), 0.5, n)


@pytest.mark.parametrize(
    ("kwargs", "matrices"),
    [
        ({}, {}),  # the one-round shortcut: tables gathered per row group
        ({"failure_probability": 1.0, "seed": 1}, {}),  # the sparse product, same figures
        ({"cascade": True}, {"cascade": True}),
        ({"risk_convention": "paper_r"}, {}),
    ],
)
def test_the_streamed_path_equals_the_full_matrices(monkeypatch, kwargs, matrices):
    """Row groups of a few buyers, blocks of scenarios of uneven width, kept agents in several
    groups: the figures are the full agent × scenario matrices' own."""
    monkeypatch.setattr(network_module, "ROW_GROUP_CELLS", 700)  # groups of 7 rows
    market = synthetic_market(60, 35, 6, seed=21)
    prices = _multi_week_prices(777, 21)
    full = exposure_matrices(market, prices, **matrices)
    conv = PAPER_R if kwargs.get("risk_convention") == "paper_r" else None
    keep = [0, 9, 40, 70, 100]
    result = network_risk(
        market, prices, 0.9, group_equal_prices=False, chunk_size=100, keep_agents=keep, **kwargs
    )
    cost = result.expected_cost
    for name, losses in (("propagated", full.propagated), ("total", full.total)):
        var_, cvar_ = var_cvar(losses, 0.9, conv)
        has_cost = cost > 0
        np.testing.assert_allclose(
            getattr(result, f"var_{name}")[has_cost], var_[has_cost], rtol=1e-12, atol=1e-15
        )
        np.testing.assert_allclose(
            getattr(result, f"cvar_{name}")[has_cost], cvar_[has_cost], rtol=1e-12, atol=1e-15
        )
    assert np.any(result.cvar_propagated > 0)
    for a in keep:
        np.testing.assert_allclose(
            result.kept_losses[a]["propagated"], full.propagated[a], rtol=1e-12, atol=1e-15
        )
    np.testing.assert_allclose(result.received_mean_mwh, full.received.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(result.received_max_mwh, full.received.max(axis=1), rtol=1e-12)
    assert result.tail_passes <= 2


def test_the_streamed_path_agrees_with_the_reference_loop():
    """bench/risk_reference.py's loop and the general path, on distinct prices, to 1e-9."""
    path = Path(__file__).resolve().parents[2] / "bench" / "risk_reference.py"
    spec = importlib.util.spec_from_file_location("risk_reference", path)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    market = synthetic_market(90, 50, 10, seed=13)
    for prices in (_multi_week_prices(400, 13), bootstrap_pld(pld_history_2017(), 400, seed=13)):
        ours = network_risk(market, prices, group_equal_prices=False, chunk_size=150)
        theirs = reference.reference_network_risk(market, prices.tolist())
        assert ours.propagators.any()
        for name, values in theirs.items():
            np.testing.assert_allclose(getattr(ours, name), values, rtol=1e-9, atol=1e-12)
