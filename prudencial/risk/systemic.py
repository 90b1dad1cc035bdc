"""Systemic measures beyond one round: DebtRank, Eisenberg–Noe clearing and a cover-2 stress.

The paper's indicator (Algorithm 2, `network.py`) lets each short seller fail once and reads the
loss its buyers take. The measures here ask what happens next, on an *exposure network* built
from the same market in a stress scenario (docs/systemic.md has the full definitions):

- **contract value.** A contract seller → buyer of v MWh at p R$/MWh is worth v·(PLD − p) to
  the buyer at the scenario's PLD. If PLD > p the seller owes the buyer that replacement cost
  (the buyer must buy the energy at PLD if the seller does not deliver); if PLD < p the buyer
  owes the seller v·(p − PLD) (the seller must sell at PLD if the buyer walks away). Per pair
  the amounts are netted (bilateral close-out netting, `netting=True`): L[i, j] ≥ 0 is what i
  owes j, in R$;
- **capital.** E[a] is the buffer that absorbs losses: `capital` given per agent (e.g. the
  adjusted equity, PLA, inside the enclave) or `capital_fraction` × expected cost (requirement ×
  the agent's contract reference price, the paper's CstEsp);
- **intrinsic loss.** I[a] = (requirement − resource)[a] · (PLD − p̂[a]), the paper's Algorithm 1
  in R$: the unhedged imbalance settled at PLD. It eats capital first (`intrinsic=True`).

DebtRank (Battiston et al. 2012) propagates *distress* h ∈ [0, 1] (the share of capital lost):
W[i, k] = min(1, L[i, k] / E[k]) and each agent passes its distress on once. Eisenberg–Noe (2001)
clears *payments*: each agent pays min(what it owes, what it has) pro rata, which finds who
defaults and who defaults only because others did. Cover-2 is the pair of agents whose joint
failure costs the system the most capital under DebtRank. Only relative figures and agent
identifiers leave through `SystemicResult.published()`.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from prudencial.risk.market import Market
from prudencial.risk.measures import tail_index
from prudencial.risk.network import fallback_reference, reference_price

SCHEMA = "prudencial/systemic/v1"
DEBTRANK_METHODS = ("battiston", "fixed_point")
QUANTILE_SIDES = ("high", "low")
# Significant digits of every published fraction: enough to rank and compare, too few to carry
# a declared value's digits back out.
PUBLISHED_DIGITS = 4


@dataclass(frozen=True)
class SystemicOptions:
    """How the exposure network is built and measured (all public parameters)."""

    confidence: float = 0.95
    sides: tuple[str, ...] = QUANTILE_SIDES
    pld: float | Mapping[str, float] | None = None
    capital: Sequence[float] | np.ndarray | None = None
    capital_fraction: float = 0.10
    netting: bool = True
    intrinsic: bool = True
    debtrank: str = "battiston"
    cover2_candidates: int = 40
    top: int = 10
    reference_pld: float | None = None
    max_rounds: int = 10_000
    tolerance: float = 1e-12
    batch_cells: int = 10_000_000

    @classmethod
    def parse(cls, options: SystemicOptions | Mapping[str, Any] | None) -> SystemicOptions:
        """Options from None, a mapping (unknown keys refused by name) or an instance."""
        if options is None:
            out = cls()
        elif isinstance(options, SystemicOptions):
            out = options
        elif isinstance(options, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(options) - known)
            if unknown:
                raise ValueError(f"options.{unknown[0]} is not a systemic option")
            values = dict(options)
            if "sides" in values:
                values["sides"] = tuple(values["sides"])
            out = cls(**values)
        else:
            raise ValueError("options must be a mapping or SystemicOptions")
        out._check()
        return out

    def _check(self) -> None:
        if not 0.0 < float(self.confidence) < 1.0:
            raise ValueError(f"options.confidence must be in (0, 1) (got {self.confidence})")
        bad = [s for s in self.sides if s not in QUANTILE_SIDES]
        if bad or not self.sides:
            raise ValueError(f"options.sides must be a non-empty subset of {QUANTILE_SIDES}")
        if not (math.isfinite(self.capital_fraction) and self.capital_fraction > 0):
            raise ValueError(
                f"options.capital_fraction must be a finite number > 0 (got {self.capital_fraction})"
            )
        if self.debtrank not in DEBTRANK_METHODS:
            raise ValueError(f"options.debtrank must be one of {', '.join(DEBTRANK_METHODS)}")
        for name in ("cover2_candidates", "top", "max_rounds", "batch_cells"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"options.{name} must be an integer ≥ 1 (got {value!r})")
        if self.cover2_candidates < 2:
            raise ValueError("options.cover2_candidates must be ≥ 2")


# --- the exposure network -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ExposureNetwork:
    """The market as obligations in one stress scenario (R$; stays inside the enclave)."""

    pld: float
    liabilities: sp.csr_matrix = field(repr=False)  # L[i, j]: what i owes j
    capital: np.ndarray = field(repr=False)  # E
    intrinsic_loss: np.ndarray = field(repr=False)  # I, positive = loss

    @property
    def n_agents(self) -> int:
        return int(self.capital.size)

    def impact(self) -> sp.csr_matrix:
        """W[i, k] = min(1, L[i, k] / E[k]): share of k's capital lost if i pays nothing."""
        coo = self.liabilities.tocoo()
        cap = self.capital[coo.col]
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(cap > 0, coo.data / np.where(cap > 0, cap, 1.0), 1.0)
        w = np.minimum(w, 1.0)
        keep = coo.data > 0
        return sp.csr_matrix(
            (w[keep], (coo.row[keep], coo.col[keep])), shape=self.liabilities.shape
        )

    def initial_distress(self) -> np.ndarray:
        """h0 = min(1, I⁺ / E): the scenario's own loss as a share of capital."""
        loss = np.maximum(self.intrinsic_loss, 0.0)
        out = np.zeros_like(loss)
        np.divide(loss, self.capital, out=out, where=self.capital > 0)
        out[(self.capital <= 0) & (loss > 0)] = 1.0
        return np.minimum(out, 1.0)


