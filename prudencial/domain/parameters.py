"""A week's parameters (Parâmetros CCEE) as the host ships them, and the checks on them.

``RiskParameters.from_dict`` is the parser (shape, types, ranges, correlation matrix);
``check_plausible`` adds what no CCEE week could have (the enclave's guard against crafted
parameters); ``check_week_parameters`` runs both. The host runs it when parameters are saved and
when a week opens, the enclave when it computes, so the host refuses at once what the enclave
would refuse at the deadline. Every refusal is a DomainError naming the field and the rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from prudencial.domain import values as check
from prudencial.domain.errors import DomainError
from prudencial.domain.formats import CONTRACT_TYPES, DEFAULT_ENERGY_TYPES, ENERGY_TYPE_PATTERN
from prudencial.domain.market import BUCKET_COUNT, MONTH_HOURS, SUBMARKETS

NETTING_CHOICES = ("absolute_per_source", "net_per_bucket")
SIGMA_PERIODS = ("daily", "horizon")
# Tolerance for a correlation matrix's eigenvalues: rounding in published matrices.
PSD_TOLERANCE = 1e-10
MAX_K_THETA = 10.0


def validate_correlation(
    matrix: Any, size: int = BUCKET_COUNT, field: str = "correlation"
) -> np.ndarray:
    """Check a bucket correlation matrix (ρ) and return it as a float array.

    Square `size`×`size`, values in [−1, 1], symmetric, unit diagonal and positive semi-definite
    (eigenvalues ≥ −1e-10): otherwise VaR_total could be the square root of a negative number.
    """
    try:
        arr = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError):
        raise DomainError(field, "matrix", n=size) from None
    if arr.shape != (size, size) or not np.all(np.isfinite(arr)):
        raise DomainError(field, "matrix", n=size)
    if np.any(np.abs(arr) > 1.0):
        i, j = np.argwhere(np.abs(arr) > 1.0)[0]
        raise DomainError(f"{field}[{i}][{j}]", "correlation_range", got=float(arr[i, j]))
    if not np.allclose(np.diag(arr), 1.0, rtol=0.0, atol=1e-12):
        i = int(np.argmax(np.abs(np.diag(arr) - 1.0)))
        raise DomainError(f"{field}[{i}][{i}]", "unit_diagonal", got=float(arr[i, i]))
    if not np.allclose(arr, arr.T, rtol=0.0, atol=1e-12):
        i, j = np.argwhere(~np.isclose(arr, arr.T, rtol=0.0, atol=1e-12))[0]
        raise DomainError(f"{field}[{i}][{j}]", "symmetric")
    smallest = float(np.linalg.eigvalsh(arr).min())
    if smallest < -PSD_TOLERANCE:
        raise DomainError(field, "positive_semidefinite", smallest=f"{smallest:.3g}")
    return arr


def _optional_price(data: Any, key: str, field: str) -> float | None:
    value = data.get(key)
    return None if value is None else check.number(value, f"{field}.{key}", minimum=0)


@dataclass(frozen=True)
class Bucket:
    """Monthly bucket M+i: hours, volatility σ and the stress prices for long and short positions."""

    index: int
    label: str
    hours: float
    volatility: float
    # None: no stress price set for this bucket, so no stress parcel (never a silent 0).
    stress_price_long: float | None = None
    stress_price_short: float | None = None

    @classmethod
    def from_dict(cls, data: Any, field: str = "bucket") -> Bucket:
        data = check.require_mapping(data, field)
        get = lambda key: check.require_key(data, key, field)  # noqa: E731
        return cls(
            index=check.integer(get("index"), f"{field}.index", low=0, high=BUCKET_COUNT - 1),
            label=str(data.get("label", "")),
            hours=check.number(get("hours"), f"{field}.hours", minimum=0, strict=True),
            volatility=check.number(get("volatility"), f"{field}.volatility", minimum=0),
            stress_price_long=_optional_price(data, "stress_price_long", field),
            stress_price_short=_optional_price(data, "stress_price_short", field),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "hours": self.hours,
            "volatility": self.volatility,
            "stress_price_long": self.stress_price_long,
            "stress_price_short": self.stress_price_short,
        }


@dataclass(frozen=True)
class RiskParameters:
    """A week's CCEE risk parameters (Parâmetros CCEE); public, set by CCEE staff."""

    week: str
    confidence: float
    liquidation_days: float
    buckets: tuple[Bucket, ...]
    correlation: np.ndarray = field(repr=False)
    forward_prices: dict[str, tuple[float, ...]]
    sigma_period: str = "daily"
    netting: str = "absolute_per_source"
    pld_floor: float | None = None
    pld_cap: float | None = None
    k: float = 0.0
    theta: float = 0.0
    # The weekly PLD the network model bootstraps from (None: the week has none, and the
    # network model is not computed; the enclave never substitutes a packaged series).
    pld_history: tuple[float, ...] | None = None
    # Price sources (docs/formats.md "Price source rule"): the week's energy types, the spreads
    # over the submarket's conventional curve per energy type and per contract type (R$/MWh by
    # bucket; documented default 0 for every type) and the curves CCEE publishes, which take
    # precedence ("SE/incentivized_50" for F_base, "SE/incentivized_50/derivative" for F).
    energy_types: tuple[str, ...] = DEFAULT_ENERGY_TYPES
    energy_spreads: dict[str, tuple[float, ...]] = field(default_factory=dict)
    contract_spreads: dict[str, tuple[float, ...]] = field(default_factory=dict)
    forward_curves: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> RiskParameters:
        data = check.require_mapping(data, "parameters")
        get = lambda key: check.require_key(data, key, "parameters")  # noqa: E731
        confidence = check.number(get("confidence"), "parameters.confidence")
        if not 0.0 < confidence < 1.0:
            raise DomainError("parameters.confidence", "open_unit_interval", got=confidence)
        rows = get("buckets")
        if not isinstance(rows, Sequence) or isinstance(rows, str) or len(rows) != BUCKET_COUNT:
            raise DomainError("parameters.buckets", "length", n=BUCKET_COUNT)
        buckets = tuple(
            Bucket.from_dict(row, f"parameters.buckets[{n}]") for n, row in enumerate(rows)
        )
        for n, bucket in enumerate(buckets):
            if bucket.index != n:
                raise DomainError(
                    f"parameters.buckets[{n}].index", "bucket_order", n=n, got=bucket.index
                )
        curves = check.require_mapping(get("forward_prices"), "parameters.forward_prices")
        forward: dict[str, tuple[float, ...]] = {}
        for submarket, curve in curves.items():
            name = f"parameters.forward_prices.{submarket}"
            check.choice(submarket, "parameters.forward_prices key", SUBMARKETS)
            if (
                not isinstance(curve, Sequence)
                or isinstance(curve, str)
                or len(curve) != BUCKET_COUNT
            ):
                raise DomainError(name, "length", n=BUCKET_COUNT)
            forward[submarket] = tuple(
                check.number(p, f"{name}[{i}]", minimum=0) for i, p in enumerate(curve)
            )
        floor = data.get("pld_floor")
        cap = data.get("pld_cap")
        floor = None if floor is None else check.number(floor, "parameters.pld_floor", minimum=0)
        cap = None if cap is None else check.number(cap, "parameters.pld_cap", minimum=0)
        if floor is not None and cap is not None and floor >= cap:
            raise DomainError("parameters.pld_floor", "floor_below_cap", got=floor)
        return cls(
            week=check.week_code(get("week"), "parameters.week"),
            confidence=confidence,
            liquidation_days=check.number(
                get("liquidation_days"), "parameters.liquidation_days", minimum=0, strict=True
            ),
            buckets=buckets,
            correlation=validate_correlation(get("correlation"), field="parameters.correlation"),
            forward_prices=forward,
            sigma_period=check.choice(
                data.get("sigma_period", "daily"), "parameters.sigma_period", SIGMA_PERIODS
            ),
            netting=check.choice(
                data.get("netting", "absolute_per_source"), "parameters.netting", NETTING_CHOICES
            ),
            pld_floor=floor,
            pld_cap=cap,
            k=check.number(data.get("k", 0.0), "parameters.k", minimum=0),
            theta=_theta(data, buckets),
            pld_history=None
            if data.get("pld_history") is None
            else tuple(check_pld_history(data["pld_history"])),
            **_price_sources(data),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "confidence": self.confidence,
            "liquidation_days": self.liquidation_days,
            "sigma_period": self.sigma_period,
            "netting": self.netting,
            "buckets": [b.to_dict() for b in self.buckets],
            "correlation": self.correlation.tolist(),
            "forward_prices": {s: list(c) for s, c in self.forward_prices.items()},
            "pld_floor": self.pld_floor,
            "pld_cap": self.pld_cap,
            "k": self.k,
            "theta": self.theta,
            "pld_history": None if self.pld_history is None else list(self.pld_history),
            "energy_types": list(self.energy_types),
            "energy_spreads": {t: list(c) for t, c in self.energy_spreads.items()},
            "contract_spreads": {t: list(c) for t, c in self.contract_spreads.items()},
            "forward_curves": {k: list(c) for k, c in self.forward_curves.items()},
        }

    @property
    def z(self) -> float:
        """z = Φ⁻¹(confidence): 1.6448536 at 95 %."""
        return NormalDist().inv_cdf(self.confidence)

    @property
    def horizon_factor(self) -> float:
        """√D for a daily σ; 1 when σ is already given for the D-day liquidation horizon."""
        return math.sqrt(self.liquidation_days) if self.sigma_period == "daily" else 1.0

    def with_forward_prices(self, forward: Mapping[str, Sequence[float]]) -> RiskParameters:
        """Copy with another forward curve (used by the stress scenarios)."""
        return replace(self, forward_prices={s: tuple(map(float, c)) for s, c in forward.items()})

    def price(
        self, bucket: int, submarket: str, energy_type: str, contract_type: str | None = None
    ) -> float:
        """F(i, sm, et, ct), or F_base(i, sm, et) when ``contract_type`` is None (forecasts):
        see ``forward_price``."""
        return forward_price(self, bucket, submarket, energy_type, contract_type)[0]


