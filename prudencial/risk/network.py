"""Systemic exposure on the trade network: the paper's Algorithms 1 and 2, vectorised, and beyond.

Per agent a and PLD scenario b (losses are fractions of the expected cost, larger = worse):

- reference price p̂[a]: the volume-weighted mean price of the agent's contracts (bought and
  sold) — the price at which it priced its book, hence at which it expected to close its
  imbalance; an agent without contracts gets the market's mean contract price (never a
  statistic of the scenarios themselves, see `fallback_reference`);
- expected cost CstEsp[a] = requirement[a] · p̂[a] (the requirement valued as planned);
- intrinsic loss (Algorithm 1): (CstEfet − CstEsp)/CstEsp = (req − res)[a]·(PLD_b − p̂[a]) / CstEsp[a],
  the imbalance settled at the scenario PLD instead of the planned price;
- a seller fails in scenario b when it is short and losing there (PLD_b > p̂[a]); it fails to
  deliver min(shortfall, sales) (LimExpVProp), split across its buyers in proportion to the
  volume each bought (PropExpVProp);
- propagated loss (Algorithm 2): a buyer that receives u MWh less on a contract at price p must
  buy them at PLD: Σ u·(PLD_b − p) / CstEsp[a] (its resource shrinks, ExpVRec);
- total loss = intrinsic + propagated, per scenario; VaR/CVaR are taken of each.

Beyond the paper: `cascade=True` repeats rounds — a buyer made short fails in turn — until no
new shortfall appears (fixed point); `failure_probability` makes each potential failure happen
with a probability per agent or per class (Monte Carlo over failures and prices).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from prudencial.risk.communities import Communities, detect_communities
from prudencial.risk.market import CLASSES, Market
from prudencial.risk.measures import (
    RiskConvention,
    TailKeeper,
    convention,
    var_cvar_from_order,
    var_cvar_from_tail,
    var_cvar_weighted,
)
from prudencial.risk.pld import Scenarios
from prudencial.risk.priced import describe, priced_figures

FailureProbability = float | Sequence[float] | np.ndarray | Mapping[str, float] | None
# Agent × scenario cells evaluated at once; bounds memory to roughly 12 arrays of this size.
DEFAULT_CELLS_PER_CHUNK = 10_000_000
# Largest buyers × sellers table for the cumulative one-round shortcut (8 bytes a cell, twice).
DENSE_CUMULATIVE_CELLS = 4_000_000
# Buyer rows × scenarios taken through the general path's loss arithmetic and tail keepers at
# once: 2 MiB an array, so a row group's passes stay in cache.
ROW_GROUP_CELLS = 262_144


@dataclass(frozen=True)
class ContractBook:
    """Per-agent quantities the algorithms need, derived once from a Market."""

    n_agents: int
    sales: np.ndarray
    deficit: np.ndarray
    reference_price: np.ndarray
    expected_cost: np.ndarray
    split: sp.csr_matrix = field(repr=False)
    split_value: sp.csr_matrix = field(repr=False)
    sells: np.ndarray = field(repr=False)

    @property
    def loss_scale(self) -> np.ndarray:
        """1 / CstEsp, or 0 where there is no expected cost (nothing at stake)."""
        out = np.zeros_like(self.expected_cost)
        np.divide(1.0, self.expected_cost, out=out, where=self.expected_cost > 0)
        return out


def market_contract_price(market: Market) -> float | None:
    """Volume-weighted mean price of all the market's contracts (R$/MWh); None without contracts."""
    traded = float(market.volume.sum())
    if traded <= 0:
        return None
    return float((market.volume * market.price).sum() / traded)


def fallback_reference(
    market: Market, prices: np.ndarray, reference_pld: float | None = None
) -> tuple[float, str]:
    """Reference price for agents without contracts, and where it came from.

    An agent without contracts (e.g. an unhedged consumer) planned to buy or sell its whole
    position at the going price; that price must not depend on the scenarios being evaluated,
    or a dearer set of scenarios would lower its loss (and a single stress scenario would show
    none). Order: `reference_pld` when given ("given"); else the market's volume-weighted mean
    contract price ("market_contracts"); only a market without any contract falls back to the
    scenarios' mean ("scenario_mean").
    """
    if reference_pld is not None:
        value = float(reference_pld)
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"reference_pld must be a finite price > 0 (got {reference_pld})")
        return value, "given"
    traded = market_contract_price(market)
    if traded is not None and traded > 0:
        return traded, "market_contracts"
    return float(np.mean(prices)), "scenario_mean"


def reference_price(market: Market, fallback: float) -> np.ndarray:
    """Volume-weighted mean contract price per agent (R$/MWh); `fallback` for agents without."""
    n = market.n_agents
    value = market.volume * market.price
    traded = np.bincount(market.seller, market.volume, n) + np.bincount(
        market.buyer, market.volume, n
    )
    worth = np.bincount(market.seller, value, n) + np.bincount(market.buyer, value, n)
    out = np.full(n, float(fallback))
    np.divide(worth, traded, out=out, where=traded > 0)
    return out


def contract_book(market: Market, fallback_price: float) -> ContractBook:
    """Precompute the seller → buyer split matrices and the per-agent reference figures."""
    n = market.n_agents
    sales = market.sales
    share = np.zeros(market.n_contracts)
    np.divide(market.volume, sales[market.seller], out=share, where=sales[market.seller] > 0)
    # split[buyer, seller] = Σ volume / seller's sales: the buyer's share of a seller's failure.
    split = sp.csr_matrix((share, (market.buyer, market.seller)), shape=(n, n))
    split_value = sp.csr_matrix((share * market.price, (market.buyer, market.seller)), shape=(n, n))
    split.sum_duplicates()
    split_value.sum_duplicates()
    ref = reference_price(market, fallback_price)
    return ContractBook(
        n_agents=n,
        sales=sales,
        deficit=market.requirement - market.resource,
        reference_price=ref,
        expected_cost=market.requirement * ref,
        split=split,
        split_value=split_value,
        sells=sales > 0,
    )


