"""Tail risk measures (VaR and CVaR) over loss samples, vectorised over agents.

Losses follow the convention "larger = worse". For confidence α and N sorted losses
L(1) ≤ … ≤ L(N), with k = ⌈αN⌉:

    VaR  = L(k)
    CVaR = (Σ_{i>k} L(i) + (k − αN)·L(k)) / (N(1 − α))      (Acerbi–Tasche)

When αN is whole this is the mean of the worst N(1 − α) losses, the paper's Eqs. 5–6.
"""

from __future__ import annotations

import math

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


def var_cvar_from_tail(
    tail: np.ndarray, n: int, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """VaR and CVaR from the `tail_size(n)` largest losses per row (any order).

    Lets the network engine stream scenarios in chunks and keep only the tail.
    """
    confidence = _check_confidence(confidence)
    k = tail_index(n, confidence)
    if tail.shape[-1] != n - k + 1:
        raise ValueError(f"tail must hold {n - k + 1} losses per row (got {tail.shape[-1]})")
    l_k = tail.min(axis=-1)
    above = tail.sum(axis=-1) - l_k
    return l_k, (above + (k - confidence * n) * l_k) / (n * (1.0 - confidence))


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
    values: ArrayLike, counts: ArrayLike, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """VaR and CVaR of samples given as distinct values with multiplicities, along the last axis.

    Row r holds the losses values[r, j], each occurring counts[j] times (the same counts for every
    row: the scenarios that share a PLD). Identical to `var`/`cvar` on the expanded sample, at
    the cost of the distinct values only: with single-week bootstrap scenarios there are at most
    as many as weeks in the history (52), whatever the number of scenarios.
    """
    confidence = _check_confidence(confidence)
    vals = np.atleast_2d(np.asarray(values, dtype=float))
    weights = np.asarray(counts, dtype=np.int64)
    if weights.ndim != 1 or weights.size != vals.shape[-1] or weights.size == 0:
        raise ValueError("counts must be 1-D with one count per value column")
    if np.any(weights < 1):
        raise ValueError("counts must be ≥ 1")
    n = int(weights.sum())
    k = tail_index(n, confidence)
    order = np.argsort(vals, axis=-1, kind="stable")
    ordered = np.take_along_axis(vals, order, axis=-1)
    cumulative = np.cumsum(weights[order], axis=-1)
    # VaR: the value whose group holds rank k; CVaR: the ranks above k, group by group.
    at_k = (cumulative < k).sum(axis=-1)
    var_ = np.take_along_axis(ordered, at_k[:, None], axis=-1)[:, 0]
    above = cumulative - np.maximum(cumulative - weights[order], k)
    tail = (ordered * np.maximum(above, 0)).sum(axis=-1)
    cvar_ = (tail + (k - confidence * n) * var_) / (n * (1.0 - confidence))
    return var_, cvar_
