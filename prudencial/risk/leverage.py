"""Leverage factor (Fator de Alavancagem, FA) of one agent's forward portfolio.

Per bucket i (M+0 … M+6) and price source s = (submarket, energy type):

    NET[i,s]  = resource − requirement                          (MWm)
    MtM[i,s]  = NET[i,s] · F[i,s] · h[i]                        (R$)
    VaR[i]    = Σ_s |MtM[i,s]| · z · σ[i] · √D                  (netting="absolute_per_source")
              = |Σ_s MtM[i,s]| · z · σ[i] · √D                  (netting="net_per_bucket")
    VaR_total = sqrt(VaRᵀ ρ VaR)
    RWA       = max(K·VaR_total, VaR_total) + θ·max(K·extra_risk, extra_risk)
    RES_FIN   = Σ_i Σ_s (requirement·sale price − resource·purchase price)·h[i] + regulated revenue
    FA_risk   = RWA / PLA;   FA = max(0, (RWA − RES_FIN) / PLA), undefined when PLA ≤ 0

The open conventions (netting, σ period, K, θ, stress prices) are parameters of the week, so an
official change is data, not code. See docs/risk.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prudencial.domain import values as check
from prudencial.domain.market import BUCKET_COUNT, ENERGY_TYPES, SUBMARKETS
from prudencial.domain.parameters import (  # the week's parameters: one definition, the domain's
    Bucket,
    RiskParameters,
    validate_correlation,
)
from prudencial.risk.agent import AgentRef

__all__ = [
    "Bucket",
    "BucketFigures",
    "LeverageResult",
    "Portfolio",
    "Position",
    "RiskParameters",
    "leverage_factor",
    "leverage_stress",
    "source_key",
    "stress_loss",
    "validate_correlation",
]

PORTFOLIO_SCHEMA = "prudencial/portfolio/v1"


def source_key(submarket: str, energy_type: str) -> str:
    """Price source label, e.g. 'SE/conventional'."""
    return f"{submarket}/{energy_type}"


@dataclass(frozen=True)
class Position:
    """One portfolio row: a bucket, submarket and energy type with its MWm and average prices."""

    bucket: int
    submarket: str
    energy_type: str
    resource_mwm: float
    requirement_mwm: float
    avg_purchase_price: float = 0.0
    avg_sale_price: float = 0.0

    @property
    def net_mwm(self) -> float:
        """NET energético: resource (recurso) − requirement (requisito)."""
        return self.resource_mwm - self.requirement_mwm

    @property
    def source(self) -> str:
        return source_key(self.submarket, self.energy_type)

    @classmethod
    def from_dict(cls, data: Any, field: str = "position") -> Position:
        data = check.require_mapping(data, field)
        get = lambda key: check.require_key(data, key, field)  # noqa: E731
        return cls(
            bucket=check.integer(get("bucket"), f"{field}.bucket", low=0, high=BUCKET_COUNT - 1),
            submarket=check.choice(get("submarket"), f"{field}.submarket", SUBMARKETS),
            energy_type=check.choice(get("energy_type"), f"{field}.energy_type", ENERGY_TYPES),
            resource_mwm=check.number(get("resource_mwm"), f"{field}.resource_mwm", minimum=0),
            requirement_mwm=check.number(
                get("requirement_mwm"), f"{field}.requirement_mwm", minimum=0
            ),
            avg_purchase_price=check.number(
                data.get("avg_purchase_price", 0.0), f"{field}.avg_purchase_price", minimum=0
            ),
            avg_sale_price=check.number(
                data.get("avg_sale_price", 0.0), f"{field}.avg_sale_price", minimum=0
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "submarket": self.submarket,
            "energy_type": self.energy_type,
            "resource_mwm": self.resource_mwm,
            "requirement_mwm": self.requirement_mwm,
            "avg_purchase_price": self.avg_purchase_price,
            "avg_sale_price": self.avg_sale_price,
        }


@dataclass(frozen=True)
class Portfolio:
    """An agent's weekly forward portfolio (portfólio) and adjusted equity (PLA)."""

    agent: AgentRef
    week: str
    adjusted_equity: float
    positions: tuple[Position, ...]
    regulated_market_revenue: float = 0.0

    @classmethod
    def from_dict(cls, data: Any) -> Portfolio:
        data = check.require_mapping(data, "portfolio")
        check.schema(data, PORTFOLIO_SCHEMA, "portfolio")
        rows = check.require_key(data, "positions", "portfolio")
        if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
            raise ValueError("portfolio.positions must be a list")
        positions = tuple(
            Position.from_dict(row, f"portfolio.positions[{n}]") for n, row in enumerate(rows)
        )
        seen: dict[tuple[int, str, str], int] = {}
        for n, pos in enumerate(positions):
            key = (pos.bucket, pos.submarket, pos.energy_type)
            if key in seen:
                raise ValueError(
                    f"portfolio.positions[{n}] repeats bucket {pos.bucket}, {pos.submarket}, "
                    f"{pos.energy_type} of positions[{seen[key]}] (one row per bucket and source)"
                )
            seen[key] = n
        return cls(
            agent=AgentRef.from_dict(
                check.require_key(data, "agent", "portfolio"), "portfolio.agent"
            ),
            week=check.week_code(check.require_key(data, "week", "portfolio"), "portfolio.week"),
            adjusted_equity=check.number(
                check.require_key(data, "adjusted_equity", "portfolio"), "portfolio.adjusted_equity"
            ),
            regulated_market_revenue=check.number(
                data.get("regulated_market_revenue", 0.0), "portfolio.regulated_market_revenue"
            ),
            positions=positions,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PORTFOLIO_SCHEMA,
            "agent": self.agent.to_dict(),
            "week": self.week,
            "adjusted_equity": self.adjusted_equity,
            "regulated_market_revenue": self.regulated_market_revenue,
            "positions": [p.to_dict() for p in self.positions],
        }