def failure_probabilities(
    market: Market, failure_probability: FailureProbability
) -> np.ndarray | None:
    """Per-agent failure probability from a number, an array or a {class: p} mapping."""
    if failure_probability is None:
        return None
    if isinstance(failure_probability, Mapping):
        unknown = set(failure_probability) - set(CLASSES)
        if unknown:
            raise ValueError(f"failure_probability keys must be classes {CLASSES} (got {unknown})")
        p = np.array([float(failure_probability.get(c, 1.0)) for c in market.classes])
    else:
        p = np.broadcast_to(np.asarray(failure_probability, dtype=float), (market.n_agents,))
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("failure_probability must be between 0 and 1")
    return np.array(p, dtype=float)


@dataclass(frozen=True)
class PropagationPlan:
    """Which agents can fail (sellers) and which can be hit (buyers), with the split restricted
    to them: in the one-round case only short sellers can fail, so the work scales with them."""

    sellers: np.ndarray
    buyers: np.ndarray
    split: sp.csr_matrix = field(repr=False)
    split_value: sp.csr_matrix = field(repr=False)
    cascade: bool = False


def propagation_plan(book: ContractBook, cascade: bool = False) -> PropagationPlan:
    """Restrict the split matrices to potential propagators and the agents that buy from them."""
    if cascade:
        # Any seller may be made short by what it does not receive; buyers are all agents so
        # that a seller's received shortfall is at hand.
        sellers = np.flatnonzero(book.sells)
        buyers = np.arange(book.n_agents)
    else:
        sellers = np.flatnonzero(book.sells & (book.deficit > 0))
        by_seller = book.split[:, sellers].tocsr()
        buyers = np.flatnonzero(np.diff(by_seller.indptr))
    split = book.split[:, sellers][buyers].tocsr()
    split_value = book.split_value[:, sellers][buyers].tocsr()
    return PropagationPlan(sellers, buyers, split, split_value, cascade)


