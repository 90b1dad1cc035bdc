"""The network model with contract prices drawn per scenario (the paper's scenario model).

The paper (§3.1) draws the purchase and sale prices anew in every bootstrap resample, bounded
relative to that resample's PLD (prudencial.risk.pld.ContractPriceModel). Every price-dependent
quantity of Algorithms 1 and 2 then varies by scenario b, and this module computes them block by
block of scenarios, exactly as prudencial.risk.network does for fixed prices:

- p̂[a,b] = Σ_c vol_c·P[c,b] / Σ_c vol_c over the agent's contracts (bought and sold); an agent
  without contracts gets the market's volume-weighted mean contract price of that scenario (or
  `reference_pld` when given);
- CstEsp[a,b] = requirement[a]·p̂[a,b]; intrinsic loss = deficit[a]·(PLD_b − p̂[a,b]) / CstEsp[a,b];
- a short seller fails in b when PLD_b > p̂[s,b]; it fails to deliver min(shortfall, sales),
  split over its contracts by volume; the buyer of contract c buys the missing u_c at PLD_b
  instead of P[c,b]: propagated loss = Σ_c u_c·(PLD_b − P[c,b]) / CstEsp[a,b];
- `cascade` repeats rounds per scenario until nothing moves, as the fixed-price engine does.

Losses have no closed form in the PLD any more, so every measure (intrinsic included) keeps its
tail with a TailKeeper. Pure NumPy/SciPy: the enclave runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from prudencial.risk.market import Market
from prudencial.risk.measures import RiskConvention, TailKeeper, convention, var_cvar_from_tail
from prudencial.risk.pld import PRICE_DRAW_BLOCK, Scenarios

MEASURES = ("intrinsic", "propagated", "total")


@dataclass
class PricedFigures:
    """VaR/CVaR per measure and the systemic statistics, over every scenario."""

    figures: dict[str, tuple[np.ndarray, np.ndarray]]
    figures_brl: dict[str, tuple[np.ndarray, np.ndarray]]
    no_expected_cost: np.ndarray
    received_max: np.ndarray
    received_mean: np.ndarray
    undelivered_max: np.ndarray
    undelivered_mean: np.ndarray
    failure_frequency: np.ndarray
    reference_price_mean: np.ndarray
    expected_cost_mean: np.ndarray
    fallback_mean: float
    rounds: int
    converged: bool
    kept_losses: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    cells_partitioned: int = 0


@dataclass(frozen=True)
class _Book:
    """The market's fixed structure: incidence matrices and per-agent volumes.

    The products with a block of prices (contracts × scenarios) go through CSC matrices: they
    read the block once, in order, and scatter into the agents' rows (n ≪ C), about 5× faster
    than CSR's random row reads at 200,000 contracts."""

    n: int
    volume: np.ndarray
    seller: np.ndarray
    traded: np.ndarray
    incidence: sp.csc_matrix  # n × C: the volume of each contract at its seller and its buyer
    bought_share: sp.csc_matrix  # n × C: share[c] at (buyer of c, c)
    # n × n: what a buyer receives per MWh its seller fails to deliver (Σ over their contracts
    # of the contract's share of the seller's sales), so received = receiving @ undelivered
    # without a contracts × scenarios matrix.
    receiving: sp.csr_matrix
    share: np.ndarray  # per contract: its volume over its seller's sales
    requirement: np.ndarray
    deficit: np.ndarray
    sales: np.ndarray
    sells: np.ndarray


def _book(market: Market) -> _Book:
    n, c = market.n_agents, market.n_contracts
    cols = np.arange(c)
    volume = np.asarray(market.volume, dtype=float)
    incidence = sp.csc_matrix(
        (
            np.concatenate([volume, volume]),
            (np.concatenate([market.seller, market.buyer]), np.concatenate([cols, cols])),
        ),
        shape=(n, c),
    )
    incidence.sum_duplicates()
    sales = market.sales
    share = np.zeros(c)
    np.divide(volume, sales[market.seller], out=share, where=sales[market.seller] > 0)
    receiving = sp.csr_matrix((share, (market.buyer, market.seller)), shape=(n, n))
    receiving.sum_duplicates()
    return _Book(
        n=n,
        volume=volume,
        seller=np.asarray(market.seller),
        traded=np.asarray(incidence.sum(axis=1)).ravel(),
        incidence=incidence,
        bought_share=sp.csc_matrix((share, (market.buyer, cols)), shape=(n, c)),
        receiving=receiving,
        share=share,
        requirement=market.requirement,
        deficit=market.requirement - market.resource,
        sales=sales,
        sells=sales > 0,
    )