@dataclass(frozen=True)
class BucketFigures:
    """Every intermediate of one bucket, so a reader can redo the FA by hand."""

    index: int
    label: str
    hours: float
    volatility: float
    net_mwm: dict[str, float]
    forward_price: dict[str, float]
    mtm: dict[str, float]
    mtm_total: float
    exposure: float
    var: float
    extra_risk: float
    financial_result: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "hours": self.hours,
            "volatility": self.volatility,
            "net_mwm": dict(self.net_mwm),
            "forward_price": dict(self.forward_price),
            "mtm": dict(self.mtm),
            "mtm_total": self.mtm_total,
            "exposure": self.exposure,
            "var": self.var,
            "extra_risk": self.extra_risk,
            "financial_result": self.financial_result,
        }


@dataclass(frozen=True)
class LeverageResult:
    """The leverage factor and its intermediates; `fa` is None (with `reason`) when PLA ≤ 0."""

    fa: float | None
    fa_risk: float | None
    reason: str | None
    var_total: float
    rwa: float
    res_fin: float
    pla: float
    extra_risk: float
    regulated_market_revenue: float
    z: float
    horizon_factor: float
    confidence: float
    liquidation_days: float
    netting: str
    sigma_period: str
    k: float
    theta: float
    buckets: tuple[BucketFigures, ...]

    @property
    def var_by_bucket(self) -> tuple[float, ...]:
        return tuple(b.var for b in self.buckets)

    @property
    def mtm_by_bucket(self) -> tuple[float, ...]:
        return tuple(b.mtm_total for b in self.buckets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fa": self.fa,
            "fa_risk": self.fa_risk,
            "reason": self.reason,
            "var_total": self.var_total,
            "rwa": self.rwa,
            "res_fin": self.res_fin,
            "pla": self.pla,
            "extra_risk": self.extra_risk,
            "regulated_market_revenue": self.regulated_market_revenue,
            "z": self.z,
            "horizon_factor": self.horizon_factor,
            "confidence": self.confidence,
            "liquidation_days": self.liquidation_days,
            "netting": self.netting,
            "sigma_period": self.sigma_period,
            "k": self.k,
            "theta": self.theta,
            "buckets": [b.to_dict() for b in self.buckets],
        }


def _coerce(
    portfolio: Portfolio | Mapping[str, Any], parameters: RiskParameters | Mapping[str, Any]
):
    if not isinstance(portfolio, Portfolio):
        portfolio = Portfolio.from_dict(portfolio)
    if not isinstance(parameters, RiskParameters):
        parameters = RiskParameters.from_dict(parameters)
    return portfolio, parameters


def stress_loss(position: Position, forward_price: float, bucket: Bucket) -> float:
    """Stress parcel of one row (R$, ≥ 0).

    Long (NET > 0): the loss if the price falls from F to the bucket's long stress price,
    NET·h·max(0, F − P_long). Short (NET < 0): the loss if the price rises to the short stress
    price, |NET|·h·max(0, P_short − F). A price move in the agent's favour counts as zero.
    """
    net = position.net_mwm
    if net > 0 and bucket.stress_price_long is not None:
        return net * bucket.hours * max(0.0, forward_price - bucket.stress_price_long)
    if net < 0 and bucket.stress_price_short is not None:
        return -net * bucket.hours * max(0.0, bucket.stress_price_short - forward_price)
    return 0.0