def contract_obligations(market: Market, pld: float, *, netting: bool = True) -> sp.csr_matrix:
    """L[i, j] (R$): what i owes j at this PLD, from each contract's value v·(PLD − p).

    Positive value: the seller owes the buyer the replacement cost; negative: the buyer owes
    the seller. With `netting` each pair's amounts are offset (close-out netting).
    """
    n = market.n_agents
    value = market.volume * (float(pld) - market.price)
    debtor = np.where(value > 0, market.seller, market.buyer)
    creditor = np.where(value > 0, market.buyer, market.seller)
    amount = np.abs(value)
    keep = amount > 0
    owed = sp.csr_matrix((amount[keep], (debtor[keep], creditor[keep])), shape=(n, n))
    owed.sum_duplicates()
    if netting:
        owed = (owed - owed.T).maximum(0).tocsr()
    owed.eliminate_zeros()
    return owed


def exposure_network(
    market: Market,
    pld: float,
    *,
    capital: Sequence[float] | np.ndarray | None = None,
    capital_fraction: float = 0.10,
    netting: bool = True,
    reference: np.ndarray | None = None,
    reference_pld: float | None = None,
) -> ExposureNetwork:
    """Obligations, capital and intrinsic loss of every agent at one PLD (see module doc)."""
    pld = float(pld)
    if not math.isfinite(pld) or pld < 0:
        raise ValueError(f"pld must be a finite price ≥ 0 (got {pld})")
    n = market.n_agents
    if reference is None:
        fallback, _ = fallback_reference(market, np.array([pld]), reference_pld)
        reference = reference_price(market, fallback)
    reference = np.asarray(reference, dtype=float)
    if capital is None:
        cap = capital_fraction * market.requirement * reference
    else:
        cap = np.asarray(capital, dtype=float).ravel()
        if cap.shape != (n,):
            raise ValueError(f"options.capital must have one entry per agent ({n})")
        bad = np.flatnonzero(~np.isfinite(cap) | (cap < 0))
        if bad.size:
            raise ValueError(
                f"options.capital[{bad[0]}] of agent {market.agent_ids[bad[0]]} must be finite "
                "and ≥ 0"
            )
    deficit = market.requirement - market.resource
    return ExposureNetwork(
        pld=pld,
        liabilities=contract_obligations(market, pld, netting=netting),
        capital=cap,
        intrinsic_loss=deficit * (pld - reference),
    )


# --- DebtRank -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DebtRankRun:
    """Final distress h(T) per agent (columns: one per initial shock) and rounds taken."""

    distress: np.ndarray
    rounds: int
    converged: bool


