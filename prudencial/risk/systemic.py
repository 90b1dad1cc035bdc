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
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import breadth_first_order, connected_components

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


# --- many seeds at once ---------------------------------------------------------------------
#
# An agent's impact needs one DebtRank run per agent: n runs over a network of nnz obligations.
# The dense runs above cost rounds × nnz × n; what follows gives the same figures (to rounding
# in the sums) at a fraction of it (timings: bench/results/systemic.md):
#
# - Battiston: an agent passes distress once, in the round after it is first hit, so a run is
#   a breadth-first search whose layers carry values. Only agents that both owe and are owed
#   ("relays") can pass distress on after round 1, so the rounds run over relays only; who
#   owes nobody is read once at the end, from every relay's passed value. Rounds whose
#   frontier is small go sparse, the others dense over the relays.
# - Fixed point: h = min(1, h0 + Wᵀh) has exactly one solution on the agents a seed reaches
#   (see _FixedPoint), so a run may start anywhere below it; the greatest fixed point T of the
#   unshocked map on what the largest strongly connected component reaches lies below every
#   run from an agent that reaches that component, and *is* the run of any member the
#   component saturates (T = 1 there). Cover-2 needs the fixed-point impact of its K + 1
#   largest only: cheap bounds for every agent (below: T; above: T plus the linear response of
#   the unsaturated agents) pick the few that need a run.

