"""Tail risk measures (VaR and CVaR) over loss samples, vectorised over agents.

Losses follow the convention "larger = worse". For confidence α and N sorted losses
L(1) ≤ … ≤ L(N), with k = ⌈αN⌉:

    VaR  = L(k)
    CVaR = (Σ_{i>k} L(i) + (k − αN)·L(k)) / (N(1 − α))      (Acerbi–Tasche)

When αN is whole this is the mean of the worst N(1 − α) losses, the paper's Eqs. 5–6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

# Guards ⌈αN⌉ against α·N landing a hair above an integer (0.95 · 100 = 95.00000000000001).
_CEIL_GUARD = 1e-9


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (got {confidence})")
    return confidence


def tail_index(n: int, confidence: float) -> int:
    """Return k = ⌈αN⌉ (1-based rank of the VaR order statistic)."""
    confidence = _check_confidence(confidence)
    if n < 1:
        raise ValueError("losses must hold at least one sample")
    return min(n, max(1, math.ceil(confidence * n - _CEIL_GUARD)))


def _as_samples(losses: ArrayLike) -> np.ndarray:
    arr = np.asarray(losses, dtype=float)
    if arr.ndim == 0:
        raise ValueError("losses must be a 1-D or 2-D array of samples")
    if arr.shape[-1] < 1:
        raise ValueError("losses must hold at least one sample")
    return arr


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
    return float(value) if value.ndim == 0 else value


def var(losses: ArrayLike, confidence: float = 0.95) -> float | np.ndarray:
    """Value at risk: the k-th smallest loss, k = ⌈αN⌉, along the last axis."""
    arr = _as_samples(losses)
    k = tail_index(arr.shape[-1], confidence)
    return _scalar_or_array(np.partition(arr, k - 1, axis=-1)[..., k - 1])


def cvar(losses: ArrayLike, confidence: float = 0.95) -> float | np.ndarray:
    """Conditional value at risk (expected shortfall), Acerbi–Tasche form, along the last axis."""
    arr = _as_samples(losses)
    confidence = _check_confidence(confidence)
    n = arr.shape[-1]
    k = tail_index(n, confidence)
    part = np.partition(arr, k - 1, axis=-1)
    l_k = part[..., k - 1]
    tail = part[..., k:].sum(axis=-1)
    return _scalar_or_array((tail + (k - confidence * n) * l_k) / (n * (1.0 - confidence)))


def tail_size(n: int, confidence: float) -> int:
    """Number of largest losses (L(k) … L(N)) that VaR and CVaR depend on."""
    return n - tail_index(n, confidence) + 1


def _needs(n: int, confidence: float, conv: RiskConvention) -> tuple[set[int], set[int]]:
    """Ranks (1-based) and top counts that `var_cvar_from_order` will ask for."""
    k = tail_index(n, confidence)
    ranks, tops = set(), set()
    if conv.quantile == "inverse_cdf":
        ranks.add(k)
    else:
        j, frac = _type7(n, confidence)
        ranks.add(j)
        if j < n and frac > 0:
            ranks.add(j + 1)
    if conv.cvar == "acerbi_tasche":
        ranks.add(k)
        tops.add(n - k)
    else:
        tops.add(_worst_count(n, confidence))
    return ranks, tops


def var_cvar_from_tail(
    tail: np.ndarray,
    n: int,
    confidence: float,
    risk_convention: RiskConvention | str | None = None,
    *,
    check_size: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """VaR and CVaR from the largest losses per row (any order), out of `n` per row.

    `tail` holds at least `risk_convention.tail_size(n)` of each row's largest losses (exactly
    that many when `check_size`). Lets the network engine stream scenarios in blocks and keep
    only the tail; one partition reads every order statistic the convention needs.
    """
    conv = convention(risk_convention)
    confidence = _check_confidence(confidence)
    tail = np.atleast_2d(np.asarray(tail, dtype=float))
    s = tail.shape[-1]
    need = conv.tail_size(n, confidence)
    if (check_size and s != need) or s < need or s > n:
        raise ValueError(f"tail must hold {need} losses per row (got {s})")
    ranks, tops = _needs(n, confidence, conv)
    offset = n - s  # rank r is position r − offset − 1 of the sorted tail
    kth = sorted({r - offset - 1 for r in ranks} | {s - m for m in tops if 0 < m < s})
    part = np.partition(tail, kth, axis=-1) if kth else tail

    def order_stat(rank: int) -> np.ndarray:
        return part[..., rank - offset - 1]

    def top_sum(m: int) -> np.ndarray:
        return part[..., s - m :].sum(axis=-1) if m else np.zeros(part.shape[:-1])

    return var_cvar_from_order(order_stat, top_sum, n, confidence, conv)


def merge_tail(
    tail: np.ndarray | None, chunk: np.ndarray, size: int, *, overwrite: bool = False
) -> np.ndarray:
    """Keep the `size` largest values per row of `tail` ∪ `chunk` (rows = agents).

    With `overwrite` the chunk may be reordered in place, saving a copy of a large block.
    """
    if tail is None:
        combined = chunk if overwrite else chunk.copy()
    else:
        combined = np.concatenate([tail, chunk], axis=1)
    width = combined.shape[1]
    if width <= size:
        return combined
    combined.partition(width - size, axis=1)
    return combined[:, width - size :].copy()


def var_cvar_weighted(
    values: ArrayLike,
    counts: ArrayLike,
    confidence: float = 0.95,
    risk_convention: RiskConvention | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """VaR and CVaR of samples given as distinct values with multiplicities, along the last axis.

    Row r holds the losses values[r, j], each occurring counts[j] times (the same counts for every
    row: the scenarios that share a PLD). Identical to `var_cvar` on the expanded sample, at
    the cost of the distinct values only: with single-week bootstrap scenarios there are at most
    as many as weeks in the history (52), whatever the number of scenarios.
    """
    conv = convention(risk_convention)
    confidence = _check_confidence(confidence)
    vals = np.atleast_2d(np.asarray(values, dtype=float))
    weights = np.asarray(counts, dtype=np.int64)
    if weights.ndim != 1 or weights.size != vals.shape[-1] or weights.size == 0:
        raise ValueError("counts must be 1-D with one count per value column")
    if np.any(weights < 1):
        raise ValueError("counts must be ≥ 1")
    n = int(weights.sum())
    order = np.argsort(vals, axis=-1, kind="stable")
    ordered = np.take_along_axis(vals, order, axis=-1)
    w = weights[order]
    cumulative = np.cumsum(w, axis=-1)

    def order_stat(rank: int) -> np.ndarray:
        at = (cumulative < rank).sum(axis=-1)  # the group holding that rank
        return np.take_along_axis(ordered, at[:, None], axis=-1)[:, 0]

    def top_sum(m: int) -> np.ndarray:
        # Ranks above n − m, group by group.
        above = cumulative - np.maximum(cumulative - w, n - m)
        return (ordered * np.maximum(above, 0)).sum(axis=-1)

    return var_cvar_from_order(order_stat, top_sum, n, confidence, conv)


# --- Conventions: which quantile is the VaR, which mean is the CVaR ------------------------------

QUANTILE_METHODS = ("inverse_cdf", "type7")
CVAR_METHODS = ("acerbi_tasche", "worst_mean")


@dataclass(frozen=True)
class RiskConvention:
    """How VaR and CVaR are read off N sorted losses L(1) ≤ … ≤ L(N) at confidence α.

    quantile: "inverse_cdf" (default) VaR = L(k), k = ⌈αN⌉ (R's quantile type 1);
              "type7" VaR = L(j) + (h − j)·(L(j+1) − L(j)), h = (N − 1)α + 1, j = ⌊h⌋ (R's default
              `quantile(x, α)`, what the paper's R code gives).
    cvar:     "acerbi_tasche" (default) (Σ_{i>k} L(i) + (k − αN)·L(k)) / (N(1 − α));
              "worst_mean" the mean of the m = max(1, ⌊N(1 − α)⌋) worst losses (the paper's Eq. 5
              read literally). Both equal the mean of the worst N(1 − α) when that is whole.
    `PAPER_R` = type 7 + worst mean. Every convention is positively homogeneous (scaling the
    losses by c > 0 scales VaR and CVaR by c), which the engine uses for its R$ figures.
    """

    quantile: str = "inverse_cdf"
    cvar: str = "acerbi_tasche"

    def __post_init__(self) -> None:
        if self.quantile not in QUANTILE_METHODS:
            raise ValueError(f"quantile must be one of {', '.join(QUANTILE_METHODS)}")
        if self.cvar not in CVAR_METHODS:
            raise ValueError(f"cvar must be one of {', '.join(CVAR_METHODS)}")

    def first_rank(self, n: int, confidence: float) -> int:
        """Lowest rank (1-based) of the sorted losses that VaR and CVaR read."""
        rank = tail_index(n, confidence)
        if self.quantile == "type7":
            rank = min(rank, _type7(n, confidence)[0])
        return rank

    def tail_size(self, n: int, confidence: float) -> int:
        return n - self.first_rank(n, confidence) + 1

    def to_dict(self) -> dict[str, str]:
        return {"quantile": self.quantile, "cvar": self.cvar}


DEFAULT_CONVENTION = RiskConvention()
PAPER_R = RiskConvention("type7", "worst_mean")


def convention(value: RiskConvention | str | None) -> RiskConvention:
    """A RiskConvention from itself, None (the default) or a name ("default", "paper_r")."""
    if value is None or value == "default":
        return DEFAULT_CONVENTION
    if isinstance(value, RiskConvention):
        return value
    if value == "paper_r":
        return PAPER_R
    raise ValueError("risk_convention must be a RiskConvention, 'default' or 'paper_r'")


def _type7(n: int, confidence: float) -> tuple[int, float]:
    h = (n - 1) * confidence + 1.0
    j = min(n, max(1, math.floor(h + _CEIL_GUARD)))
    return j, max(0.0, h - j)


def _worst_count(n: int, confidence: float) -> int:
    return max(1, math.floor(n * (1.0 - confidence) + _CEIL_GUARD))


def var_cvar_from_order(
    order_stat: Any, top_sum: Any, n: int, confidence: float, conv: RiskConvention
) -> tuple[np.ndarray, np.ndarray]:
    """VaR and CVaR given `order_stat(rank)` (L(rank) per row) and `top_sum(m)` (sum of the m
    largest per row): one definition of the conventions for every path of the engine."""
    confidence = _check_confidence(confidence)
    k = tail_index(n, confidence)
    if conv.quantile == "inverse_cdf":
        var_ = order_stat(k)
    else:
        j, frac = _type7(n, confidence)
        low = order_stat(j)
        var_ = low if j >= n or frac == 0 else low + frac * (order_stat(j + 1) - low)
    if conv.cvar == "acerbi_tasche":
        l_k = var_ if conv.quantile == "inverse_cdf" else order_stat(k)
        cvar_ = (top_sum(n - k) + (k - confidence * n) * l_k) / (n * (1.0 - confidence))
    else:
        m = _worst_count(n, confidence)
        cvar_ = top_sum(m) / m
    return var_, cvar_


def var_cvar(
    losses: ArrayLike, confidence: float = 0.95, risk_convention: RiskConvention | str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """VaR and CVaR along the last axis under a convention (see RiskConvention)."""
    arr = np.atleast_2d(_as_samples(losses))
    n = arr.shape[-1]
    return var_cvar_from_tail(arr, n, confidence, risk_convention, check_size=False)


# Leading columns sampled per row to spot one value filling most of it (see _select_largest).
_REPEAT_SAMPLE = 128


def _select_largest(values: np.ndarray, cut: int) -> None:
    """Reorder each row of `values` in place so that slots `cut:` hold its largest values.

    Mostly `ndarray.partition`, except for rows where one value fills most of the row (the
    zeros of scenarios in which a buyer receives no propagated loss): NumPy's partition slows
    down up to ~15× when most of a row repeats a value below the cut, and a sort of such a row
    is as fast as a partition of distinct values. The rows are told apart by a sorted sample of
    their leading columns (equal at its 30 % and 70 % points: one value fills ≥ 40 % of it);
    either way the result is exact, only the time depends on the guess.
    """
    k = min(values.shape[1], _REPEAT_SAMPLE)
    if k < 16:
        values.partition(cut, axis=1)
        return
    sample = np.sort(values[:, :k], axis=1)
    repeated = sample[:, (3 * k) // 10] == sample[:, (7 * k) // 10]
    if not repeated.any():
        values.partition(cut, axis=1)
    elif repeated.all():
        values.sort(axis=1)
    else:
        heavy = values[repeated]
        heavy.sort(axis=1)
        values[repeated] = heavy
        light = values[~repeated]
        light.partition(cut, axis=1)
        values[~repeated] = light


class TailKeeper:
    """The `size` largest values of each row over a stream of column blocks, kept incrementally.

    Every row holds the same number of values, packed at the top of a buffer of `size + width`
    slots, width = max(block, size): blocks are copied in whole below them, and when the
    buffer is full, one partition of it leaves each row's `size` largest on top and frees the
    `width` slots below. That is (size + width) / width ≤ 2 partitioned cells a value,
    and still faster than a running threshold that drops most values with one comparison:
    gathering the few that pass, row by row, costs NumPy more than partitioning them all
    (measured on the network engine's losses). The multiset kept is exact, ties included;
    `cells_partitioned` counts the work, for the benchmark.
    """

    def __init__(self, rows: int, size: int, block: int) -> None:
        if size < 1:
            raise ValueError("size must be ≥ 1")
        self.rows = int(rows)
        self.size = int(size)
        self.block = max(int(block), 1)
        self.width = max(self.block, self.size)
        self.capacity = self.size + self.width
        # Values held per row, in the last `held` slots of the buffer (allocated when first
        # needed, only `size` wide while a single wide block is all there is).
        self.held = 0
        self.buffer: np.ndarray | None = None
        self.seen = 0
        self.cells_partitioned = 0

    def add(self, block: np.ndarray, *, overwrite: bool = False) -> None:
        """Take in a block of columns. With `overwrite` the block may be reordered in place:
        a first block of at least `size` columns is then partitioned where it lies, no copy."""
        block = np.asarray(block, dtype=float)
        c = block.shape[1]
        if not c or not self.rows:
            self.seen += c
            return
        if overwrite and not self.held and c >= self.size and block.flags.writeable:
            cut = c - self.size
            if cut:
                _select_largest(block, cut)
                self.cells_partitioned += block.size
            top = block[:, cut:]
            # NumPy orders NaN above every number, so a row holding one has it in its top.
            if np.isnan(top).any():
                raise ValueError("losses must not be NaN")
            self.buffer = top.copy()
            self.held = self.size
            self.seen += c
            return
        if np.isnan(np.max(block)):  # it would sit in the tail, above every number
            raise ValueError("losses must not be NaN")
        buffer = self._full_buffer()
        start = 0
        while start < c:  # fill the free slots exactly, so each compaction frees `width`
            if self.held == self.capacity:
                self._compact()
            w = min(self.capacity - self.held, c - start)
            low = self.capacity - self.held
            buffer[:, low - w : low] = block[:, start : start + w]
            self.held += w
            start += w
        self.seen += c

    def _full_buffer(self) -> np.ndarray:
        """The buffer at its full `capacity`, with the values held so far at its top."""
        buffer = self.buffer
        if buffer is None or buffer.shape[1] < self.capacity:
            # Nothing below the held values is ever read, so no fill.
            self.buffer = np.empty((self.rows, self.capacity))
            if self.held:
                self.buffer[:, self.capacity - self.held :] = buffer[
                    :, buffer.shape[1] - self.held :
                ]
        return self.buffer

    def _compact(self) -> None:
        """Leave each row's `size` largest in the top `size` slots, freeing the rest."""
        if self.buffer is None or self.held <= self.size:
            return
        held = self.buffer[:, self.buffer.shape[1] - self.held :]
        _select_largest(held, self.held - self.size)
        self.cells_partitioned += held.size
        self.held = self.size

    def tail(self) -> np.ndarray:
        """The `size` largest values of each row (unordered)."""
        if self.seen < self.size:
            raise ValueError(f"only {self.seen} values seen per row, fewer than size {self.size}")
        if self.buffer is None:
            return np.empty((self.rows, self.size))  # no rows
        self._compact()
        return self.buffer[:, self.buffer.shape[1] - self.size :].copy()