@dataclass
class Propagation:
    """Outcome of Algorithm 2 for a block of scenarios, on the plan's sellers and buyers (MWh)."""

    sellers: np.ndarray
    undelivered: np.ndarray
    buyers: np.ndarray
    received: np.ndarray
    received_value: np.ndarray
    rounds: int
    converged: bool

    def expand(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Full agent × scenario arrays (undelivered, received, received value)."""
        c = self.undelivered.shape[1]
        out = [np.zeros((n, c)) for _ in range(3)]
        out[0][self.sellers] = self.undelivered
        out[1][self.buyers] = self.received
        out[2][self.buyers] = self.received_value
        return out[0], out[1], out[2]


def _threshold_tables(
    book: ContractBook, plan: PropagationPlan, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one-round shortcut's tables, which do not depend on the scenarios: the sellers'
    reference prices in order, and each buyer's received volume and value when the first j of
    those sellers fail (column j, a cumulative sum over them)."""
    order = np.argsort(book.reference_price[plan.sellers], kind="stable")
    thresholds = book.reference_price[plan.sellers][order]
    out = []
    for matrix in (plan.split, plan.split_value):
        weighted = (matrix[:, order] @ sp.diags(limit[order])).toarray()
        cumulative = np.zeros((weighted.shape[0], weighted.shape[1] + 1))
        np.cumsum(weighted, axis=1, out=cumulative[:, 1:])
        out.append(cumulative)
    return thresholds, out[0], out[1]


def _sorted_threshold_split(
    book: ContractBook, plan: PropagationPlan, limit: np.ndarray, prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One deterministic round without a sparse product per scenario block.

    Seller s fails exactly when PLD > p̂[s], so with sellers sorted by p̂ the failing set of a
    scenario is a prefix; a buyer's received volume is a cumulative sum over that prefix,
    read off with one gather per scenario.
    """
    thresholds, received, value = _threshold_tables(book, plan, limit)
    prefix = np.searchsorted(thresholds, prices, side="left")  # sellers with p̂ < PLD
    return np.take(received, prefix, axis=1), np.take(value, prefix, axis=1)


def propagate(
    book: ContractBook,
    prices: np.ndarray,
    fails: np.ndarray | None = None,
    *,
    cascade: bool = False,
    max_rounds: int = 100,
    tolerance: float = 1e-9,
    plan: PropagationPlan | None = None,
) -> Propagation:
    """Undelivered energy per seller and received shortfall per buyer, for each scenario.

    A seller is a potential propagator in scenario b when it sells and PLD_b exceeds its
    reference price (a short position loses there); `fails` (agent × scenario booleans) says
    which potential failures happen. A failing seller does not deliver min(sales, shortfall),
    its shortfall including what it did not receive. One round is the paper's worst case;
    `cascade` repeats rounds until nothing moves (volumes only grow and are capped by sales, so
    the iteration converges; on cycles it converges geometrically, hence the tolerance).
    """
    prices = np.asarray(prices, dtype=float)
    if plan is None or plan.cascade != cascade:
        plan = propagation_plan(book, cascade)
    sellers, c = plan.sellers, prices.size
    eligible = prices[None, :] > book.reference_price[sellers, None]
    if fails is not None:
        eligible &= fails[sellers]
    deficit = book.deficit[sellers]
    cap = book.sales[sellers]
    if not cascade:
        limit = np.minimum(deficit, cap)
        undelivered = eligible * limit[:, None]
        if fails is None and plan.buyers.size * (sellers.size + 1) <= DENSE_CUMULATIVE_CELLS:
            received, received_value = _sorted_threshold_split(book, plan, limit, prices)
        else:
            received = plan.split @ undelivered
            received_value = plan.split_value @ undelivered
        return Propagation(
            sellers=sellers,
            undelivered=undelivered,
            buyers=plan.buyers,
            received=received,
            received_value=received_value,
            rounds=int(undelivered.any()),
            converged=True,
        )
    undelivered = np.zeros((sellers.size, c))
    received = np.zeros((plan.buyers.size, c))
    tol = tolerance * max(1.0, float(book.sales.max(initial=0.0)))
    # Each scenario iterates on its own (columns stop once converged), so results do not
    # depend on how scenarios are chunked.
    active = np.arange(c)
    rounds = 0
    while active.size:
        shortfall = np.maximum(deficit[:, None] + received[sellers][:, active], 0.0)
        target = np.where(eligible[:, active], np.minimum(shortfall, cap[:, None]), 0.0)
        moving = (target - undelivered[:, active]).max(axis=0, initial=0.0) > tol
        active, target = active[moving], target[:, moving]
        if not active.size or rounds >= max_rounds:
            break
        undelivered[:, active] = target
        received[:, active] = plan.split @ target
        rounds += 1
    return Propagation(
        sellers=sellers,
        undelivered=undelivered,
        buyers=plan.buyers,
        received=received,
        received_value=plan.split_value @ undelivered,
        rounds=rounds,
        converged=not active.size,
    )


@dataclass
class ExposureMatrices:
    """Full agent × scenario losses (fractions of expected cost) for small markets and tests."""

    intrinsic: np.ndarray
    propagated: np.ndarray
    undelivered: np.ndarray
    received: np.ndarray
    rounds: int
    converged: bool

    @property
    def total(self) -> np.ndarray:
        return self.intrinsic + self.propagated


def _intrinsic(book: ContractBook, prices: np.ndarray, rows: np.ndarray | slice = slice(None)):
    slope = (book.deficit * book.loss_scale)[rows]
    out = np.multiply.outer(slope, prices)
    out -= (slope * book.reference_price[rows])[:, None]
    return out


def _propagated(book: ContractBook, prices: np.ndarray, prop: Propagation) -> np.ndarray:
    """Propagated losses of the plan's buyers: Σ u·(PLD − contract price) / CstEsp."""
    out = prop.received * prices[None, :]
    out -= prop.received_value
    out *= book.loss_scale[prop.buyers, None]
    return out


def _streamed_losses(
    received: np.ndarray, received_value: np.ndarray, deficit: np.ndarray, prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Buyers' propagated loss in R$, Σ u·(PLD − contract price), and total loss in R$ less
    its constant, deficit·PLD + propagated (the total is that minus deficit·p̂), written over
    `received` and `received_value` (read them first).

    Both differ from the fractions by a positive factor per row (1 / CstEsp) and the total
    also by a constant per row, which every convention carries through exactly (see
    `_StreamedTails.figures`): four passes over the block instead of six, no fresh arrays.
    """
    propagated = received
    propagated *= prices[None, :]
    propagated -= received_value
    total = np.multiply.outer(deficit, prices, out=received_value)
    total += propagated
    return propagated, total


class _StreamedTails:
    """The propagated and total loss tails of the plan's buyers over the scenario blocks of
    the general path, and their received-volume statistics.

    Rows go through in groups of about `ROW_GROUP_CELLS` cells: each group's loss arithmetic,
    statistics and tail partition run while its rows are in cache, instead of each step
    streaming the whole agent × scenario block through memory (the steps are memory-bound:
    2-3× faster on the paper's case). Every group has its own pair of TailKeepers.
    """

    def __init__(self, book: ContractBook, buyers: np.ndarray, size: int, width: int) -> None:
        rows = max(1, ROW_GROUP_CELLS // max(width, 1))
        self.groups = [slice(s, min(s + rows, buyers.size)) for s in range(0, buyers.size, rows)]
        self.keepers = [
            {name: TailKeeper(g.stop - g.start, size, width) for name in ("propagated", "total")}
            for g in self.groups
        ]
        self.buyers = buyers
        self.deficit = book.deficit[buyers]
        self.shift = self.deficit * book.reference_price[buyers]
        self.scale = book.loss_scale[buyers]
        self.received_sum = np.zeros(buyers.size)
        self.received_max = np.zeros(buyers.size)

    def add(
        self,
        prices: np.ndarray,
        rows: Callable[[slice], tuple[np.ndarray, np.ndarray]],
        kept: Mapping[int, list],
    ) -> None:
        """Take in one scenario block: `rows(g)` gives the received volume and value of the
        buyers in row group g (arrays this call may overwrite); `kept` maps buyer rows to the
        lists that collect their propagated losses (fractions) block by block."""
        ones = np.ones(prices.size)
        for g, keepers in zip(self.groups, self.keepers, strict=True):
            received, value = rows(g)
            self.received_sum[g] += received @ ones  # BLAS: ~4× a row sum
            np.maximum(
                self.received_max[g], received.max(axis=1, initial=0.0), out=self.received_max[g]
            )
            propagated, total = _streamed_losses(received, value, self.deficit[g], prices)
            for row in range(g.start, g.stop) if kept else ():
                if row in kept:
                    kept[row].append(propagated[row - g.start] * self.scale[row])
            # Both arrays are this block's own: the keepers may partition them where they lie.
            keepers["propagated"].add(propagated, overwrite=True)
            keepers["total"].add(total, overwrite=True)

    @property
    def cells_partitioned(self) -> int:
        return sum(k.cells_partitioned for pair in self.keepers for k in pair.values())

    def figures(
        self, n_scen: int, confidence: float, conv: RiskConvention
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """VaR/CVaR per buyer as fractions of expected cost: every convention is translation-
        and positively scale-equivariant (as in `intrinsic_var_cvar`), so the R$ tails' figures
        less the constant, times 1 / CstEsp, are the fractions' figures."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in ("propagated", "total") if self.keepers else ():
            tail = np.concatenate([pair[name].tail() for pair in self.keepers])
            var_, cvar_ = var_cvar_from_tail(tail, n_scen, confidence, conv)
            if name == "total":
                var_, cvar_ = var_ - self.shift, cvar_ - self.shift
            out[name] = (var_ * self.scale, cvar_ * self.scale)
        return out


def intrinsic_var_cvar(
    book: ContractBook,
    prices: np.ndarray,
    confidence: float,
    risk_convention: RiskConvention | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact VaR/CVaR of Algorithm 1 from the sorted prices, without an agent × scenario array.

    The intrinsic loss d·(PLD − p̂) is linear in the PLD, so its order statistics are the
    prices' (reversed when d < 0), and every convention is translation- and positively
    scale-equivariant: VaR and CVaR of the prices (of −prices for d < 0) carry through.
    """
    conv = convention(risk_convention)
    n = prices.size
    ordered = np.sort(prices)
    upper_var, upper_cvar = var_cvar_from_order(
        lambda r: ordered[r - 1], lambda m: ordered[n - m :].sum(), n, confidence, conv
    )
    low_var, low_cvar = var_cvar_from_order(
        lambda r: -ordered[n - r], lambda m: -ordered[:m].sum(), n, confidence, conv
    )
    lower_var, lower_cvar = -low_var, -low_cvar
    slope = book.deficit * book.loss_scale
    up = slope >= 0
    var_ = slope * (np.where(up, upper_var, lower_var) - book.reference_price)
    cvar_ = slope * (np.where(up, upper_cvar, lower_cvar) - book.reference_price)
    return var_, cvar_


def _draw_failures(
    rng: np.random.Generator | None, p: np.ndarray | None, n_scenarios: int
) -> np.ndarray | None:
    if p is None or rng is None:
        return None
    # Scenario-major draws so results do not depend on how scenarios are chunked.
    return (rng.random((n_scenarios, p.size)) < p).T


def _prices(pld_scenarios: Any) -> np.ndarray:
    prices = np.asarray(pld_scenarios, dtype=float).ravel()
    if prices.size == 0 or not np.all(np.isfinite(prices)) or np.any(prices < 0):
        raise ValueError("pld_scenarios must be a non-empty array of finite prices ≥ 0")
    return prices


def exposure_matrices(
    market: Market,
    pld_scenarios: Any,
    *,
    cascade: bool = False,
    failure_probability: FailureProbability = None,
    seed: int | np.random.Generator | None = None,
    max_rounds: int = 100,
    reference_pld: float | None = None,
) -> ExposureMatrices:
    """Algorithms 1 and 2 for every agent and scenario at once (memory n × scenarios).

    `reference_pld`: reference price of agents without contracts (see `fallback_reference`).
    """
    prices = _prices(pld_scenarios)
    book = contract_book(market, fallback_reference(market, prices, reference_pld)[0])
    p = failure_probabilities(market, failure_probability)
    rng = np.random.default_rng(seed) if p is not None else None
    prop = propagate(
        book, prices, _draw_failures(rng, p, prices.size), cascade=cascade, max_rounds=max_rounds
    )
    undelivered, received, _ = prop.expand(book.n_agents)
    propagated = np.zeros((book.n_agents, prices.size))
    propagated[prop.buyers] = _propagated(book, prices, prop)
    return ExposureMatrices(
        intrinsic=_intrinsic(book, prices),
        propagated=propagated,
        undelivered=undelivered,
        received=received,
        rounds=prop.rounds,
        converged=prop.converged,
    )


@dataclass(frozen=True)
class CommunityFigures:
    """One community of the trade network and its mean risk (the global indicator)."""

    community: int
    rank: int
    size: int
    propagators: int
    mean_cvar_intrinsic: float
    mean_cvar_propagated: float
    mean_cvar_total: float
    # A community of agents without any traded volume (a lone agent): not counted in K and
    # ranked after every community of agents that trade.
    isolated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# How to read every VaR/CVaR figure of the network model (also written into summaries).
LOSS_CONVENTION = (
    "var_*/cvar_* are losses as fractions of the agent's expected cost: positive = loss, "
    "computed on the worst (upper) tail of the losses; the paper prints the same figures "
    "as negative exposures (exposure = -loss), as do the pictures"
)

AGENT_COLUMNS = (
    "agent",
    "class",
    "net_mwh",
    "expected_cost",
    "reference_price",
    "var_intrinsic",
    "cvar_intrinsic",
    "var_propagated",
    "cvar_propagated",
    "var_total",
    "cvar_total",
    "no_expected_cost",
    "var_intrinsic_brl",
    "cvar_intrinsic_brl",
    "var_propagated_brl",
    "cvar_propagated_brl",
    "var_total_brl",
    "cvar_total_brl",
    "systemic_received_max_mwh",
    "systemic_received_mean_mwh",
    "systemic_undelivered_max_mwh",
    "systemic_undelivered_mean_mwh",
    "failure_frequency",
    "community",
    "community_mean_cvar_propagated",
    "community_rank",
    "n_communities",
    "network_position",
)


@dataclass(frozen=True, eq=False)
class NetworkRiskResult:
    """Local (per agent) and global (per community) indicators of the network model.

    Loss figures are fractions of each agent's expected cost, larger = worse (the paper prints
    them negative, as exposures). Systemic volumes are MWh not delivered to (received) or by
    (undelivered) the agent, worst scenario and mean over scenarios.
    """

    agent_ids: list[str]
    classes: np.ndarray
    confidence: float
    n_scenarios: int
    cascade: bool
    probabilistic: bool
    rounds: int
    converged: bool
    pld_mean: float
    net_mwh: np.ndarray
    expected_cost: np.ndarray
    reference_price: np.ndarray
    var_intrinsic: np.ndarray
    cvar_intrinsic: np.ndarray
    var_propagated: np.ndarray
    cvar_propagated: np.ndarray
    var_total: np.ndarray
    cvar_total: np.ndarray
    received_max_mwh: np.ndarray
    received_mean_mwh: np.ndarray
    undelivered_max_mwh: np.ndarray
    undelivered_mean_mwh: np.ndarray
    failure_frequency: np.ndarray
    communities: Communities
    community_table: tuple[CommunityFigures, ...]
    community_rank: np.ndarray
    kept_losses: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # Reference price of agents without contracts and its source (see `fallback_reference`).
    fallback_price: float = float("nan")
    reference_source: str = ""
    # How the scenarios were drawn (prudencial.risk.pld.ScenarioModel.to_dict, with the seed);
    # None when the caller passed bare PLD values.
    scenario_model: dict[str, Any] | None = None
    # Work of the streamed paths' tails: cells partitioned per loss value (rows × scenarios);
    # 1 = every value partitioned once, what one partition of the whole loss matrix costs (the
    # memory-unbounded floor); values the running threshold drops cost no partition, so it can
    # be below 1. None on the grouped path (no tail kept).
    tail_passes: float | None = None
    # Per agent: has traded volume (bought or sold). Agents without are listed apart.
    trades: np.ndarray | None = None
    # Per agent: no expected cost (requirement or reference price 0, or 0 in some scenario with
    # drawn prices): no relative figure (its var_*/cvar_* are 0 and the table shows none), only
    # the R$ ones.
    no_expected_cost: np.ndarray | None = None
    # The same VaR/CVaR in R$ (the loss itself, not its fraction of the expected cost).
    var_intrinsic_brl: np.ndarray | None = None
    cvar_intrinsic_brl: np.ndarray | None = None
    var_propagated_brl: np.ndarray | None = None
    cvar_propagated_brl: np.ndarray | None = None
    var_total_brl: np.ndarray | None = None
    cvar_total_brl: np.ndarray | None = None
    # How VaR and CVaR were read off the losses (prudencial.risk.measures.RiskConvention).
    risk_convention: dict[str, str] = field(default_factory=lambda: convention(None).to_dict())

    @property
    def community(self) -> np.ndarray:
        return self.communities.membership

    @property
    def n_communities(self) -> int:
        """K: communities of agents that trade (a lone agent without contracts is no community
        of the network; `n_isolated` counts those agents)."""
        return sum(not c.isolated for c in self.community_table)

    @property
    def isolated(self) -> np.ndarray:
        """Agents without any traded volume."""
        if self.trades is None:
            return np.zeros(len(self.agent_ids), dtype=bool)
        return ~self.trades

    @property
    def n_isolated(self) -> int:
        return int(self.isolated.sum())

    @property
    def propagators(self) -> np.ndarray:
        """Agents that fail to deliver in at least one scenario."""
        return self.failure_frequency > 0

    @property
    def network_mean(self) -> dict[str, float]:
        """Mean exposure of the whole network (mean over agents of each CVaR and VaR)."""
        costed = (
            np.ones(len(self.agent_ids), dtype=bool)
            if self.no_expected_cost is None
            else ~self.no_expected_cost
        )
        return {
            name: float(getattr(self, name)[costed].mean()) if costed.any() else 0.0
            for name in (
                "var_intrinsic",
                "cvar_intrinsic",
                "var_propagated",
                "cvar_propagated",
                "var_total",
                "cvar_total",
            )
        }

    def per_agent_table(self) -> list[dict[str, Any]]:
        """One row per agent with the local and global indicators (paper Fig. 7)."""
        community_mean = np.array([c.mean_cvar_propagated for c in self.community_table])
        k = self.n_communities
        isolated = self.isolated
        no_cost = (
            np.zeros(len(self.agent_ids), dtype=bool)
            if self.no_expected_cost is None
            else self.no_expected_cost
        )

        def relative(name: str, a: int) -> float | None:
            return None if no_cost[a] else float(getattr(self, name)[a])

        def brl(name: str, a: int) -> float | None:
            values = getattr(self, f"{name}_brl")
            return None if values is None else float(values[a])

        rows = []
        for a, agent in enumerate(self.agent_ids):
            c = int(self.community[a])
            rank = None if isolated[a] else int(self.community_rank[a])
            rows.append(
                {
                    "agent": agent,
                    "class": str(self.classes[a]),
                    "net_mwh": float(self.net_mwh[a]),
                    "expected_cost": float(self.expected_cost[a]),
                    "reference_price": float(self.reference_price[a]),
                    "var_intrinsic": relative("var_intrinsic", a),
                    "var_intrinsic_brl": brl("var_intrinsic", a),
                    "cvar_intrinsic": relative("cvar_intrinsic", a),
                    "cvar_intrinsic_brl": brl("cvar_intrinsic", a),
                    "var_propagated": relative("var_propagated", a),
                    "var_propagated_brl": brl("var_propagated", a),
                    "cvar_propagated": relative("cvar_propagated", a),
                    "cvar_propagated_brl": brl("cvar_propagated", a),
                    "var_total": relative("var_total", a),
                    "var_total_brl": brl("var_total", a),
                    "cvar_total": relative("cvar_total", a),
                    "cvar_total_brl": brl("cvar_total", a),
                    "systemic_received_max_mwh": float(self.received_max_mwh[a]),
                    "systemic_received_mean_mwh": float(self.received_mean_mwh[a]),
                    "systemic_undelivered_max_mwh": float(self.undelivered_max_mwh[a]),
                    "systemic_undelivered_mean_mwh": float(self.undelivered_mean_mwh[a]),
                    "failure_frequency": float(self.failure_frequency[a]),
                    "community": c,
                    "community_mean_cvar_propagated": float(community_mean[c]),
                    "community_rank": rank,
                    "n_communities": k,
                    "network_position": "isolated" if rank is None else f"{rank} of {k}",
                    "no_expected_cost": bool(no_cost[a]),
                }
            )
        return rows

    def summary(self) -> dict[str, Any]:
        return {
            "n_agents": len(self.agent_ids),
            "n_scenarios": self.n_scenarios,
            "confidence": self.confidence,
            "cascade": self.cascade,
            "probabilistic": self.probabilistic,
            "rounds": self.rounds,
            "converged": self.converged,
            "pld_mean": self.pld_mean,
            "fallback_price": self.fallback_price,
            "reference_source": self.reference_source,
            "scenario_model": self.scenario_model,
            "risk_convention": dict(self.risk_convention),
            "loss_convention": LOSS_CONVENTION,
            "community_method": self.communities.method,
            "modularity": self.communities.modularity,
            "n_communities": self.n_communities,
            "n_isolated": self.n_isolated,
            "n_propagators": int(self.propagators.sum()),
            "network_mean": self.network_mean,
            "timings_s": dict(self.timings),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "communities": [c.to_dict() for c in self.community_table],
            "agents": self.per_agent_table(),
        }


# Means of loss fractions closer than this are equal for the ranking (their differences come
# from the order of the additions, ~1e-16, not from the agents).
RANK_TOLERANCE = 1e-12


def _tie_key(values: np.ndarray, tolerance: float = RANK_TOLERANCE) -> np.ndarray:
    """A sort key, ascending as the values descend, equal for values within `tolerance` of
    their neighbour in the descending order (so a run of near-equal means is one tie)."""
    order = np.argsort(-values, kind="stable")
    ordered = values[order]
    starts = np.r_[
        True,
        np.abs(np.diff(ordered)) > tolerance * max(1.0, float(np.abs(values).max(initial=0.0))),
    ]
    key = np.empty(values.size, dtype=np.int64)
    key[order] = np.cumsum(starts)
    return key


def _community_table(
    communities: Communities,
    cvar_intrinsic: np.ndarray,
    cvar_propagated: np.ndarray,
    cvar_total: np.ndarray,
    propagators: np.ndarray,
    trades: np.ndarray | None = None,
    costed: np.ndarray | None = None,
) -> tuple[tuple[CommunityFigures, ...], np.ndarray]:
    labels = communities.membership
    k = communities.n_communities
    size = np.bincount(labels, minlength=k)
    # Means over the members with an expected cost (the others have no relative figure).
    weight = np.ones(labels.size) if costed is None else np.asarray(costed, dtype=float)
    counted = np.bincount(labels, weight, k)
    trading = (
        np.ones(k, dtype=bool)
        if trades is None
        else np.bincount(labels, np.asarray(trades, dtype=float), k) > 0
    )
    mean = {
        name: np.bincount(labels, values * weight, k) / np.maximum(counted, 1)
        for name, values in (
            ("intrinsic", cvar_intrinsic),
            ("propagated", cvar_propagated),
            ("total", cvar_total),
        )
    }
    # Rank 1 = highest mean propagated CVaR; ties (means within RANK_TOLERANCE: rounding
    # noise of the means is not an order) by total CVaR, then by label; communities of agents
    # that trade first (ranks 1…K), lone agents after them.
    order = np.lexsort(
        (np.arange(k), _tie_key(mean["total"]), _tie_key(mean["propagated"]), ~trading)
    )
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(1, k + 1)
    n_prop = np.bincount(labels, propagators.astype(float), k).astype(int)
    table = tuple(
        CommunityFigures(
            community=int(c),
            rank=int(rank[c]),
            size=int(size[c]),
            propagators=int(n_prop[c]),
            mean_cvar_intrinsic=float(mean["intrinsic"][c]),
            mean_cvar_propagated=float(mean["propagated"][c]),
            mean_cvar_total=float(mean["total"][c]),
            isolated=not bool(trading[c]),
        )
        for c in order
    )
    ordered = tuple(sorted(table, key=lambda f: f.community))
    return ordered, rank[labels]


def network_risk(
    market: Market,
    pld_scenarios: Any,
    confidence: float = 0.95,
    community_method: str = "fastgreedy",
    cascade: bool = False,
    failure_probability: FailureProbability = None,
    seed: int | None = None,
    *,
    max_rounds: int = 100,
    chunk_size: int | None = None,
    keep_agents: Sequence[int] = (),
    progress: Callable[[int], None] | None = None,
    communities: Communities | None = None,
    reference_pld: float | None = None,
    group_equal_prices: bool = True,
    risk_convention: RiskConvention | str | None = None,
) -> NetworkRiskResult:
    """Run the network model: intrinsic, propagated and total VaR/CVaR per agent, communities.

    Scenarios are processed in chunks (only each agent's loss tail is kept), so memory is
    bounded by `chunk_size` × agents. `keep_agents` keeps the full loss series of a few agents
    (for loss-distribution pictures). Pass precomputed `communities` to skip detection.
    `reference_pld` prices agents without contracts (default: the market's mean contract price).

    Without probabilistic failures every loss is a function of the scenario's PLD alone, and a
    single-week bootstrap repeats the history's few distinct prices thousands of times: with
    `group_equal_prices` (the default) each distinct price is computed once and VaR/CVaR are
    taken with the prices' multiplicities, which is exact (the same order statistics), not an
    approximation. It applies when at most half the scenarios are distinct and the distinct
    prices fit in one block.

    `pld_scenarios` may be a prudencial.risk.pld.Scenarios: with its contract price model the
    contracts are priced per scenario (prudencial.risk.priced), and the model is written into
    the results. `risk_convention` (RiskConvention, "default" or "paper_r") says how VaR and
    CVaR are read off the losses, on every path.
    """
    conv = convention(risk_convention)
    started = time.perf_counter()
    scenario_model = describe(pld_scenarios)
    prices = _prices(pld_scenarios.pld if isinstance(pld_scenarios, Scenarios) else pld_scenarios)
    n, n_scen = market.n_agents, prices.size
    fallback, source = fallback_reference(market, prices, reference_pld)
    book = contract_book(market, fallback)
    p = failure_probabilities(market, failure_probability)
    rng = np.random.default_rng(seed) if p is not None else None
    no_cost = book.expected_cost <= 0
    if (
        isinstance(pld_scenarios, Scenarios)
        and pld_scenarios.per_scenario_prices
        and market_contract_price(market) is not None  # contracts with volume to price
    ):
        priced = priced_figures(
            market,
            pld_scenarios,
            confidence,
            cascade=cascade,
            failures=lambda m: _draw_failures(rng, p, m),
            max_rounds=max_rounds,
            cells_per_block=DEFAULT_CELLS_PER_CHUNK
            if chunk_size is None
            else chunk_size * max(n, market.n_contracts),
            reference_pld=reference_pld,
            keep_agents=keep_agents,
            progress=progress,
            risk_convention=conv,
        )
        return _result(
            market,
            communities,
            community_method,
            seed,
            confidence=confidence,
            n_scenarios=n_scen,
            cascade=cascade,
            probabilistic=p is not None,
            rounds=priced.rounds,
            converged=priced.converged,
            pld_mean=float(prices.mean()),
            expected_cost=priced.expected_cost_mean,
            reference_price=priced.reference_price_mean,
            figures=priced.figures,
            figures_brl=priced.figures_brl,
            no_expected_cost=priced.no_expected_cost,
            received_max=priced.received_max,
            received_mean=priced.received_mean,
            undelivered_max=priced.undelivered_max,
            undelivered_mean=priced.undelivered_mean,
            failure_frequency=priced.failure_frequency,
            kept_losses=priced.kept_losses,
            tail_passes=priced.cells_partitioned / max(3 * n * n_scen, 1),
            started=started,
            fallback_price=priced.fallback_mean,
            reference_source="given"
            if reference_pld is not None
            else "market_contracts_per_scenario",
            scenario_model=scenario_model,
            risk_convention=conv.to_dict(),
        )
    size = conv.tail_size(n_scen, confidence)
    if chunk_size is None:
        chunk_size = max(1, DEFAULT_CELLS_PER_CHUNK // max(n, 1))
    chunk_size = max(chunk_size, 1)
    # Agents without an expected cost have no relative figure: their rows are computed in R$
    # (a scale of 1) and split off at the end; everyone else's R$ figure is its fraction times
    # the expected cost, exactly (every convention is positively homogeneous).
    expected_cost = book.expected_cost
    book = replace(book, expected_cost=np.where(no_cost, 1.0, expected_cost))

    plan = propagation_plan(book, cascade)
    buyers = plan.buyers
    received_sum = np.zeros(n)
    received_max = np.zeros(n)
    undelivered_sum = np.zeros(n)
    undelivered_max = np.zeros(n)
    failures = np.zeros(n)
    kept = {int(a): {"propagated": [], "total": []} for a in keep_agents}
    rounds, converged = 0, True
    grouped: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    values, inverse, counts = (
        np.unique(prices, return_inverse=True, return_counts=True)
        if p is None and group_equal_prices
        else (prices, None, None)
    )
    if (
        inverse is not None
        and values.size * 2 <= n_scen
        and values.size * max(buyers.size, 1) <= DEFAULT_CELLS_PER_CHUNK  # one block
    ):
        prop = propagate(book, values, None, cascade=cascade, max_rounds=max_rounds, plan=plan)
        rounds, converged = prop.rounds, prop.converged
        propagated = _propagated(book, values, prop)
        total = _intrinsic(book, values, buyers)
        total += propagated
        grouped = {
            "propagated": var_cvar_weighted(propagated, counts, confidence, conv),
            "total": var_cvar_weighted(total, counts, confidence, conv),
        }
        received_sum[buyers] = prop.received @ counts
        received_max[buyers] = prop.received.max(axis=1, initial=0.0)
        undelivered_sum[prop.sellers] = prop.undelivered @ counts
        undelivered_max[prop.sellers] = prop.undelivered.max(axis=1, initial=0.0)
        failures[prop.sellers] = (prop.undelivered > 0) @ counts
        for a, series in kept.items():
            row = np.searchsorted(buyers, a)
            hit = row < buyers.size and buyers[row] == a
            series["propagated"].append(propagated[row][inverse] if hit else np.zeros(n_scen))
        if progress is not None:
            progress(n_scen)
    tails = _StreamedTails(book, buyers, size, min(chunk_size, n_scen)) if grouped is None else None
    # Buyer row → the kept agent's propagated series (agents that are not buyers get zeros).
    kept_rows: dict[int, list] = {}
    never_hit: list[list] = []
    for a, series in kept.items():
        row = int(np.searchsorted(buyers, a))
        if row < buyers.size and buyers[row] == a:
            kept_rows[row] = series["propagated"]
        else:
            never_hit.append(series["propagated"])
    sellers = plan.sellers
    limit = np.minimum(book.deficit[sellers], book.sales[sellers])
    # propagate()'s one-round shortcut, its tables built once for every block and the buyers'
    # received volume and value gathered one row group at a time (never a whole block's).
    tables = (
        _threshold_tables(book, plan, limit)
        if tails is not None
        and p is None
        and not cascade
        and buyers.size * (sellers.size + 1) <= DENSE_CUMULATIVE_CELLS
        else None
    )
    for start in range(0, n_scen if tails is not None else 0, chunk_size):
        block = prices[start : start + chunk_size]
        rows: Callable[[slice], tuple[np.ndarray, np.ndarray]]
        if tables is not None:
            eligible = block[None, :] > book.reference_price[sellers, None]
            undelivered = eligible * limit[:, None]
            rounds = max(rounds, int(undelivered.any()))
            prefix = np.searchsorted(tables[0], block, side="left")  # sellers with p̂ < PLD

            def rows(g: slice, prefix: np.ndarray = prefix) -> tuple[np.ndarray, np.ndarray]:
                return np.take(tables[1][g], prefix, axis=1), np.take(tables[2][g], prefix, axis=1)

        else:
            prop = propagate(
                book,
                block,
                _draw_failures(rng, p, block.size),
                cascade=cascade,
                max_rounds=max_rounds,
                plan=plan,
            )
            rounds = max(rounds, prop.rounds)
            converged &= prop.converged
            undelivered = prop.undelivered

            def rows(g: slice, prop: Propagation = prop) -> tuple[np.ndarray, np.ndarray]:
                return prop.received[g], prop.received_value[g]

        undelivered_sum[sellers] += undelivered.sum(axis=1)
        np.maximum.at(undelivered_max, sellers, undelivered.max(axis=1, initial=0.0))
        failures[sellers] += (undelivered > 0).sum(axis=1)
        # Only the plan's buyers can receive a propagated loss; for everyone else the total is
        # the intrinsic loss, whose VaR/CVaR come in closed form below.
        tails.add(block, rows, kept_rows)
        for series in never_hit:
            series.append(np.zeros(block.size))
        if progress is not None:
            progress(block.size)
    if tails is not None:
        received_sum[buyers] = tails.received_sum
        received_max[buyers] = tails.received_max

    var_intrinsic, cvar_intrinsic = intrinsic_var_cvar(book, prices, confidence, conv)
    tail_figures = tails.figures(n_scen, confidence, conv) if tails is not None else {}
    tail_passes = (
        tails.cells_partitioned / max(2 * buyers.size * n_scen, 1) if tails is not None else None
    )
    figures = {"intrinsic": (var_intrinsic, cvar_intrinsic)}
    for name in ("propagated", "total"):
        var_, cvar_ = (
            (np.zeros(n), np.zeros(n))
            if name == "propagated"
            else (var_intrinsic.copy(), cvar_intrinsic.copy())
        )
        if buyers.size:
            var_[buyers], cvar_[buyers] = (
                grouped[name] if grouped is not None else tail_figures[name]
            )
        figures[name] = (var_, cvar_)
    kept_losses = {}
    for a, series in kept.items():
        intrinsic = _intrinsic(book, prices, np.array([a]))[0]
        propagated = np.concatenate(series["propagated"])
        if no_cost[a]:  # those rows are in R$: no fraction of a cost that is not there
            intrinsic, propagated = np.zeros_like(intrinsic), np.zeros_like(propagated)
        kept_losses[a] = {
            "intrinsic": intrinsic,
            "propagated": propagated,
            "total": intrinsic + propagated,
        }
    figures, figures_brl = _split_brl(figures, no_cost, expected_cost)
    return _result(
        market,
        communities,
        community_method,
        seed,
        confidence=confidence,
        n_scenarios=n_scen,
        cascade=cascade,
        probabilistic=p is not None,
        rounds=rounds,
        converged=converged,
        pld_mean=float(prices.mean()),
        expected_cost=expected_cost,
        reference_price=book.reference_price,
        figures=figures,
        figures_brl=figures_brl,
        no_expected_cost=no_cost,
        received_max=received_max,
        received_mean=received_sum / n_scen,
        undelivered_max=undelivered_max,
        undelivered_mean=undelivered_sum / n_scen,
        failure_frequency=failures / n_scen,
        kept_losses=kept_losses,
        tail_passes=tail_passes,
        started=started,
        fallback_price=fallback,
        reference_source=source,
        scenario_model=scenario_model,
        risk_convention=conv.to_dict(),
    )


def _split_brl(
    figures: Mapping[str, tuple[np.ndarray, np.ndarray]],
    no_cost: np.ndarray,
    expected_cost: np.ndarray,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(fractions, R$) from figures whose no-cost rows are in R$ and the others fractions."""
    fractions, brl = {}, {}
    for name, pair in figures.items():
        fractions[name] = tuple(np.where(no_cost, 0.0, v) for v in pair)
        brl[name] = tuple(np.where(no_cost, v, v * expected_cost) for v in pair)
    return fractions, brl


def _result(
    market: Market,
    communities: Communities | None,
    community_method: str,
    seed: int | None,
    *,
    figures: Mapping[str, tuple[np.ndarray, np.ndarray]],
    received_max: np.ndarray,
    received_mean: np.ndarray,
    undelivered_max: np.ndarray,
    undelivered_mean: np.ndarray,
    failure_frequency: np.ndarray,
    started: float,
    **fields: Any,
) -> NetworkRiskResult:
    """Communities and the result, from the measured figures of either path."""
    measured = time.perf_counter()
    if communities is None:
        communities = detect_communities(market, community_method, seed)
    detected = time.perf_counter()
    no_cost = fields.get("no_expected_cost")
    figures_brl = fields.pop("figures_brl")
    n = market.n_agents
    trades = (
        np.bincount(market.seller, market.volume, n) + np.bincount(market.buyer, market.volume, n)
    ) > 0
    table, agent_rank = _community_table(
        communities,
        figures["intrinsic"][1],
        figures["propagated"][1],
        figures["total"][1],
        failure_frequency > 0,
        trades,
        None if no_cost is None else ~no_cost,
    )
    return NetworkRiskResult(
        agent_ids=list(market.agent_ids),
        classes=market.classes.copy(),
        net_mwh=market.net,
        var_intrinsic=figures["intrinsic"][0],
        cvar_intrinsic=figures["intrinsic"][1],
        var_propagated=figures["propagated"][0],
        cvar_propagated=figures["propagated"][1],
        var_total=figures["total"][0],
        cvar_total=figures["total"][1],
        received_max_mwh=received_max,
        received_mean_mwh=received_mean,
        undelivered_max_mwh=undelivered_max,
        undelivered_mean_mwh=undelivered_mean,
        failure_frequency=failure_frequency,
        communities=communities,
        community_table=table,
        community_rank=agent_rank,
        timings={"exposures": measured - started, "communities": detected - measured},
        trades=trades,
        **{
            f"{m}_{name}_brl": figures_brl[name][i]
            for name in figures_brl
            for i, m in enumerate(("var", "cvar"))
        },
        **fields,
    )


def network_stress(
    market: Market,
    prices: Mapping[str, float],
    *,
    reference_pld: float | None = None,
    cascade: bool = False,
) -> dict[str, dict[str, Any]]:
    """Deterministic stress scenarios for the network (e.g. PLD at floor, at cap, shifted).

    Each named price is one scenario. Agents without contracts are priced as in `network_risk`
    (the market's mean contract price unless `reference_pld` is given), so stress and base
    runs are comparable.
    """
    names = list(prices)
    values = np.array([float(prices[k]) for k in names])
    matrices = exposure_matrices(market, values, cascade=cascade, reference_pld=reference_pld)
    out = {}
    for j, name in enumerate(names):
        total = matrices.total[:, j]
        out[name] = {
            "pld": float(values[j]),
            "intrinsic": matrices.intrinsic[:, j],
            "propagated": matrices.propagated[:, j],
            "total": total,
            "mean_total_loss": float(total.mean()) if total.size else 0.0,
            "max_total_loss": float(total.max(initial=0.0)),
            "failing_sellers": int((matrices.undelivered[:, j] > 0).sum()),
            "undelivered_mwh": float(matrices.undelivered[:, j].sum()),
        }
    return out