def _curve(value: Any, name: str, *, minimum: float | None) -> tuple[float, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != BUCKET_COUNT:
        raise DomainError(name, "length", n=BUCKET_COUNT)
    return tuple(check.number(p, f"{name}[{i}]", minimum=minimum) for i, p in enumerate(value))


def _price_sources(data: Mapping[str, Any]) -> dict[str, Any]:
    """energy_types, energy_spreads, contract_spreads, forward_curves of a parameters payload.

    Absent, each takes its documented default: DEFAULT_ENERGY_TYPES, a zero spread for every
    energy type of the week and every contract type, no curves. Present, each is taken as it
    is (check_plausible then refuses an energy type that is priced by nothing)."""
    raw_types = data.get("energy_types")
    if raw_types is None:
        types = DEFAULT_ENERGY_TYPES
    else:
        if not isinstance(raw_types, Sequence) or isinstance(raw_types, str) or not raw_types:
            raise DomainError("parameters.energy_types", "energy_types")
        types = tuple(raw_types)
        for n, code in enumerate(types):
            if not isinstance(code, str) or not re.match(ENERGY_TYPE_PATTERN, code):
                raise DomainError(f"parameters.energy_types[{n}]", "energy_types")
            if code in types[:n]:
                raise DomainError(f"parameters.energy_types[{n}]", "energy_types")
    zeros = (0.0,) * BUCKET_COUNT
    spreads: dict[str, dict[str, tuple[float, ...]]] = {}
    for name, allowed, default in (
        ("energy_spreads", types, dict.fromkeys(types, zeros)),
        ("contract_spreads", CONTRACT_TYPES, dict.fromkeys(CONTRACT_TYPES, zeros)),
    ):
        raw = data.get(name)
        if raw is None:
            spreads[name] = default
            continue
        raw = check.require_mapping(raw, f"parameters.{name}")
        spreads[name] = {}
        for key, curve in raw.items():
            check.choice(key, f"parameters.{name} key", tuple(allowed))
            spreads[name][key] = _curve(curve, f"parameters.{name}.{key}", minimum=None)
    curves: dict[str, tuple[float, ...]] = {}
    raw = data.get("forward_curves")
    if raw is not None:
        raw = check.require_mapping(raw, "parameters.forward_curves")
        for key, curve in raw.items():
            parts = key.split("/") if isinstance(key, str) else []
            if not (
                len(parts) in (2, 3)
                and parts[0] in SUBMARKETS
                and parts[1] in types
                and (len(parts) == 2 or parts[2] in CONTRACT_TYPES)
            ):
                raise DomainError("parameters.forward_curves key", "curve_key")
            curves[key] = _curve(curve, f"parameters.forward_curves.{key}", minimum=0)
    return {
        "energy_types": types,
        "energy_spreads": spreads["energy_spreads"],
        "contract_spreads": spreads["contract_spreads"],
        "forward_curves": curves,
    }


def forward_price(
    parameters: RiskParameters,
    bucket: int,
    submarket: str,
    energy_type: str,
    contract_type: str | None = None,
) -> tuple[float, str]:
    """The price source rule (docs/formats.md), the one definition, with the field it came from:

        F_base(i, sm, et) = forward_curves["sm/et"][i]          if the week has that curve
                          = forward_prices[sm][i] + energy_spreads[et][i]      otherwise
        F(i, sm, et, ct)  = forward_curves["sm/et/ct"][i]       if the week has that curve
                          = F_base(i, sm, et) + contract_spreads[ct][i]        otherwise

    ``conventional`` has a zero spread by definition. A source priced by nothing is a
    DomainError naming ``parameters.energy_spreads.<type>`` (never a guess)."""
    i = bucket
    if contract_type is not None:
        curve = parameters.forward_curves.get(f"{submarket}/{energy_type}/{contract_type}")
        if curve is not None:
            return curve[i], f"parameters.forward_curves.{submarket}/{energy_type}/{contract_type}"
        spread = parameters.contract_spreads.get(contract_type)
        if spread is None:
            raise DomainError(f"parameters.contract_spreads.{contract_type}", "unpriced_source")
        base, origin = forward_price(parameters, bucket, submarket, energy_type)
        if spread[i] == 0:
            return base, origin
        return base + spread[i], f"parameters.contract_spreads.{contract_type}"
    curve = parameters.forward_curves.get(f"{submarket}/{energy_type}")
    if curve is not None:
        return curve[i], f"parameters.forward_curves.{submarket}/{energy_type}"
    if submarket not in parameters.forward_prices:
        raise DomainError(f"parameters.forward_prices.{submarket}", "required")
    spread = parameters.energy_spreads.get(energy_type)
    if spread is None:
        if energy_type != CONVENTIONAL:
            raise DomainError(f"parameters.energy_spreads.{energy_type}", "unpriced_source")
        spread = (0.0,) * BUCKET_COUNT
    origin = (
        f"parameters.forward_prices.{submarket}"
        if spread[i] == 0
        else f"parameters.energy_spreads.{energy_type}"
    )
    return parameters.forward_prices[submarket][i] + spread[i], origin


CONVENTIONAL = "conventional"


def _check_price_sources(parameters: RiskParameters) -> None:
    """Every energy type of the week priced in every submarket (a curve or a spread),
    conventional's spread zero, every price between the PLD floor and cap."""
    spread = parameters.energy_spreads.get(CONVENTIONAL)
    if spread is not None and any(v != 0 for v in spread):
        raise DomainError(f"parameters.energy_spreads.{CONVENTIONAL}", "zero_by_definition")
    for code in parameters.energy_types:
        for sm in SUBMARKETS:
            if (
                f"{sm}/{code}" not in parameters.forward_curves
                and code not in parameters.energy_spreads
                and code != CONVENTIONAL
            ):
                raise DomainError(f"parameters.energy_spreads.{code}", "unpriced_source")
    for code in CONTRACT_TYPES:
        if code not in parameters.contract_spreads:
            raise DomainError(f"parameters.contract_spreads.{code}", "unpriced_source")
    for sm in SUBMARKETS:
        for code in parameters.energy_types:
            for contract in (None, *CONTRACT_TYPES):
                for i in range(BUCKET_COUNT):
                    price, origin = forward_price(parameters, i, sm, code, contract)
                    if not parameters.pld_floor <= price <= parameters.pld_cap:
                        raise DomainError(f"{origin}[{i}]", "within_pld_bounds", got=price)


def _theta(data: Any, buckets: Any) -> float:
    """θ weighs the stress parcel: when it counts (θ > 0) every bucket needs both stress prices."""
    theta = check.number(data.get("theta", 0.0), "parameters.theta", minimum=0)
    if theta > 0:
        for b in buckets:
            for key in ("stress_price_long", "stress_price_short"):
                if getattr(b, key) is None:
                    raise DomainError(
                        f"parameters.buckets[{b.index}].{key}", "stress_price_required"
                    )
    return theta


def check_plausible(parameters: RiskParameters) -> RiskParameters:
    """Refuse parameters no CCEE week could have. The host supplies them, and crafted ones
    (a one-hour month, a R$ 1 price in one submarket, zero volatility elsewhere) would turn a
    published FA into a readout of one hidden position."""
    for b in parameters.buckets:
        if b.hours not in MONTH_HOURS:
            raise DomainError(f"parameters.buckets[{b.index}].hours", "month_hours", got=b.hours)
        if not 0 < b.volatility <= 1:
            raise DomainError(
                f"parameters.buckets[{b.index}].volatility", "volatility_range", got=b.volatility
            )
    for name in ("pld_floor", "pld_cap"):
        if getattr(parameters, name) is None:
            raise DomainError(f"parameters.{name}", "required")
    for submarket in SUBMARKETS:  # a week prices every submarket; none is guessed from another
        if submarket not in parameters.forward_prices:
            raise DomainError(f"parameters.forward_prices.{submarket}", "required")
    for submarket, prices in parameters.forward_prices.items():
        for i, price in enumerate(prices):
            if not parameters.pld_floor <= price <= parameters.pld_cap:
                raise DomainError(
                    f"parameters.forward_prices.{submarket}[{i}]", "within_pld_bounds", got=price
                )
    _check_price_sources(parameters)
    for name in ("k", "theta"):
        if getattr(parameters, name) > MAX_K_THETA:
            raise DomainError(
                f"parameters.{name}",
                "at_most",
                maximum=f"{MAX_K_THETA:g}",
                got=getattr(parameters, name),
            )
    return parameters


MAX_PLD_HISTORY = 10_000  # weekly prices: two centuries
MAX_PLD_VALUE = 100_000.0  # R$/MWh: two orders above any PLD cap so far


def check_pld_history(value: Any, field: str = "parameters.pld_history") -> list[float]:
    """The weekly PLD prices the network model bootstraps its scenarios from: a week parameter
    the host sends, never a packaged series guessed by the enclave."""
    if (
        not isinstance(value, list | tuple)
        or not 0 < len(value) <= MAX_PLD_HISTORY
        or not all(
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and 0 <= v <= MAX_PLD_VALUE
            for v in value
        )
    ):
        raise DomainError(field, "price_history", n=MAX_PLD_HISTORY, maximum=f"{MAX_PLD_VALUE:g}")
    return [float(v) for v in value]


def check_week_parameters(raw: Any) -> RiskParameters:
    """The week's parameters as the host ships them, parsed and checked exactly as the enclave
    does (one DomainError naming the field and the rule), ``pld_history`` included."""
    return check_plausible(RiskParameters.from_dict(raw))