def leverage_factor(
    portfolio: Portfolio | Mapping[str, Any], parameters: RiskParameters | Mapping[str, Any]
) -> LeverageResult:
    """Compute the leverage factor (FA) of a portfolio under a week's parameters."""
    portfolio, parameters = _coerce(portfolio, parameters)
    if portfolio.week != parameters.week:
        # Another week's prices and volatilities would give a plausible but wrong FA.
        raise ValueError(
            f"portfolio.week {portfolio.week} must be the parameters' week {parameters.week}"
        )
    z = parameters.z
    horizon = parameters.horizon_factor
    rows_by_bucket: dict[int, list[Position]] = {i: [] for i in range(BUCKET_COUNT)}
    for n, pos in enumerate(portfolio.positions):
        if pos.submarket not in parameters.forward_prices:
            raise ValueError(
                f"parameters.forward_prices.{pos.submarket} is required by portfolio.positions[{n}]"
            )
        rows_by_bucket[pos.bucket].append(pos)

    figures = []
    for bucket in parameters.buckets:
        net: dict[str, float] = {}
        forward: dict[str, float] = {}
        mtm: dict[str, float] = {}
        extra = 0.0
        financial = 0.0
        for pos in rows_by_bucket[bucket.index]:
            price = parameters.forward_prices[pos.submarket][bucket.index]
            net[pos.source] = pos.net_mwm
            forward[pos.source] = price
            mtm[pos.source] = pos.net_mwm * price * bucket.hours
            extra += stress_loss(pos, price, bucket)
            financial += (
                pos.requirement_mwm * pos.avg_sale_price - pos.resource_mwm * pos.avg_purchase_price
            ) * bucket.hours
        mtm_total = sum(mtm.values())
        if parameters.netting == "absolute_per_source":
            exposure = sum(abs(v) for v in mtm.values())
        else:
            exposure = abs(mtm_total)
        figures.append(
            BucketFigures(
                index=bucket.index,
                label=bucket.label,
                hours=bucket.hours,
                volatility=bucket.volatility,
                net_mwm=net,
                forward_price=forward,
                mtm=mtm,
                mtm_total=mtm_total,
                exposure=exposure,
                var=exposure * z * bucket.volatility * horizon,
                extra_risk=extra,
                financial_result=financial,
            )
        )

    var_vector = np.array([f.var for f in figures])
    # max(0, ·) absorbs a −1e-12 from a PSD matrix with a zero eigenvalue.
    var_total = math.sqrt(max(0.0, float(var_vector @ parameters.correlation @ var_vector)))
    extra_risk = sum(f.extra_risk for f in figures)
    k, theta = parameters.k, parameters.theta
    rwa = max(k * var_total, var_total) + theta * max(k * extra_risk, extra_risk)
    res_fin = sum(f.financial_result for f in figures) + portfolio.regulated_market_revenue
    pla = portfolio.adjusted_equity
    if pla > 0:
        fa_risk: float | None = rwa / pla
        fa: float | None = max(0.0, (rwa - res_fin) / pla)
        reason = None
    else:
        fa_risk = fa = None
        reason = (
            f"adjusted equity (PLA) is {pla:,.2f} ≤ 0: the leverage factor is undefined "
            "because it divides by PLA; the agent has no equity to back its risk"
        )
    return LeverageResult(
        fa=fa,
        fa_risk=fa_risk,
        reason=reason,
        var_total=var_total,
        rwa=rwa,
        res_fin=res_fin,
        pla=pla,
        extra_risk=extra_risk,
        regulated_market_revenue=portfolio.regulated_market_revenue,
        z=z,
        horizon_factor=horizon,
        confidence=parameters.confidence,
        liquidation_days=parameters.liquidation_days,
        netting=parameters.netting,
        sigma_period=parameters.sigma_period,
        k=k,
        theta=theta,
        buckets=tuple(figures),
    )


def leverage_stress(
    portfolio: Portfolio | Mapping[str, Any],
    parameters: RiskParameters | Mapping[str, Any],
    shifts: Sequence[float] = (-100.0, 100.0),
) -> dict[str, LeverageResult]:
    """FA under stressed forward curves: the base curve, every price at the PLD floor and at the
    PLD cap (when the week sets them) and parallel shifts of the curve in R$/MWh (floored at 0)."""
    portfolio, parameters = _coerce(portfolio, parameters)
    curves: dict[str, dict[str, list[float]]] = {}
    if parameters.pld_floor is not None:
        curves["pld_floor"] = {
            s: [parameters.pld_floor] * BUCKET_COUNT for s in parameters.forward_prices
        }
    if parameters.pld_cap is not None:
        curves["pld_cap"] = {
            s: [parameters.pld_cap] * BUCKET_COUNT for s in parameters.forward_prices
        }
    for shift in shifts:
        curves[f"shift_{shift:+g}"] = {
            s: [max(0.0, p + shift) for p in c] for s, c in parameters.forward_prices.items()
        }
    results = {"base": leverage_factor(portfolio, parameters)}
    for name, curve in curves.items():
        results[name] = leverage_factor(portfolio, parameters.with_forward_prices(curve))
    return results
