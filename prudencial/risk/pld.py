"""PLD (spot price) history and bootstrap scenarios for the network model.

The paper draws 5,000 bootstrap resamples from the 52 weekly PLDs of 2017 (SE/CO). The package
ships the real weekly SE/CO marginal cost 2016–2020 (see data/README.md for provenance).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

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


def _bootstrap_index(
    size: int,
    n_scenarios: int,
    rng: np.random.Generator,
    weeks_per_scenario: int,
    block_length: int,
    circular: bool,
) -> np.ndarray:
    """Indices into the history, one row of `weeks_per_scenario` weeks per scenario."""
    n_blocks = -(-weeks_per_scenario // block_length)
    if circular:
        starts = rng.integers(0, size, size=(n_scenarios, n_blocks))
    else:
        starts = rng.integers(0, size - block_length + 1, size=(n_scenarios, n_blocks))
    index = (starts[..., None] + np.arange(block_length)).reshape(n_scenarios, -1)
    index = index[:, :weeks_per_scenario]
    return index % size if circular else index


def _check_bootstrap(values: np.ndarray, n_scenarios: int, weeks: int, block: int) -> None:
    if values.size == 0:
        raise ValueError("history must hold at least one finite price")
    if int(n_scenarios) != n_scenarios or n_scenarios < 1:
        raise ValueError(f"n_scenarios must be an integer ≥ 1 (got {n_scenarios})")
    for name, value in (("weeks_per_scenario", weeks), ("block_length", block)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer ≥ 1 (got {value})")
    if block > values.size:
        raise ValueError(f"block_length must be ≤ the history length ({values.size}) (got {block})")


def bootstrap_pld(
    history: np.ndarray | PldHistory,
    n_scenarios: int,
    seed: int | np.random.Generator | None = None,
    *,
    weeks_per_scenario: int = 1,
    block_length: int = 1,
    floor: float | None = None,
    cap: float | None = None,
    circular: bool = False,
) -> np.ndarray:
    """Draw PLD scenarios by resampling the history with replacement.

    Each scenario is the mean of `weeks_per_scenario` resampled weeks (1 = the paper's resample of
    single weeks; 4 approximates a monthly settlement). With `block_length` > 1 the weeks are drawn
    in runs of consecutive weeks (moving-block bootstrap: a block starts at any week from which
    `block_length` weeks fit; `circular=True` wraps around the end instead, so the last weeks are
    drawn as often as the others), which keeps the series' persistence: a scenario of 4 weeks
    in one block of 4 is the mean of 4 consecutive weeks; blocks beyond the first are drawn
    independently and the surplus of the last block is dropped. Results are clipped to
    [floor, cap] when given. The same seed always gives the same scenarios.
    """
    values = history.values if isinstance(history, PldHistory) else np.asarray(history, float)
    values = values[np.isfinite(values)]
    _check_bootstrap(values, n_scenarios, weeks_per_scenario, block_length)
    rng = np.random.default_rng(seed)
    index = _bootstrap_index(
        values.size, int(n_scenarios), rng, int(weeks_per_scenario), int(block_length), circular
    )
    scenarios = values[index].mean(axis=1)
    if floor is not None or cap is not None:
        scenarios = np.clip(scenarios, floor, cap)
    return scenarios


# --- Scenario models: PLD and, optionally, contract prices drawn per scenario ---------------------

CONTRACT_PRICE_DRAWS = ("history", "uniform")
PLD_MODELS = ("bootstrap", "forward_lognormal")
# Contract prices are drawn in fixed blocks of scenarios, each from its own generator, so a
# scenario's prices do not depend on how the engine splits the scenarios into blocks.
PRICE_DRAW_BLOCK = 64


@dataclass(frozen=True)
class ContractPriceModel:
    """Contract prices drawn anew in every scenario, bounded relative to that scenario's PLD.

    The paper (§3.1) draws "the purchase and sale prices … limited relative to the drawn PLD, to
    guarantee the exposure effect". In scenario b every contract c gets

        draw = "history":  price[c,b] = clip(h[j], lower·PLD_b, upper·PLD_b),  j uniform over the
                           history (a bootstrap resample of the same series as the PLD, the
                           paper's "PLD and contract prices estimated by bootstrap");
        draw = "uniform":  price[c,b] = PLD_b · U(lower, upper).

    `lower` and `upper` (fractions of the PLD, 0 ≤ lower ≤ upper) are the model's bounds; with
    upper ≤ 1 a contract never costs more than the spot, so a short agent loses in every
    scenario where it must buy at PLD (the paper's exposure effect).
    """

    draw: str = "history"
    lower: float = 0.5
    upper: float = 1.0

    def __post_init__(self) -> None:
        if self.draw not in CONTRACT_PRICE_DRAWS:
            raise ValueError(
                f"contract_prices.draw must be one of {', '.join(CONTRACT_PRICE_DRAWS)}"
            )
        lower, upper = float(self.lower), float(self.upper)
        if not (np.isfinite(lower) and np.isfinite(upper) and 0.0 <= lower <= upper):
            raise ValueError(
                f"contract_prices bounds must satisfy 0 ≤ lower ≤ upper (got {self.lower}, {self.upper})"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"draw": self.draw, "lower": float(self.lower), "upper": float(self.upper)}


@dataclass(frozen=True, eq=False)
class Scenarios:
    """PLD scenarios and, when `contract_prices` is set, the rule that prices every contract in
    each of them. `model` describes how they were drawn (it is written into the results)."""

    pld: np.ndarray
    model: dict[str, Any]
    contract_prices: ContractPriceModel | None = None
    history: np.ndarray | None = field(default=None, repr=False)
    price_seed: int = 0

    def __post_init__(self) -> None:
        pld = np.asarray(self.pld, dtype=float).ravel()
        object.__setattr__(self, "pld", pld)
        if self.contract_prices is not None and self.contract_prices.draw == "history":
            if self.history is None or np.asarray(self.history).size == 0:
                raise ValueError("contract_prices.draw = 'history' needs the price history")
            object.__setattr__(self, "history", np.asarray(self.history, dtype=float))

    @property
    def n_scenarios(self) -> int:
        return int(self.pld.size)

    def _index_scratch(self, shape: tuple[int, int]) -> np.ndarray:
        """A reused intp array for the price draw's flat indices: fresh pages for 10⁷ indices
        in every block cost more than the gather itself. One Scenarios per computation (not
        shared across threads), as every caller builds its own."""
        scratch = self.__dict__.get("_scratch")
        if scratch is None or scratch.shape != shape:
            scratch = np.empty(shape, dtype=np.intp)
            object.__setattr__(self, "_scratch", scratch)
        return scratch

    @property
    def per_scenario_prices(self) -> bool:
        return self.contract_prices is not None

    def contract_price_block(
        self, n_contracts: int, start: int, stop: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Prices of every contract (rows) in scenarios start … stop − 1 (columns), R$/MWh.

        Each block of PRICE_DRAW_BLOCK scenarios is drawn whole from its own generator and then
        cut, so a scenario's prices do not depend on the slice asked for (callers asking for
        multiples of the block draw each block once). `out` (n_contracts × the slice's width,
        float64, C order) is filled instead of a new array, so a caller streaming blocks does
        not pay fresh pages for every block."""
        rule = self.contract_prices
        if rule is None:
            raise ValueError("these scenarios keep the contracts' own prices")
        stop = min(stop, self.n_scenarios)
        shape = (n_contracts, max(stop - start, 0))
        if out is None:
            out = np.empty(shape)
        elif out.shape != shape or out.dtype != np.float64 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-ordered float64 array of shape {shape}")
        width = PRICE_DRAW_BLOCK
        for j in range(start // width, -(-stop // width)):
            rng = np.random.default_rng([self.price_seed, j])
            lo, hi = max(start, j * width), min(stop, (j + 1) * width)
            cut = slice(lo - j * width, hi - j * width)
            target = out[:, lo - start : hi - start]
            pld = self.pld[lo:hi]
            if rule.draw == "history":
                size = self.history.size
                index = rng.integers(0, size, (n_contracts, width), dtype=np.int32)[:, cut]
                # The history clipped to each scenario's bounds (scenarios × history, small),
                # then one gather: the same values as clipping every drawn price.
                table = np.maximum(self.history[None, :], rule.lower * pld[:, None])
                np.minimum(table, rule.upper * pld[:, None], out=table)
                flat = self._index_scratch(index.shape)
                np.add(index, np.arange(hi - lo, dtype=np.intp) * size, out=flat)
                # Every index is in range by construction; mode="clip" skips the bounds
                # check that makes the default mode 4× slower.
                if target.flags.c_contiguous:
                    np.take(table.ravel(), flat, out=target, mode="clip")
                else:
                    target[:] = np.take(table.ravel(), flat, mode="clip")
            else:
                target[:] = rng.random((n_contracts, width))[:, cut]
                target *= rule.upper - rule.lower
                target += rule.lower
                target *= pld
        return out


def _seeds(seed: int | np.random.SeedSequence | None) -> tuple[np.random.Generator, int, Any]:
    """The PLD generator (np.random.default_rng(seed), as bootstrap_pld), the contract prices'
    seed derived from the same seed, and the seed to record (the entropy when none was given)."""
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    recorded = seed if isinstance(seed, int) else sequence.entropy
    pld_rng = np.random.default_rng(seed if isinstance(seed, int) else sequence)
    price_seed = int(sequence.spawn(1)[0].generate_state(1, np.uint64)[0])
    return pld_rng, price_seed, recorded


@dataclass(frozen=True)
class ScenarioModel:
    """How the network model's scenarios are drawn. The default is the paper's method.

    pld = "bootstrap" (default): resample the week's PLD history (`bootstrap_pld`: single weeks by
      default, or the mean of `weeks_per_scenario` weeks drawn in blocks of `block_length`).
    pld = "forward_lognormal": PLD_b = F · exp(σ·√H·Z_b − σ²·H/2), Z_b standard normal — a
      lognormal around the week's forward price F (mean F) with the bucket's σ over the horizon
      H in days (the FA's liquidation days; H = 1 when σ is already for the horizon).
    Both clip to [floor, cap] when given. `contract_prices` (default: the paper's, see
    ContractPriceModel) draws every contract's price per scenario; None keeps the contracts'
    own (traded) prices.
    """

    pld: str = "bootstrap"
    weeks_per_scenario: int = 1
    block_length: int = 1
    circular: bool = False
    floor: float | None = None
    cap: float | None = None
    forward: float | None = None
    sigma: float | None = None
    horizon_days: float = 1.0
    contract_prices: ContractPriceModel | None = field(default_factory=ContractPriceModel)

    def __post_init__(self) -> None:
        if self.pld not in PLD_MODELS:
            raise ValueError(f"scenario_model.pld must be one of {', '.join(PLD_MODELS)}")
        if self.floor is not None and self.cap is not None and not self.floor < self.cap:
            raise ValueError(f"scenario_model.floor must be < cap (got {self.floor} ≥ {self.cap})")
        if self.pld == "forward_lognormal":
            for name in ("forward", "sigma"):
                value = getattr(self, name)
                if (
                    value is None
                    or not np.isfinite(value)
                    or value < 0
                    or (name == "forward" and value == 0)
                ):
                    raise ValueError(
                        f"scenario_model.{name} must be a finite number "
                        f"{'> 0' if name == 'forward' else '≥ 0'} (got {value})"
                    )
            if not np.isfinite(self.horizon_days) or self.horizon_days <= 0:
                raise ValueError(
                    f"scenario_model.horizon_days must be > 0 (got {self.horizon_days})"
                )

    @classmethod
    def from_parameters(
        cls,
        parameters: Any,
        *,
        bucket: int = 0,
        submarket: str = "SE",
        contract_prices: ContractPriceModel | None = None,
    ) -> ScenarioModel:
        """The forward-curve model of a week: F = forward_prices[submarket][bucket], σ = that
        bucket's volatility, H = liquidation_days (1 when sigma_period = "horizon"), bounded by
        the week's PLD floor and cap. Contract prices default to the traded ones."""
        curve = parameters.forward_prices.get(submarket)
        if curve is None:
            raise ValueError(f"parameters.forward_prices has no submarket {submarket!r}")
        if not 0 <= bucket < len(curve):
            raise ValueError(f"bucket must be in 0..{len(curve) - 1} (got {bucket})")
        horizon = (
            1.0 if parameters.sigma_period == "horizon" else float(parameters.liquidation_days)
        )
        return cls(
            pld="forward_lognormal",
            forward=float(curve[bucket]),
            sigma=float(parameters.buckets[bucket].volatility),
            horizon_days=horizon,
            floor=parameters.pld_floor,
            cap=parameters.pld_cap,
            contract_prices=contract_prices,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pld": self.pld}
        if self.pld == "bootstrap":
            out.update(
                weeks_per_scenario=int(self.weeks_per_scenario),
                block_length=int(self.block_length),
                circular=bool(self.circular),
            )
        else:
            out.update(
                forward=float(self.forward),
                sigma=float(self.sigma),
                horizon_days=float(self.horizon_days),
            )
        out.update(
            floor=None if self.floor is None else float(self.floor),
            cap=None if self.cap is None else float(self.cap),
            contract_prices=(
                "fixed" if self.contract_prices is None else self.contract_prices.to_dict()
            ),
        )
        return out

    def draw(
        self,
        n_scenarios: int,
        seed: int | np.random.SeedSequence | None = None,
        history: np.ndarray | PldHistory | None = None,
    ) -> Scenarios:
        """Draw the scenarios (the PLDs now, the contract prices lazily, block by block)."""
        values = None
        if history is not None:
            values = (
                history.values if isinstance(history, PldHistory) else np.asarray(history, float)
            )
            values = values[np.isfinite(values)]
        pld_rng, price_seed, recorded = _seeds(seed)
        if self.pld == "bootstrap":
            if values is None:
                raise ValueError("the bootstrap scenario model needs the PLD history")
            _check_bootstrap(values, n_scenarios, self.weeks_per_scenario, self.block_length)
            index = _bootstrap_index(
                values.size,
                int(n_scenarios),
                pld_rng,
                int(self.weeks_per_scenario),
                int(self.block_length),
                self.circular,
            )
            pld = values[index].mean(axis=1)
        else:
            if int(n_scenarios) != n_scenarios or n_scenarios < 1:
                raise ValueError(f"n_scenarios must be an integer ≥ 1 (got {n_scenarios})")
            z = pld_rng.standard_normal(int(n_scenarios))
            s = float(self.sigma) * np.sqrt(float(self.horizon_days))
            pld = float(self.forward) * np.exp(s * z - 0.5 * s * s)
        if self.floor is not None or self.cap is not None:
            pld = np.clip(pld, self.floor, self.cap)
        if (
            self.contract_prices is not None
            and self.contract_prices.draw == "history"
            and values is None
        ):
            raise ValueError("contract_prices.draw = 'history' needs the PLD history")
        model = {**self.to_dict(), "seed": recorded, "n_scenarios": int(n_scenarios)}
        if values is not None:
            model["history_weeks"] = int(values.size)
        return Scenarios(
            pld=pld,
            model=model,
            contract_prices=self.contract_prices,
            history=values,
            price_seed=price_seed,
        )


PAPER_SCENARIO_MODEL = ScenarioModel()


def paper_scenarios(
    history: np.ndarray | PldHistory,
    n_scenarios: int = 5000,
    seed: int | None = None,
    **options: Any,
) -> Scenarios:
    """The paper's scenarios: single-week bootstrap resamples of the history and contract
    prices drawn per scenario within the default bounds; `options` override ScenarioModel's
    fields (e.g. contract_prices=ContractPriceModel(lower=0.6), floor=…, cap=…)."""
    return ScenarioModel(**options).draw(n_scenarios, seed, history)