def _references(
    book: _Book, prices: np.ndarray, pld: np.ndarray, reference_pld: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """p̂[a,b] of a block (agents × scenarios) and the block's fallback price per scenario."""
    worth = book.incidence @ prices
    if reference_pld is not None:
        fallback = np.full(pld.size, float(reference_pld))
    else:  # every contract is in `worth` twice, at its seller and at its buyer
        fallback = worth.sum(axis=0) / (2.0 * book.volume.sum())
    has = book.traded > 0
    worth[has] /= book.traded[has, None]
    worth[~has] = fallback[None, :]
    return worth, fallback


def _received_value(
    book: _Book, prices: np.ndarray, undelivered: np.ndarray, work: np.ndarray
) -> np.ndarray:
    """Σ over each buyer's contracts of the undelivered MWh times the contract's price: only
    the contracts of sellers that fail somewhere in the block are read. `work` is a reused
    contracts × scenarios scratch array (C order)."""
    failing = undelivered.any(axis=1)
    if not failing.any():
        return np.zeros((book.n, prices.shape[1]))
    contracts = np.flatnonzero(failing[book.seller])
    if contracts.size * 2 > book.seller.size:  # most contracts: no gather of the prices
        np.take(undelivered, book.seller, axis=0, out=work, mode="clip")
        work *= prices
        return book.bought_share @ work
    value = work[: contracts.size]
    np.take(undelivered, book.seller[contracts], axis=0, out=value, mode="clip")
    value *= prices[contracts]
    return book.bought_share[:, contracts] @ value


def _propagate(
    book: _Book,
    pld: np.ndarray,
    reference: np.ndarray,
    fails: np.ndarray | None,
    *,
    cascade: bool,
    max_rounds: int,
    tolerance: float,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Undelivered MWh per agent (as seller) and received MWh per agent (as buyer), for a block
    of scenarios."""
    losing = pld[None, :] > reference
    if fails is not None:
        losing &= fails
    if not cascade:
        limit = np.where(book.sells & (book.deficit > 0), np.minimum(book.deficit, book.sales), 0)
        undelivered = losing * limit[:, None]
        return undelivered, book.receiving @ undelivered, int(undelivered.any()), True
    eligible = losing & book.sells[:, None]
    m = pld.size
    undelivered = np.zeros((book.n, m))
    received = np.zeros((book.n, m))
    tol = tolerance * max(1.0, float(book.sales.max(initial=0.0)))
    active = np.arange(m)
    rounds = 0
    while active.size:
        shortfall = np.maximum(book.deficit[:, None] + received[:, active], 0.0)
        target = np.where(eligible[:, active], np.minimum(shortfall, book.sales[:, None]), 0.0)
        moving = (target - undelivered[:, active]).max(axis=0, initial=0.0) > tol
        active, target = active[moving], target[:, moving]
        if not active.size or rounds >= max_rounds:
            break
        undelivered[:, active] = target
        received[:, active] = book.receiving @ target
        rounds += 1
    return undelivered, received, rounds, not active.size


def priced_figures(
    market: Market,
    scenarios: Scenarios,
    confidence: float,
    *,
    cascade: bool = False,
    failures: Callable[[int], np.ndarray | None] = lambda m: None,
    max_rounds: int = 100,
    tolerance: float = 1e-9,
    cells_per_block: int = 10_000_000,
    reference_pld: float | None = None,
    keep_agents: Sequence[int] = (),
    progress: Callable[[int], None] | None = None,
    risk_convention: RiskConvention | str | None = None,
) -> PricedFigures:
    """Every agent's intrinsic, propagated and total VaR/CVaR under per-scenario contract
    prices, streamed in blocks of scenarios (memory ∝ block × max(agents, contracts)).
    `failures(m)` draws the next m scenarios' failure mask (agents × m), or None."""
    book = _book(market)
    pld_all = scenarios.pld
    n, n_scen = book.n, pld_all.size
    block = max(1, int(cells_per_block) // max(n, book.seller.size, 1))
    # Whole blocks of the price draw (each drawn once; see Scenarios.contract_price_block).
    block = max(PRICE_DRAW_BLOCK, block - block % PRICE_DRAW_BLOCK)
    conv = convention(risk_convention)
    size = conv.tail_size(n_scen, confidence)
    keepers = {name: TailKeeper(n, size, min(block, n_scen)) for name in MEASURES}
    keepers_brl = {name: TailKeeper(n, size, min(block, n_scen)) for name in MEASURES}
    no_cost = np.zeros(n, dtype=bool)
    received_sum, received_max = np.zeros(n), np.zeros(n)
    undelivered_sum, undelivered_max = np.zeros(n), np.zeros(n)
    failed = np.zeros(n)
    reference_sum, cost_sum, fallback_sum = np.zeros(n), np.zeros(n), 0.0
    kept = {int(a): {name: [] for name in MEASURES} for a in keep_agents}
    rounds, converged = 0, True
    # The block's prices and a scratch of the same shape, reused: fresh pages for 10⁷ cells
    # in every block cost more than the arithmetic on them.
    buffer = work = None
    for start in range(0, n_scen, block):
        pld = pld_all[start : start + block]
        if buffer is None or buffer.shape[1] != pld.size:
            buffer = np.empty((book.seller.size, pld.size))
            work = np.empty_like(buffer)
        prices = scenarios.contract_price_block(
            book.seller.size, start, start + pld.size, out=buffer
        )
        reference, fallback = _references(book, prices, pld, reference_pld)
        cost = book.requirement[:, None] * reference
        scale = np.zeros_like(cost)
        np.divide(1.0, cost, out=scale, where=cost > 0)
        undelivered, received, r, ok = _propagate(
            book,
            pld,
            reference,
            failures(pld.size),
            cascade=cascade,
            max_rounds=max_rounds,
            tolerance=tolerance,
        )
        rounds, converged = max(rounds, r), converged and ok
        received_value = _received_value(book, prices, undelivered, work)
        no_cost |= (cost <= 0).any(axis=1)
        intrinsic_brl = book.deficit[:, None] * (pld[None, :] - reference)
        propagated_brl = received * pld[None, :] - received_value
        total_brl = intrinsic_brl + propagated_brl
        for name, losses in (
            ("intrinsic", intrinsic_brl),
            ("propagated", propagated_brl),
            ("total", total_brl),
        ):
            keepers_brl[name].add(losses)
        intrinsic = intrinsic_brl * scale
        propagated = propagated_brl * scale
        total = intrinsic + propagated
        for name, losses in (
            ("intrinsic", intrinsic),
            ("propagated", propagated),
            ("total", total),
        ):
            keepers[name].add(losses)
        for a, series in kept.items():
            for name, losses in (
                ("intrinsic", intrinsic),
                ("propagated", propagated),
                ("total", total),
            ):
                series[name].append(losses[a].copy())
        received_sum += received.sum(axis=1)
        np.maximum(received_max, received.max(axis=1, initial=0.0), out=received_max)
        undelivered_sum += undelivered.sum(axis=1)
        np.maximum(undelivered_max, undelivered.max(axis=1, initial=0.0), out=undelivered_max)
        failed += (undelivered > 0).sum(axis=1)
        reference_sum += reference.sum(axis=1)
        cost_sum += cost.sum(axis=1)
        fallback_sum += float(fallback.sum())
        if progress is not None:
            progress(pld.size)
    figures = {
        name: tuple(
            np.where(no_cost, 0.0, v)
            for v in var_cvar_from_tail(keeper.tail(), n_scen, confidence, conv)
        )
        for name, keeper in keepers.items()
    }
    figures_brl = {
        name: var_cvar_from_tail(keeper.tail(), n_scen, confidence, conv)
        for name, keeper in keepers_brl.items()
    }
    return PricedFigures(
        figures=figures,
        figures_brl=figures_brl,
        no_expected_cost=no_cost,
        received_max=received_max,
        received_mean=received_sum / n_scen,
        undelivered_max=undelivered_max,
        undelivered_mean=undelivered_sum / n_scen,
        failure_frequency=failed / n_scen,
        reference_price_mean=reference_sum / n_scen,
        expected_cost_mean=cost_sum / n_scen,
        fallback_mean=fallback_sum / n_scen,
        rounds=rounds,
        converged=converged,
        kept_losses={
            a: {name: np.concatenate(parts) for name, parts in series.items()}
            for a, series in kept.items()
        },
        cells_partitioned=sum(k.cells_partitioned for k in keepers.values()),  # fractions only
    )


def describe(scenarios: Any) -> dict[str, Any] | None:
    """The scenario model written into the results (None for a bare array of PLDs)."""
    return dict(scenarios.model) if isinstance(scenarios, Scenarios) else None