def debtrank(
    impact: sp.spmatrix,
    initial: np.ndarray,
    *,
    method: str = "battiston",
    max_rounds: int = 10_000,
    tolerance: float = 1e-12,
) -> DebtRankRun:
    """Propagate initial distress (agents × shocks) over W (impact[i, k]: i on k).

    `battiston` (Battiston et al. 2012): h_k(t) = min(1, h_k(t−1) + Σ_{i distressed at t−1}
    W[i, k]·h_i(t−1)); an agent passes its distress on in the round after it is first hit,
    then is inactive (so distress does not reverberate around cycles). `fixed_point`: the least
    fixed point of h = min(1, h0 + Wᵀh), reached by iteration from h0 — every increment passes
    on (reverberation, as in Bardoscia et al. 2015); it bounds the Battiston figure from above
    and is subadditive in the shocks, which is what the cover-2 pruning rests on.
    """
    if method not in DEBTRANK_METHODS:
        raise ValueError(f"method must be one of {', '.join(DEBTRANK_METHODS)}")
    h0 = np.asarray(initial, dtype=float)
    vector = h0.ndim == 1
    h0 = h0.reshape(h0.shape[0], -1)
    wt = sp.csr_matrix(impact).T.tocsr()
    h = np.minimum(h0, 1.0)
    rounds, converged = 0, True
    if method == "battiston":
        active = h > 0
        inactive = np.zeros_like(active)
        while active.any():
            if rounds >= max_rounds:
                converged = False
                break
            push = wt @ np.where(active, h, 0.0)
            h = np.minimum(1.0, h + push)
            inactive |= active
            active = (h > 0) & ~inactive
            rounds += 1
    else:
        while True:
            if rounds >= max_rounds:
                converged = False
                break
            nxt = np.minimum(1.0, h0 + wt @ h)
            moved = float(np.max(nxt - h, initial=0.0))
            h = nxt
            rounds += 1
            if moved <= tolerance:
                break
    return DebtRankRun(h[:, 0] if vector else h, rounds, converged)


def _weights(capital: np.ndarray) -> np.ndarray:
    total = float(capital.sum())
    if total <= 0:
        raise ValueError("options.capital sums to zero: DebtRank weighs agents by capital")
    return capital / total


