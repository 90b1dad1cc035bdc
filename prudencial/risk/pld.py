"""PLD (spot price) history and bootstrap scenarios for the network model.

The paper draws 5,000 bootstrap resamples from the 52 weekly PLDs of 2017 (SE/CO). The package
ships the real weekly SE/CO marginal cost 2016–2020 (see data/README.md for provenance).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
WEEKLY_CMO_CSV = DATA_DIR / "cmo_se_co_weekly_2016_2020.csv"
# Regulatory PLD floor and cap by year (R$/MWh), as confirmed in data/README.md.
PLD_LIMITS: dict[int, tuple[float, float]] = {
    2016: (30.25, 422.56),
    2017: (33.68, 533.82),
    2018: (40.16, 505.18),
    2024: (61.07, 716.80),
    2025: (58.60, 751.73),
    2026: (57.31, 785.27),
}
_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d")


@dataclass(frozen=True)
class PldHistory:
    """A weekly price series; `week_end` is the last day of each operating week, when known."""

    values: np.ndarray
    week_end: tuple[date, ...] | None = None

    def year(self, year: int) -> np.ndarray:
        """Prices of the weeks ending in `year`."""
        if self.week_end is None:
            raise ValueError("this history has no dates; cannot select a year")
        mask = np.array([d.year == year for d in self.week_end])
        return self.values[mask]


def _parse_date(value: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).date()
        except ValueError:
            continue
    return None


def _parse_price(value: str) -> float | None:
    text = value.strip()
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # Brazilian decimal comma
    try:
        return float(text)
    except ValueError:
        return None


def load_pld_csv(path: str | Path, value_column: str | None = None) -> PldHistory:
    """Read a weekly price CSV (comma, semicolon or tab separated, header row).

    The price column is `value_column`, or else the last column; the last column that parses as
    dates gives each week's end (the CCEE/ONS files put start and end dates first).
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(handle, dialect)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: empty file")
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    if value_column is None:
        col = len(header) - 1
    elif value_column in header:
        col = header.index(value_column)
    else:
        raise ValueError(f"{path}: no column {value_column!r} (columns: {', '.join(header)})")
    values = []
    for line, row in enumerate(rows, start=2):
        price = _parse_price(row[col]) if col < len(row) else None
        if price is None:
            raise ValueError(f"{path}, line {line}: column {header[col]!r} is not a number")
        values.append(price)
    if not values:
        raise ValueError(f"{path}: no prices")
    date_cols = [
        c for c in range(len(header)) if c != col and all(_parse_date(r[c]) for r in rows[:5])
    ]
    week_end = None
    if date_cols:
        parsed = [_parse_date(r[date_cols[-1]]) for r in rows]
        if all(parsed):
            week_end = tuple(parsed)  # type: ignore[arg-type]
    return PldHistory(values=np.asarray(values, dtype=float), week_end=week_end)


def weekly_cmo_history() -> PldHistory:
    """The shipped SE/CO weekly mean marginal cost, 2016–2020."""
    return load_pld_csv(WEEKLY_CMO_CSV)


def pld_history(year: int, floor: float | None = None, cap: float | None = None) -> np.ndarray:
    """The shipped weekly SE/CO series of one year as a PLD: the CMO bounded by that year's
    regulatory floor and cap (until 2020 the PLD was the bounded CMO).

    `floor`/`cap` default to PLD_LIMITS; a year whose limits are not on record (2019, 2020)
    needs both given, so an unbounded CMO is never passed off as a PLD.
    """
    history = weekly_cmo_history()
    years = sorted({d.year for d in history.week_end or ()})
    if year not in years:
        raise ValueError(f"year must be one of {', '.join(map(str, years))} (got {year})")
    if floor is None or cap is None:
        if year not in PLD_LIMITS:
            raise ValueError(
                f"the PLD floor and cap of {year} are not on record: pass floor= and cap= "
                "(see prudencial/risk/data/README.md)"
            )
        floor = PLD_LIMITS[year][0] if floor is None else floor
        cap = PLD_LIMITS[year][1] if cap is None else cap
    if not float(floor) < float(cap):
        raise ValueError(f"floor must be < cap (got {floor:g} ≥ {cap:g})")
    return np.clip(history.year(year), float(floor), float(cap))


def pld_history_2017() -> np.ndarray:
    """The paper's series: 52 weeks of 2017 (SE/CO), clipped to that year's floor and cap."""
    return pld_history(2017)


def bootstrap_pld(
    history: np.ndarray | PldHistory,
    n_scenarios: int,
    seed: int | np.random.Generator | None = None,
    *,
    weeks_per_scenario: int = 1,
    block_length: int = 1,
    floor: float | None = None,
    cap: float | None = None,
) -> np.ndarray:
    """Draw PLD scenarios by resampling the history with replacement.

    Each scenario is the mean of `weeks_per_scenario` resampled weeks (1 = the paper's resample of
    single weeks; 4 approximates a monthly settlement). With `block_length` > 1 consecutive weeks
    are drawn in blocks (moving-block bootstrap) to keep the series' persistence. Results are
    clipped to [floor, cap] when given.
    """
    values = history.values if isinstance(history, PldHistory) else np.asarray(history, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("history must hold at least one finite price")
    if n_scenarios < 1:
        raise ValueError(f"n_scenarios must be ≥ 1 (got {n_scenarios})")
    if weeks_per_scenario < 1 or block_length < 1:
        raise ValueError("weeks_per_scenario and block_length must be ≥ 1")
    if block_length > values.size:
        raise ValueError(f"block_length must be ≤ the history length ({values.size})")
    rng = np.random.default_rng(seed)
    n_blocks = -(-weeks_per_scenario // block_length)
    starts = rng.integers(0, values.size - block_length + 1, size=(n_scenarios, n_blocks))
    index = (starts[..., None] + np.arange(block_length)).reshape(n_scenarios, -1)
    scenarios = values[index[:, :weeks_per_scenario]].mean(axis=1)
    if floor is not None or cap is not None:
        scenarios = np.clip(scenarios, floor, cap)
    return scenarios