# A round goes dense when its sparse work passes this share of the dense round's.
_SPARSE_FLOPS = 0.02
# What the batches in flight may hold, about half the L3 of the machines this runs on.
_CACHE_BYTES = 16 << 20
# Batches of seeds run on this many threads (NumPy and SciPy's sparse products release the GIL).
_WORKERS = min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _spmm(a: sp.csr_matrix, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = a @ x (float64, C-contiguous x and out) without a fresh output array."""
    if _csr_matvecs is None or a.data.dtype != np.float64:  # pragma: no cover
        np.copyto(out, a @ x)
        return out
    out.fill(0.0)
    _csr_matvecs(
        a.shape[0], a.shape[1], x.shape[1], a.indptr, a.indices, a.data, x.ravel(), out.ravel()
    )
    return out


def _kernel_works() -> bool:
    """SciPy's csr × dense kernel (private, so checked once against `@`; SciPy is pinned)."""
    a = sp.csr_matrix(np.array([[0.0, 2.0], [3.0, 0.5]]))
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    try:
        return bool(np.array_equal(_spmm(a, x, np.full((2, 3), np.nan)), a @ x))
    except Exception:  # pragma: no cover - another SciPy
        return False


try:  # out = a @ x into a reused buffer
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover
    _csr_matvecs = None
if _csr_matvecs is not None and not _kernel_works():  # pragma: no cover
    _csr_matvecs = None


class _Battiston:
    """Battiston DebtRank of many seed sets (each member fails: h0 = 1), batched."""

    def __init__(self, impact: sp.csr_matrix, weights: np.ndarray, batch_cells: int):
        w = sp.csr_matrix(impact, dtype=float)
        w.sum_duplicates()
        w.sort_indices()
        n = w.shape[0]
        self.w = w
        self.n = n
        self.v = weights
        out = np.diff(w.indptr)
        indeg = np.bincount(w.indices, minlength=n)
        relay = np.flatnonzero((out > 0) & (indeg > 0))
        self.relay = relay
        self.pos = np.full(n, -1, dtype=np.int64)
        self.pos[relay] = np.arange(relay.size)
        wr = w[relay]  # relays' rows: what each relay passes to whom
        self.rr = wr[:, relay].T.tocsr()  # rr[k, j] = W[relay j, relay k]
        self.rr.sort_indices()
        self.out = wr[:, relay].tocsr()  # out[j, k] = W[relay j, relay k]
        self.out.sort_indices()
        self.rr_out = np.diff(self.out.indptr)  # per relay: edges into relays
        # h_k = min(1, Σ_j W[j, k]·passed_j): no cap needed where the in-weights sum to ≤ 1.
        in_weight = np.asarray(w.sum(axis=0)).ravel()
        self.linear = in_weight <= 1.0
        self.u = w[:, self.linear] @ weights[self.linear]  # per source: Σ_k linear v_k W[j, k]
        cap = np.flatnonzero(~self.linear)
        self.cap = cap
        self.cpos = np.full(n, -1, dtype=np.int64)
        self.cpos[cap] = np.arange(cap.size)
        self.rc = wr[:, cap].T.tocsr()  # rc[k, j] = W[relay j, capped k]
        self.vcap = weights[cap]
        self.into = wr.tocsc()  # column s: what relays pass to s
        self.lock = threading.Lock()
        self.spaces: dict[int, list[dict[str, np.ndarray]]] = {}
        # Columns per batch: few enough that the batches in flight keep their arrays in cache
        # (the rounds are memory-bound; a thread's batch is ~34·relays + 8·capped bytes a
        # column), within batch_cells.
        per_column = 34 * relay.size + 8 * cap.size + 1
        fit = _CACHE_BYTES // (per_column * max(_WORKERS, 1))
        room = batch_cells // max(relay.size, cap.size, 1)
        self.batch = int(max(1, min(max(fit, 8), room, 4096)))

    def impacts(self, groups: Sequence[Sequence[int]]) -> np.ndarray:
        """Σ_{k ∉ S} v_k h_k(T) per seed set S (the dense `_seed_impacts` figure)."""
        out = np.zeros(len(groups))
        starts = range(0, len(groups), self.batch)
        chunks = [groups[start : start + self.batch] for start in starts]
        if _WORKERS > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(_WORKERS) as pool:
                results = list(pool.map(self._batch, chunks))
        else:
            results = [self._batch(chunk) for chunk in chunks]
        for start, got in zip(starts, results, strict=True):
            out[start : start + got.size] = got
        return np.maximum(out, 0.0)

    def _sparse_round(self, rows, cols, vals, passed):
        """One round from a small frontier (relay rows, seed columns, passed values): what the
        agents not reached yet receive, summed per agent and column, capped at 1."""
        out = self.out
        start = out.indptr[rows]
        deg = out.indptr[rows + 1] - start
        total = int(deg.sum())
        if total == 0:
            return rows[:0], cols[:0], vals[:0]
        src = np.repeat(np.arange(rows.size), deg)
        at = np.repeat(start - np.cumsum(deg) + deg, deg) + np.arange(total)
        to, col = out.indices[at], cols[src]
        fresh = passed[to, col] == 0
        key = to[fresh] * passed.shape[1] + col[fresh]
        got = out.data[at[fresh]] * vals[src[fresh]]
        key, where = np.unique(key, return_inverse=True)
        got = np.bincount(where, got, minlength=key.size)
        keep = got > 0
        key, got = key[keep], np.minimum(got[keep], 1.0)
        rows, cols = np.divmod(key, passed.shape[1])
        passed[rows, cols] = got
        return rows, cols, got

    def _space(self, b: int) -> dict[str, np.ndarray]:
        """A batch's arrays, reused from batch to batch: fresh ones cost a page fault per 4 KiB
        touched, which on a virtual machine took longer than the products themselves."""
        with self.lock:
            free = self.spaces.get(b)
            if free:
                return free.pop()
        nr, nc = self.relay.size, self.cap.size
        space = {k: np.empty((nr, b)) for k in ("passed", "dense", "push", "open")}
        space["flag"] = np.empty((nr, b), bool)
        space["spare"] = np.empty((nr, b), bool)
        space["got"] = np.empty((nc, b))
        return space

    def _release(self, b: int, space: dict[str, np.ndarray]) -> None:
        with self.lock:
            self.spaces.setdefault(b, []).append(space)

    def _batch(self, chunk: Sequence[Sequence[int]]) -> np.ndarray:
        b = len(chunk)
        space = self._space(b)
        try:
            return self._run_batch(chunk, space)
        finally:
            self._release(b, space)

    def _run_batch(self, chunk: Sequence[Sequence[int]], space: dict[str, np.ndarray]):
        n, nr, b = self.n, self.relay.size, len(chunk)
        sizes = np.fromiter((len(g) for g in chunk), dtype=np.int64, count=b)
        members = np.fromiter((m for g in chunk for m in g), dtype=np.int64, count=int(sizes.sum()))
        col_of = np.repeat(np.arange(b), sizes)
        # Round 1: the seeds' own push, one column per seed set.
        pick = sp.csr_matrix((np.ones(members.size), (col_of, members)), shape=(b, n))
        first = (pick @ self.w).tocoo()  # b × n, summed over each set's members
        passed = space["passed"]  # value each relay passed (0: not reached)
        passed.fill(0.0)
        mrel = self.pos[members]
        seeded = mrel >= 0
        passed[mrel[seeded], col_of[seeded]] = 1.0  # reached in round 0 (removed below)
        rel = self.pos[first.col]
        keep = rel >= 0
        rows, cols, vals = rel[keep], first.row[keep], first.data[keep]
        keep = (vals > 0) & (passed[rows, cols] == 0)
        rows, cols, vals = rows[keep], cols[keep], np.minimum(vals[keep], 1.0)
        passed[rows, cols] = vals
        rr = self.rr
        limit = _SPARSE_FLOPS * rr.nnz * b
        per_row = rr.nnz / max(nr, 1)
        dense = None
        push = None
        open_ = space["open"]  # 1.0 where not reached yet (dense rounds); np.minimum is slow
        flag, spare = space["flag"], space["spare"]
        while True:
            if dense is None:
                if rows.size == 0:
                    break
                if self.rr_out[rows].sum() > limit:
                    dense = space["dense"] if push is not space["dense"] else space["push"]
                    dense.fill(0.0)
                    dense[rows, cols] = vals
                    np.equal(passed, 0.0, out=flag)
                    np.copyto(open_, flag)
            if dense is None:
                rows, cols, vals = self._sparse_round(rows, cols, vals, passed)
                continue
            push = space["push"] if dense is space["dense"] else space["dense"]
            _spmm(rr, dense, push)
            np.multiply(push, open_, out=push)  # what reached agents get is not passed on
            np.greater(push, 1.0, out=flag)
            np.copyto(push, 1.0, where=flag)
            np.add(passed, push, out=passed)
            np.greater(push, 0.0, out=flag)
            hit = np.count_nonzero(flag)
            if hit == 0:
                break
            np.multiply(open_, np.logical_not(flag, out=spare), out=open_)
            if hit * per_row <= limit:
                rows, cols = np.nonzero(flag)
                vals = push[rows, cols]
                dense = None
            else:
                dense = push
        passed[mrel[seeded], col_of[seeded]] = 0.0  # the seeds' push is `first`
        # h_k = min(1, what k received): linear agents through u, capped ones summed.
        total = self.u[self.relay] @ passed
        total += np.bincount(col_of, self.u[members], minlength=b)
        got = _spmm(self.rc, passed, space["got"])
        cap = self.cpos[first.col]
        keep = cap >= 0
        got[cap[keep], first.row[keep]] += first.data[keep]
        np.minimum(got, 1.0, out=got)
        total += self.vcap @ got
        # Minus the seeds' own terms (their h is 1 and does not count).
        into = self.into
        starts, counts = into.indptr[members], np.diff(into.indptr)[members]
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        owner = np.repeat(np.arange(members.size), counts)
        received = np.zeros(members.size)
        np.add.at(
            received, owner, into.data[offsets] * passed[into.indices[offsets], col_of[owner]]
        )
        received += np.asarray(first.tocsr()[col_of, members]).ravel()
        own = np.where(self.linear[members], received, np.minimum(received, 1.0))
        return total - np.bincount(col_of, self.v[members] * own, minlength=b)


def _settled(moved: np.ndarray, last: np.ndarray, tol: float) -> np.ndarray:
    """Whether an iteration whose last two moves were `last` then `moved` is within `tol` of
    its limit: the move is ≤ tol and so is what is left of a geometric tail at the observed
    rate (a run that moves little but slowly is not done: its error is move·r/(1 − r), which
    stopping at move ≤ tol alone let grow to a few 1e-12)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(last > 0, moved / last, np.nan)
        tail = moved * rate / (1.0 - rate)
    return (moved == 0) | ((moved <= tol) & (rate < 1.0) & (tail <= tol))


class _FixedPoint:
    """Fixed-point DebtRank of seed sets: exact runs where asked, bounds for every single seed.

    One solution: let R be what a seed set S reaches and f(x) = min(1, e_S + Wᵀx) on R. If x ≥ y
    were two fixed points with y ≠ x, take t = min_R y/x < 1 (y > 0 on R); at a node i where
    y_i = t·x_i, y_i = f(y)_i ≥ f(t·x)_i ≥ t·x_i, with equality only if i ∉ S, i is not capped
    by the min and every predecessor j of i has y_j = t·x_j; following predecessors back along a
    path from S reaches a member of S, where f(t·x) = 1 > t·x: a contradiction. So the fixed
    point on R is unique, and iterating f from any start in [0, 1]^R (zero outside R) reaches
    it, between the runs from 0 and from 1.

    Template: T = the greatest fixed point of the unshocked map min(1, Wᵀx) on what the largest
    strongly connected component G reaches (iterated down from 1). For S that reaches G, T
    (zero elsewhere) is below S's fixed point (f_S(T) ≥ T), so max(e_S, T) is a valid start
    whose saturated agents stay saturated; if every member has T = 1 (members of G that G's own
    distress saturates), T itself is S's fixed point. Bounds for a single seed s, with U the
    agents where T < 1 and y = (I − W_UU)⁻¹ v_U (the linear response, no cap):
    v·T − v_s·T_s ≤ R_fp(s) ≤ that + (1 − T_s)·W[s, U]·y, and for s that does not reach G,
    R_fp(s) ≤ W[s, N]·y_N on the agents N that do not reach G.
    """

    def __init__(self, impact: sp.csr_matrix, weights: np.ndarray, options: SystemicOptions):
        w = sp.csr_matrix(impact, dtype=float)
        n = w.shape[0]
        self.w, self.n, self.v = w, n, weights
        self.a = w.T.tocsr()
        self.indeg = np.diff(self.a.indptr)
        # Runs stop when what is left of them is below 1% of the tolerance: the dense runs
        # stopped at a move ≤ tolerance over a whole batch, which left each a little closer.
        self.tol = float(options.tolerance) * 0.01
        self.max_rounds = int(options.max_rounds)
        self.batch_cells = int(options.batch_cells)
        self.template = np.zeros(n)
        self.above = np.zeros(n, bool)  # reaches G (so T is a valid start)
        _, labels = connected_components(w, directed=True, connection="strong")
        sizes = np.bincount(labels)
        big = int(np.argmax(sizes)) if sizes.size else 0
        if sizes.size and sizes[big] >= 2:
            g0 = int(np.flatnonzero(labels == big)[0])
            reach = breadth_first_order(w, g0, directed=True, return_predecessors=False)
            x = np.zeros(n)
            x[reach] = 1.0
            last = np.array([np.nan])
            for _ in range(self.max_rounds):
                nxt = np.minimum(1.0, self.a @ x)
                moved = np.array([np.max(np.abs(nxt - x), initial=0.0)])
                x = nxt
                if _settled(moved, last, self.tol)[0]:
                    above = breadth_first_order(
                        self.a, g0, directed=True, return_predecessors=False
                    )
                    self.template = x
                    self.above[above] = True
                    break
                last = moved
        t = self.template
        self.saturated = t >= 1.0
        self.open = np.flatnonzero(~self.saturated)  # U
        self.below = np.flatnonzero(~self.above)  # N
        self.base = float(weights @ t)
        self.systems: dict[bool, tuple] = {}

    # bounds --------------------------------------------------------------------------------

    def _response(self, nodes: np.ndarray) -> tuple[np.ndarray, float]:
        """y = (I − W_nodes)⁻¹ v_nodes (Neumann, from below) and a slack covering its error;
        (zeros, inf) where it does not converge (a cycle of gain ≥ 1 among `nodes`)."""
        sub = self.w[nodes][:, nodes].tocsr()
        base = self.v[nodes]
        y = base.copy()
        last = math.inf
        for _ in range(self.max_rounds):
            nxt = base + sub @ y
            moved = float(np.max(nxt - y, initial=0.0))
            y = nxt
            scale = max(float(np.max(y, initial=0.0)), 1e-300)
            if moved <= 1e-15 * scale:
                rate = moved / last if last > 0 and math.isfinite(last) else 0.0
                if rate < 0.999:
                    return y, moved * (1.0 + rate / (1.0 - rate)) + 1e-300
                break
            last = moved
        return np.zeros(len(nodes)), math.inf

    def bounds(self, seeds: np.ndarray, slack: float) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the fixed-point impact of each single seed."""
        v, t, w = self.v, self.template, self.w
        lower = np.zeros(seeds.size)
        upper = np.full(seeds.size, math.inf)
        top = self.above[seeds]
        if top.any():
            s = seeds[top]
            lower[top] = self.base - v[s] * t[s]
            y, err = self._response(self.open)
            if math.isfinite(err):
                reply = w[s][:, self.open] @ y
                reach = np.asarray(w[s][:, self.open].sum(axis=1)).ravel()
                upper[top] = lower[top] + (1.0 - t[s]) * (reply + reach * err) + slack
        if (~top).any() and self.below.size:
            s = seeds[~top]
            y, err = self._response(self.below)
            if math.isfinite(err):
                sub = w[s][:, self.below]
                reach = np.asarray(sub.sum(axis=1)).ravel()
                upper[~top] = sub @ y + reach * err + slack
        lower = np.maximum(lower - slack, 0.0)
        return lower, upper

    # exact runs ----------------------------------------------------------------------------

    def impacts(self, groups: Sequence[Sequence[int]]) -> np.ndarray:
        """Σ_{k ∉ S} v_k h_k of the fixed point of each seed set S (h0 = 1 on S)."""
        out = np.zeros(len(groups))
        warm, cold = [], []
        for j, g in enumerate(groups):
            members = list(g)
            if not self.above[members].any():
                cold.append(j)
            elif self.saturated[members].all():
                out[j] = self.base - float(self.v[members].sum())
            else:
                warm.append(j)
        if warm:
            out[warm] = self._run([groups[j] for j in warm], warm_start=True)
        if cold:
            out[cold] = self._run([groups[j] for j in cold], warm_start=False)
        return np.maximum(out, 0.0)

    def _system(self, warm_start: bool) -> tuple:
        """The rows a run iterates over and their constant input (cached per kind)."""
        if warm_start in self.systems:
            return self.systems[warm_start]
        v = self.v
        nodes = self.open if warm_start else self.below
        # Agents nobody owes stay at their shock (1 for a member, else 0): their push is a
        # constant input, and the rounds run over the others only.
        nodes = nodes[self.indeg[nodes] > 0]
        where = np.full(self.n, -1, dtype=np.int64)
        where[nodes] = np.arange(nodes.size)
        a = self.a[nodes][:, nodes].tocsr()
        if warm_start:
            fixed = self.saturated
            inflow = self.a[nodes][:, np.flatnonzero(fixed)] @ np.ones(int(fixed.sum()))
            start = self.template[nodes]
            outside = float(v[fixed].sum())
        else:
            inflow = np.zeros(nodes.size)
            start = np.zeros(nodes.size)
            outside = 0.0
        self.systems[warm_start] = (nodes, where, a, inflow, start, outside)
        return self.systems[warm_start]

    def _run(self, groups: list, *, warm_start: bool) -> np.ndarray:
        """Iterate h ← min(1, e_S + Wᵀh) on `nodes` (the saturated rest fixed at T) until a
        round moves no entry of a column by more than the tolerance."""
        v = self.v
        nodes, where, a, inflow, start, outside = self._system(warm_start)
        out = np.zeros(len(groups))
        size = max(1, self.batch_cells // max(nodes.size, 1))
        for lo in range(0, len(groups), size):
            chunk = groups[lo : lo + size]
            b = len(chunk)
            members = np.array([m for g in chunk for m in g], dtype=np.int64)
            rows = where[members]
            cols = np.repeat(np.arange(b), [len(g) for g in chunk])
            free = rows >= 0  # members saturated in T stay at 1 outside `nodes`
            shock = np.zeros((nodes.size, b))
            shock[rows[free], cols[free]] = 1.0
            shock += inflow[:, None]
            # Members nobody owes (outside `nodes`, not saturated) push a constant W[m, ·].
            source = ~free & ~(warm_start & self.saturated[members])
            if source.any():
                push = self.w[members[source]].tocoo()
                at = where[push.col]
                keep = at >= 0
                np.add.at(shock, (at[keep], cols[source][push.row[keep]]), push.data[keep])
            h = np.repeat(start[:, None], b, axis=1)
            np.maximum(h, np.minimum(shock, 1.0), out=h)
            live = np.arange(b)
            result = np.zeros(b)
            last = np.full(b, np.nan)
            for _ in range(self.max_rounds):
                nxt = a @ h
                nxt += shock[:, live]
                np.minimum(nxt, 1.0, out=nxt)
                moved = np.max(np.abs(nxt - h), axis=0, initial=0.0)
                h = nxt
                done = _settled(moved, last, self.tol)
                last = moved
                if done.any():
                    result[live[done]] = v[nodes] @ h[:, done]
                    live, h, last = live[~done], h[:, ~done], last[~done]
                if live.size == 0:
                    break
            if live.size:
                result[live] = v[nodes] @ h
            # Minus the members' own 1s (a source member's 1 was never counted).
            counted = np.where(source, 0.0, v[members])
            own = np.bincount(cols, counted, minlength=b)
            out[lo : lo + b] = outside + result - own
        return out


def _top_fixed_point(
    fp: _FixedPoint, seeds: np.ndarray, single: np.ndarray, need: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point impacts of `seeds`, exact for at least the `need` largest (with ties) and for
    every seed the template settles; an upper bound for the rest. Returns (values, exact)."""
    slack = 1e-9
    lower, upper = fp.bounds(seeds, slack)
    lower = np.maximum(lower, single)
    upper = np.maximum(upper, lower)
    values = upper.copy()
    exact = np.zeros(seeds.size, bool)
    settled = fp.above[seeds] & fp.saturated[seeds]
    if settled.any():
        values[settled] = np.maximum(fp.base - fp.v[seeds[settled]], single[settled])
        exact[settled] = True
    chunk = 64  # doubles each pass: few passes even where the bounds prune nothing
    while not exact.all():
        known = np.where(exact, values, lower)
        theta = -math.inf if seeds.size <= need else float(np.partition(known, -need)[-need])
        todo = np.flatnonzero(~exact & (upper >= theta - slack))
        if todo.size == 0:
            break
        todo = todo[np.argsort(-upper[todo], kind="stable")[:chunk]]
        got = fp.impacts([(int(s),) for s in seeds[todo]])
        values[todo] = np.maximum(got, single[todo])
        exact[todo] = True
        chunk *= 2
    return values, exact


def _runs(impact: sp.csr_matrix, weights: np.ndarray, options: SystemicOptions):
    """Seed sets → Σ_{k ∉ S} v_k h_k(T) with options.debtrank's method."""
    if options.debtrank == "battiston":
        return _Battiston(impact, weights, options.batch_cells).impacts
    return _FixedPoint(impact, weights, options).impacts


def _least_zero(
    impact: sp.csr_matrix,
    weights: np.ndarray,
    hurts: np.ndarray,
    single: np.ndarray,
    options: SystemicOptions,
) -> np.ndarray:
    """For each agent in `hurts`, the least v_k·h_k over agents k that owe nobody (what pairing
    with such a k removes), as the dense `_seed_impacts` gives it — where cover-2 can use it.

    Cover-2 takes the largest single − least. An agent k that owes nobody and is owed nothing,
    or has no capital, has v_k·h_k = 0 in every run, so then least = 0 for all. Otherwise the
    runs go in decreasing order of single and stop once single is below the best gain found;
    the rest get +inf (they cannot be the argmax)."""
    n = impact.shape[0]
    harmless = np.diff(impact.indptr) == 0
    out = np.full(hurts.size, np.inf)
    if not harmless.any() or hurts.size == 0:
        return out
    indeg = np.bincount(impact.indices, minlength=n)
    if np.any(harmless & ((indeg == 0) | (weights == 0))):
        return np.zeros(hurts.size)
    order = np.argsort(-single, kind="stable")
    best, at, chunk = -np.inf, 0, 64
    while at < order.size and single[order[at]] >= best - 10.0**-TIE_DECIMALS:  # ties too
        take = order[at : at + chunk]
        _, mins, _ = _seed_impacts(
            impact, weights, [(int(hurts[i]),) for i in take], options.debtrank, options,
            zero_impact=harmless,
        )  # fmt: skip
        out[take] = mins
        best = max(best, float(np.max(single[take] - mins)))
        at += take.size
    return out


# Figures equal to 12 decimals are ties, broken by agent (or pair) order: which of two equal
# impacts comes first must not depend on the order a sum was taken in.
TIE_DECIMALS = 12


def _tied(values: Any) -> Any:
    return np.round(values, TIE_DECIMALS)


def _first_max(values: np.ndarray) -> int:
    """Index of the first value tied with the largest (see TIE_DECIMALS)."""
    rounded = _tied(np.asarray(values, dtype=float))
    return int(np.flatnonzero(rounded == np.max(rounded))[0])


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
    *,
    runs: Any = None,
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
    `upper` need only be exact for the K + 1 largest: a bound above the K + 1-th elsewhere
    gives the same candidates, `bound` and answer. `runs` (groups → losses, as
    `_Battiston.impacts`) is built from `impact` when not given.
    """
    n = impact.shape[0]
    if n < 2:
        return Cover2(None, 0.0, 0.0, True, True, 0, 0, 0)
    hurts = np.flatnonzero(np.diff(impact.indptr) > 0)
    order = hurts[np.lexsort((hurts, -_tied(upper[hurts])))]
    k = min(options.cover2_candidates, order.size)
    candidates = order[:k]
    best_loss, best_pair = 0.0, None
    # A harmful agent with a harmless partner.
    if order.size < n:
        gain = single[order] - least_zero[order]
        finite = np.isfinite(gain)
        if finite.any():
            j = _first_max(np.where(finite, gain, -np.inf))
            harmless = np.flatnonzero(np.diff(impact.indptr) == 0)
            i = int(order[j])
            partner = _least_partner(impact, weights, i, harmless, options)
            best_loss, best_pair = max(float(gain[j]), 0.0), tuple(sorted((i, partner)))
    pairs = list(itertools.combinations(sorted(int(c) for c in candidates), 2))
    if pairs:
        if runs is None:
            runs = _runs(impact, weights, options)
        losses = runs(pairs)
        j = _first_max(losses)
        if best_pair is None or _tied(losses[j]) > _tied(best_loss):
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


def _neumann(inner: sp.csr_matrix, b: np.ndarray, max_rounds: int = 2_000) -> np.ndarray | None:
    """x = (I − inner)⁻¹ b as Σ innerᵏ b (inner ≥ 0, b ≥ 0: increasing from b), to the last
    bits; None if it does not settle within max_rounds (spectral radius near or at 1), when
    the sparse LU takes over. The defaulters' relative liabilities are sub-stochastic, and
    their spot-market debt makes them strictly so, so this is usually a few dozen products —
    where a sparse LU of thousands of defaulters filled in for tens of seconds."""
    # Spectral radius < 1 iff every strongly connected block leaks: some member sends less
    # than all it pays inside the block (rows of innerᵀ = Π_dd sum to ≤ 1). A closed group
    # that pays only itself is singular: that is the LU's (and its fallback's) case.
    _, label = connected_components(inner, directed=True, connection="strong")
    pay = inner.T.tocoo()  # pay[i, j] = Π_ij, debtor i
    inside = label[pay.row] == label[pay.col]
    kept = np.bincount(pay.row[inside], pay.data[inside], minlength=b.size)
    leak = np.full(int(label.max(initial=-1)) + 1, np.inf)
    np.minimum.at(leak, label, kept)
    if np.any(leak >= 1.0 - 1e-9):
        return None
    x = b.copy()
    for _ in range(max_rounds):
        nxt = b + inner @ x
        if not np.all(np.isfinite(nxt)):
            return None
        moved = float(np.max(np.abs(nxt - x), initial=0.0))
        x = nxt
        if moved <= 1e-16 * max(float(np.max(np.abs(x), initial=0.0)), 1e-300):
            return x
    return None


def _solve_defaulters(pi_t, e, owed, defaulted, p, tol) -> np.ndarray:
    d = np.flatnonzero(defaulted)
    solvent = np.flatnonzero(~defaulted)
    inner = pi_t[d][:, d].tocsr()
    b = e[d] + pi_t[d][:, solvent] @ owed[solvent]
    out = owed.copy()
    solved = _neumann(inner, b)
    if solved is not None:
        out[d] = np.clip(solved, 0.0, owed[d])
        return out
    a = sp.identity(d.size, format="csc") - inner.tocsc()
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
    # Which debtrank_upper entries are the fixed-point impact itself (the others are an upper
    # bound on it, below the cover2_candidates + 1 largest: all cover-2 needs).
    debtrank_upper_exact: np.ndarray | None = field(default=None, repr=False)


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
            top = np.lexsort((np.arange(len(ids)), -_tied(s.debtrank_impact)))[: self.options.top]
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
        seeds = [(int(i),) for i in hurts]
        single = np.zeros(n)
        least = np.full(n, np.inf)
        upper = single
        upper_exact = np.ones(n, bool)
        runs = None
        if seeds:
            fp = _FixedPoint(impact, weights, opts)
            if opts.debtrank == "battiston":
                runs = _Battiston(impact, weights, opts.batch_cells).impacts
                single[hurts] = runs(seeds)
                values, exact = _top_fixed_point(
                    fp, hurts, single[hurts], opts.cover2_candidates + 1
                )
                upper = single.copy()
                upper[hurts] = np.maximum(values, single[hurts])
                upper_exact[hurts] = exact
            else:
                runs = fp.impacts
                single[hurts] = runs(seeds)
                upper = single
            least[hurts] = _least_zero(impact, weights, hurts, single[hurts], opts)
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
        c2 = cover2(impact, weights, single, upper, least, opts, runs=runs)
        t4 = time.perf_counter()
        scenarios[name] = ScenarioSystemic(
            name=name,
            quantile=quantile,
            network=net,
            debtrank_impact=single,
            debtrank_upper=upper,
            debtrank_upper_exact=upper_exact,
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