def _seed_batches(seeds: Sequence[Sequence[int]], n: int, batch_cells: int):
    size = max(1, batch_cells // max(n, 1))
    for start in range(0, len(seeds), size):
        chunk = seeds[start : start + size]
        h0 = np.zeros((n, len(chunk)))
        for j, group in enumerate(chunk):
            h0[list(group), j] = 1.0
        yield chunk, h0


def _seed_impacts(
    impact: sp.csr_matrix,
    weights: np.ndarray,
    seeds: Sequence[Sequence[int]],
    method: str,
    options: SystemicOptions,
    zero_impact: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """R(S) = Σ v·h(T) − Σ_{S} v for each seed set S (all members fail), and for single seeds
    the least v_k·h_k over zero-impact agents k ∉ S (what pairing with such a k removes)."""
    n = impact.shape[0]
    out = np.zeros(len(seeds))
    least = np.full(len(seeds), np.inf)
    rounds = 0
    at = 0
    for chunk, h0 in _seed_batches(list(seeds), n, options.batch_cells):
        run = debtrank(
            impact, h0, method=method, max_rounds=options.max_rounds, tolerance=options.tolerance
        )
        rounds = max(rounds, run.rounds)
        own = np.array([weights[list(g)].sum() for g in chunk])
        out[at : at + len(chunk)] = weights @ run.distress - own
        if zero_impact is not None and zero_impact.any():
            lost = weights[:, None] * run.distress
            lost[~zero_impact] = np.inf
            for j, group in enumerate(chunk):
                lost[list(group), j] = np.inf
            least[at : at + len(chunk)] = lost.min(axis=0)
        at += len(chunk)
    return np.maximum(out, 0.0), least, rounds


@dataclass(frozen=True)
class Cover2:
    """The pair whose joint failure costs the system most capital (share of total capital)."""

    agents: tuple[int, int] | None
    loss: float
    bound: float
    certified: bool
    exhaustive: bool
    candidates: int
    pairs_evaluated: int
    distressed: int


def cover2(
    impact: sp.csr_matrix,
    weights: np.ndarray,
    single: np.ndarray,
    upper: np.ndarray,
    least_zero: np.ndarray,
    options: SystemicOptions,
) -> Cover2:
    """Largest DebtRank loss of a joint failure of two agents.

    Agents whose failure hurts nobody (no obligation to anyone) add nothing propagated: a pair
    with one of them loses what the other alone causes, minus the harmless agent's own
    distress (it is a failed seed, not a victim) — computed exactly from the single runs. Pairs
    of agents that do hurt someone are searched among the `cover2_candidates` with the largest
    fixed-point impact U (≥ the Battiston impact). The fixed-point loss is subadditive, so a
    pair with a non-candidate k loses at most U_max + U_k ≤ U_(1) + U_(K+1): when the best pair
    found reaches that bound the answer is exact (`certified`), otherwise `bound` is an upper
    bound on the true cover-2 loss. Cost: K(K−1)/2 DebtRank runs after the n single ones.
    """
    n = impact.shape[0]
    if n < 2:
        return Cover2(None, 0.0, 0.0, True, True, 0, 0, 0)
    hurts = np.flatnonzero(np.diff(impact.indptr) > 0)
    order = hurts[np.lexsort((hurts, -upper[hurts]))]
    k = min(options.cover2_candidates, order.size)
    candidates = order[:k]
    best_loss, best_pair = 0.0, None
    # A harmful agent with a harmless partner.
    if order.size < n:
        gain = single[order] - least_zero[order]
        finite = np.isfinite(gain)
        if finite.any():
            j = int(np.argmax(np.where(finite, gain, -np.inf)))
            harmless = np.flatnonzero(np.diff(impact.indptr) == 0)
            i = int(order[j])
            partner = _least_partner(impact, weights, i, harmless, options)
            best_loss, best_pair = max(float(gain[j]), 0.0), tuple(sorted((i, partner)))
    pairs = list(itertools.combinations(sorted(int(c) for c in candidates), 2))
    if pairs:
        losses, _, _ = _seed_impacts(impact, weights, pairs, options.debtrank, options)
        j = int(np.argmax(losses))
        if best_pair is None or losses[j] > best_loss:
            best_loss, best_pair = float(losses[j]), pairs[j]
    if best_pair is None:
        best_pair = (0, 1)
    exhaustive = k == order.size
    bound = best_loss if exhaustive else max(best_loss, float(upper[order[0]] + upper[order[k]]))
    certified = exhaustive or best_loss >= bound
    h0 = np.zeros(n)
    h0[list(best_pair)] = 1.0
    run = debtrank(impact, h0, method=options.debtrank, max_rounds=options.max_rounds)
    distressed = int(((run.distress > 0) & (h0 == 0)).sum())
    return Cover2(
        agents=(int(best_pair[0]), int(best_pair[1])),
        loss=best_loss,
        bound=bound,
        certified=bool(certified),
        exhaustive=bool(exhaustive),
        candidates=int(k),
        pairs_evaluated=len(pairs),
        distressed=distressed,
    )


def _least_partner(
    impact: sp.csr_matrix,
    weights: np.ndarray,
    seed: int,
    harmless: np.ndarray,
    options: SystemicOptions,
) -> int:
    """The harmless agent whose own distress in `seed`'s failure is the smallest."""
    h0 = np.zeros(impact.shape[0])
    h0[seed] = 1.0
    run = debtrank(impact, h0, method=options.debtrank, max_rounds=options.max_rounds)
    lost = weights[harmless] * run.distress[harmless]
    lost[harmless == seed] = np.inf
    return int(harmless[int(np.argmin(lost))])


# --- Eisenberg–Noe --------------------------------------------------------------------------


@dataclass(frozen=True)
class Clearing:
    """Eisenberg–Noe clearing: payments p (R$), what was owed p̄, and each agent's default wave
    (0 = pays in full, 1 = defaults even if everyone else pays, ≥ 2 = only because others did)."""

    payments: np.ndarray
    owed: np.ndarray
    wave: np.ndarray
    credit_loss: np.ndarray  # R$ each agent did not receive from defaulting debtors
    rounds: int

    @property
    def recovery(self) -> np.ndarray:
        out = np.ones_like(self.owed)
        np.divide(self.payments, self.owed, out=out, where=self.owed > 0)
        return out


def eisenberg_noe(
    liabilities: sp.spmatrix,
    external: np.ndarray,
    *,
    outside: np.ndarray | None = None,
    tolerance: float = 1e-12,
) -> Clearing:
    """Greatest clearing vector by the fictitious default algorithm (Eisenberg and Noe 2001, §3).

    p_i = min(p̄_i, e_i + Σ_j Π_ji p_j), Π_ij = L_ij / p̄_i, p̄_i = Σ_j L_ij + outside_i, where
    `outside` are obligations to a creditor outside the network (here the spot market, owed the
    intrinsic loss) that pays nobody back. Starting from full payment, each round marks who
    cannot pay given the others' current payments, then solves the defaulters' payments as a
    linear system; at most n rounds, each agent's round of default is its wave.
    """
    lmat = sp.csr_matrix(liabilities, dtype=float)
    n = lmat.shape[0]
    e = np.asarray(external, dtype=float)
    if e.shape != (n,) or np.any(e < 0) or not np.all(np.isfinite(e)):
        raise ValueError("external assets must be finite, ≥ 0 and one per agent")
    extra = np.zeros(n) if outside is None else np.asarray(outside, dtype=float)
    owed = np.asarray(lmat.sum(axis=1)).ravel() + extra
    scale = np.zeros(n)
    np.divide(1.0, owed, out=scale, where=owed > 0)
    pi_t = (sp.diags(scale) @ lmat).T.tocsr()
    tol = tolerance * max(1.0, float(owed.max(initial=0.0)))
    p = owed.copy()
    wave = np.zeros(n, dtype=np.int64)
    defaulted = np.zeros(n, bool)
    rounds = 0
    while True:
        assets = e + pi_t @ p
        now = defaulted | (assets < owed - tol)
        if rounds and np.array_equal(now, defaulted):
            break
        if not now.any():
            break
        rounds += 1
        wave[now & ~defaulted] = rounds
        defaulted = now
        p = _solve_defaulters(pi_t, e, owed, defaulted, p, tol)
        if rounds > n + 1:  # cannot happen: the default set only grows
            break
    credit_loss = np.maximum(pi_t @ (owed - p), 0.0)
    return Clearing(p, owed, wave, credit_loss, rounds)


def _solve_defaulters(pi_t, e, owed, defaulted, p, tol) -> np.ndarray:
    d = np.flatnonzero(defaulted)
    solvent = np.flatnonzero(~defaulted)
    a = sp.identity(d.size, format="csc") - pi_t[d][:, d].tocsc()
    b = e[d] + pi_t[d][:, solvent] @ owed[solvent]
    out = owed.copy()
    try:
        with np.errstate(all="ignore"):
            solved = np.atleast_1d(spla.spsolve(a, b))
        ok = np.all(np.isfinite(solved)) and np.all(solved >= -tol)
    except (RuntimeError, ValueError):
        ok = False
    if ok:
        out[d] = np.clip(solved, 0.0, owed[d])
        return out
    # Singular: a closed group of defaulters owing only each other with nothing outside.
    # Iterate downwards from the current payments, which converges to the greatest solution.
    x = np.minimum(p, owed)
    for _ in range(100_000):
        nxt = x.copy()
        nxt[d] = np.minimum(owed[d], e[d] + (pi_t @ x)[d])
        if float(np.max(np.abs(nxt - x), initial=0.0)) <= tol:
            return nxt
        x = nxt
    return x


# --- the entry point ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ScenarioSystemic:
    """Every measure in one stress scenario (R$ inside, fractions in `published`)."""

    name: str
    quantile: float | None
    network: ExposureNetwork = field(repr=False)
    debtrank_impact: np.ndarray = field(repr=False)
    debtrank_upper: np.ndarray = field(repr=False)
    debtrank_initial: np.ndarray = field(repr=False)
    debtrank_distress: np.ndarray = field(repr=False)
    debtrank_rounds: int
    debtrank_converged: bool
    weights: np.ndarray = field(repr=False)
    clearing: Clearing = field(repr=False)
    cover2: Cover2


@dataclass(frozen=True, eq=False)
class SystemicResult:
    agent_ids: list[str]
    options: SystemicOptions
    capital_source: str
    scenarios: dict[str, ScenarioSystemic]
    timings: dict[str, float]

    def published(self) -> dict[str, Any]:
        """Relative figures and agent identifiers only: no R$ amount, no volume, no price."""
        ids = self.agent_ids
        out_scenarios: dict[str, Any] = {}
        agent_rows: list[dict[str, Any]] = [{"agent": a, "scenarios": {}} for a in ids]
        for name, s in self.scenarios.items():
            v = s.weights
            initial = float(v @ s.debtrank_initial)
            final = float(v @ s.debtrank_distress)
            top = np.lexsort((np.arange(len(ids)), -s.debtrank_impact))[: self.options.top]
            clearing = s.clearing
            owed_total = float(clearing.owed.sum())
            owed_agents = float(s.network.liabilities.sum())
            unpaid = clearing.owed - clearing.payments
            to_agents = float(clearing.credit_loss.sum())
            c2 = s.cover2
            out_scenarios[name] = {
                "scenario": name,
                "quantile": s.quantile,
                "debtrank": {
                    "method": self.options.debtrank,
                    "system_initial": _sig(initial),
                    "system_final": _sig(final),
                    "system_propagated": _sig(max(final - initial, 0.0)),
                    "rounds": s.debtrank_rounds,
                    "converged": s.debtrank_converged,
                    "distressed": int((s.debtrank_distress > 0).sum()),
                    "defaulted": int((s.debtrank_distress >= 1.0).sum()),
                    "top": [
                        {"agent": ids[i], "impact": _sig(s.debtrank_impact[i])}
                        for i in top
                        if s.debtrank_impact[i] > 0
                    ],
                },
                "eisenberg_noe": {
                    "defaults": int((clearing.wave > 0).sum()),
                    "fundamental": int((clearing.wave == 1).sum()),
                    "contagious": int((clearing.wave >= 2).sum()),
                    "unpaid_share": _sig(float(unpaid.sum()) / owed_total if owed_total else 0.0),
                    "unpaid_to_agents_share": _sig(to_agents / owed_agents if owed_agents else 0.0),
                    "rounds": clearing.rounds,
                },
                "cover2": {
                    "agents": None if c2.agents is None else [ids[i] for i in c2.agents],
                    "loss": _sig(c2.loss),
                    "bound": _sig(c2.bound),
                    "certified": c2.certified,
                    "exhaustive": c2.exhaustive,
                    "candidates": c2.candidates,
                    "pairs_evaluated": c2.pairs_evaluated,
                    "distressed": c2.distressed,
                },
            }
            recovery = clearing.recovery
            cap = s.network.capital
            for a, row in enumerate(agent_rows):
                row["scenarios"][name] = {
                    "debtrank_impact": _sig(s.debtrank_impact[a]),
                    "debtrank_distress": _sig(s.debtrank_distress[a]),
                    "en_recovery": _sig(recovery[a]),
                    "en_default_wave": int(clearing.wave[a]),
                    "en_credit_loss_over_capital": (
                        _sig(clearing.credit_loss[a] / cap[a]) if cap[a] > 0 else None
                    ),
                }
        return {
            "schema": SCHEMA,
            "n_agents": len(ids),
            "confidence": self.options.confidence,
            "capital_source": self.capital_source,
            "capital_fraction": (
                self.options.capital_fraction if self.capital_source == "expected_cost" else None
            ),
            "netting": self.options.netting,
            "intrinsic": self.options.intrinsic,
            "debtrank_method": self.options.debtrank,
            "cover2_candidates": self.options.cover2_candidates,
            "scenarios": out_scenarios,
            "agents": agent_rows,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


def _sig(value: float) -> float:
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return 0.0 if value == 0 else value
    return float(f"{value:.{PUBLISHED_DIGITS}g}")


def _scenario_prices(
    source: Any, options: SystemicOptions
) -> dict[str, tuple[float, float | None]]:
    """{name: (PLD, quantile)} from options.pld, a price, a {name: price} map or scenarios."""
    given = options.pld if options.pld is not None else source
    if given is None:
        raise ValueError(
            "options.pld is required with a NetworkRiskResult (the result keeps no scenarios): "
            "pass the scenario prices or a stress PLD"
        )
    if isinstance(given, Mapping):
        if not given:
            raise ValueError("options.pld must name at least one scenario")
        return {str(k): (_price(v, f"options.pld.{k}"), None) for k, v in given.items()}
    arr = np.asarray(given, dtype=float)
    if arr.ndim == 0:
        return {"stress": (_price(float(arr), "options.pld"), None)}
    arr = arr.ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("pld scenarios must be a non-empty array of finite prices ≥ 0")
    ordered = np.sort(arr)
    k = tail_index(arr.size, options.confidence)
    out = {}
    for side in options.sides:
        if side == "high":
            out["high"] = (float(ordered[k - 1]), float(options.confidence))
        else:
            out["low"] = (float(ordered[arr.size - k]), round(1.0 - float(options.confidence), 12))
    return out


def _price(value: Any, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a price (got {value!r})") from None
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{where} must be a finite price ≥ 0 (got {value!r})")
    return out


def systemic_measures(
    market: Market,
    result_or_prices: Any,
    *,
    options: SystemicOptions | Mapping[str, Any] | None = None,
) -> SystemicResult:
    """DebtRank, Eisenberg–Noe clearing and cover-2 on the market's exposure network.

    `result_or_prices`: the PLD scenarios (array: the stress scenarios are their `confidence`
    upper quantile "high" — the VaR price — and lower quantile "low"), one stress price, a
    {name: price} mapping, or the `NetworkRiskResult` of the same market (its reference prices
    are used, so agents without contracts are priced as in the paper's indicator; give the
    stress prices in `options.pld` or the scenarios there).
    """
    started = time.perf_counter()
    opts = SystemicOptions.parse(options)
    reference = None
    source = result_or_prices
    if hasattr(result_or_prices, "reference_price") and hasattr(result_or_prices, "agent_ids"):
        if list(result_or_prices.agent_ids) != list(market.agent_ids):
            raise ValueError("the network result is of another market (agent_ids differ)")
        reference = np.asarray(result_or_prices.reference_price, dtype=float)
        source = None
    prices = _scenario_prices(source, opts)
    if reference is None:
        fallback, _ = fallback_reference(
            market, np.array([p for p, _ in prices.values()]), opts.reference_pld
        )
        reference = reference_price(market, fallback)
    scenarios: dict[str, ScenarioSystemic] = {}
    timings: dict[str, float] = {}
    for name, (pld, quantile) in prices.items():
        t0 = time.perf_counter()
        net = exposure_network(
            market,
            pld,
            capital=opts.capital,
            capital_fraction=opts.capital_fraction,
            netting=opts.netting,
            reference=reference,
        )
        weights = _weights(net.capital)
        impact = net.impact()
        n = net.n_agents
        hurts = np.flatnonzero(np.diff(impact.indptr) > 0)
        harmless = np.ones(n, bool)
        harmless[hurts] = False
        seeds = [(int(i),) for i in hurts]
        single = np.zeros(n)
        least = np.full(n, np.inf)
        if seeds:
            values, mins, _ = _seed_impacts(
                impact, weights, seeds, opts.debtrank, opts, zero_impact=harmless
            )
            single[hurts], least[hurts] = values, mins
        upper = single
        if opts.debtrank != "fixed_point" and seeds:
            upper = np.zeros(n)
            upper[hurts], _, _ = _seed_impacts(impact, weights, seeds, "fixed_point", opts)
            upper = np.maximum(upper, single)
        t1 = time.perf_counter()
        h0 = net.initial_distress() if opts.intrinsic else np.zeros(n)
        run = debtrank(
            impact, h0, method=opts.debtrank, max_rounds=opts.max_rounds, tolerance=opts.tolerance
        )
        t2 = time.perf_counter()
        loss = net.intrinsic_loss if opts.intrinsic else np.zeros(n)
        clearing = eisenberg_noe(
            net.liabilities,
            net.capital + np.maximum(-loss, 0.0),
            outside=np.maximum(loss, 0.0),
        )
        t3 = time.perf_counter()
        c2 = cover2(impact, weights, single, upper, least, opts)
        t4 = time.perf_counter()
        scenarios[name] = ScenarioSystemic(
            name=name,
            quantile=quantile,
            network=net,
            debtrank_impact=single,
            debtrank_upper=upper,
            debtrank_initial=h0,
            debtrank_distress=run.distress,
            debtrank_rounds=run.rounds,
            debtrank_converged=run.converged,
            weights=weights,
            clearing=clearing,
            cover2=c2,
        )
        timings.update(
            {
                f"{name}.debtrank_impacts": t1 - t0,
                f"{name}.debtrank_scenario": t2 - t1,
                f"{name}.eisenberg_noe": t3 - t2,
                f"{name}.cover2": t4 - t3,
            }
        )
    timings["total"] = time.perf_counter() - started
    return SystemicResult(
        agent_ids=list(market.agent_ids),
        options=opts,
        capital_source="given" if opts.capital is not None else "expected_cost",
        scenarios=scenarios,
        timings=timings,
    )
