"""Leverage factor (Fator de Alavancagem, FA) of one agent's forward portfolio.

Per bucket i (M+0 … M+6) and netting source s = (submarket, energy type):

    NET[i,s]  = resource − requirement                          (MWm)
    MtM[i,s]  = Σ_rows (resource − requirement) · F(i, sm, et, ct) · h[i]     (R$; each row at its
                own price: F for a contract type, F_base for forecasts and rows without one)
    VaR[i]    = Σ_s |MtM[i,s]| · z · σ[i] · √D                  (netting="absolute_per_source")
              = |Σ_s MtM[i,s]| · z · σ[i] · √D                  (netting="net_per_bucket")
    VaR_total = sqrt(VaRᵀ ρ VaR)
    RWA       = max(K·VaR_total, VaR_total) + θ·max(K·extra_risk, extra_risk)
    RES_FIN   = Σ rows' declared R$ (sales − purchases; v2) or
                Σ_i Σ_s (requirement·sale price − resource·purchase price)·h[i], + regulated revenue
    FA_risk   = RWA / PLA;   FA = max(0, (RWA − RES_FIN) / PLA), undefined when PLA ≤ 0

The open conventions (netting, σ period, K, θ, stress prices) are parameters of the week, so an
official change is data, not code. See docs/risk.md. The agents' payloads
(``prudencial/portfolio/v2``, docs/formats.md) reach the engine through
``prudencial.domain.formats.engine_portfolio``; this module's position list (the former v1 shape,
with the optional ``contract_type`` and ``financial_brl``) is the engine's input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from prudencial.domain import formats
from prudencial.domain import values as check
from prudencial.domain.formats import CONTRACT_TYPES
from prudencial.domain.market import BUCKET_COUNT, SUBMARKETS
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
    "source_stress_loss",
    "stress_loss",
    "validate_correlation",
]

PORTFOLIO_SCHEMA = "prudencial/portfolio/v1"


def source_key(submarket: str, energy_type: str) -> str:
    """Price source label, e.g. 'SE/conventional'."""
    return f"{submarket}/{energy_type}"


@dataclass(frozen=True)
class Position:
    """One portfolio row: a bucket, submarket, energy type and (optionally) contract type with its
    MWm; its financial result is ``financial_brl`` (declared R$, v2) or, without it, follows
    from the average prices. ``contract_type`` None: priced at F_base (forecasts, v1 rows)."""

    bucket: int
    submarket: str
    energy_type: str
    resource_mwm: float
    requirement_mwm: float
    avg_purchase_price: float = 0.0
    avg_sale_price: float = 0.0
    contract_type: str | None = None
    financial_brl: float | None = None

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
            energy_type=check.text(get("energy_type"), f"{field}.energy_type"),
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
            contract_type=None
            if data.get("contract_type") is None
            else check.choice(data["contract_type"], f"{field}.contract_type", CONTRACT_TYPES),
            financial_brl=None
            if data.get("financial_brl") is None
            else check.number(data["financial_brl"], f"{field}.financial_brl"),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "bucket": self.bucket,
            "submarket": self.submarket,
            "energy_type": self.energy_type,
            "resource_mwm": self.resource_mwm,
            "requirement_mwm": self.requirement_mwm,
            "avg_purchase_price": self.avg_purchase_price,
            "avg_sale_price": self.avg_sale_price,
        }
        if self.contract_type is not None:
            out["contract_type"] = self.contract_type
        if self.financial_brl is not None:
            out["financial_brl"] = self.financial_brl
        return out

    def financial_result(self, hours: float) -> float:
        """The row's RES_FIN share, R$: declared (v2) or from the average prices (v1)."""
        if self.financial_brl is not None:
            return self.financial_brl
        return (
            self.requirement_mwm * self.avg_sale_price - self.resource_mwm * self.avg_purchase_price
        ) * hours


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
        if data.get("schema") == formats.PORTFOLIO_SCHEMA_ID:
            data = formats.engine_portfolio(data)  # an agent's v2 payload (already validated)
        check.schema(data, PORTFOLIO_SCHEMA, "portfolio")
        rows = check.require_key(data, "positions", "portfolio")
        if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
            raise ValueError("portfolio.positions must be a list")
        positions = tuple(
            Position.from_dict(row, f"portfolio.positions[{n}]") for n, row in enumerate(rows)
        )
        seen: dict[tuple[int, str, str, str | None], int] = {}
        for n, pos in enumerate(positions):
            key = (pos.bucket, pos.submarket, pos.energy_type, pos.contract_type)
            if key in seen:
                raise ValueError(
                    f"portfolio.positions[{n}] repeats bucket {pos.bucket}, {pos.submarket}, "
                    f"{pos.energy_type}, {pos.contract_type} of positions[{seen[key]}] (one row "
                    "per bucket, source and contract type)"
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
    """Stress parcel of one row (R$, ≥ 0): ``source_stress_loss`` of its NET at its price."""
    return source_stress_loss(position.net_mwm, forward_price, bucket)


def source_stress_loss(net: float, forward_price: float, bucket: Bucket) -> float:
    """Stress parcel of one netting source (R$, ≥ 0).

    Long (NET > 0): the loss if the price falls from F to the bucket's long stress price,
    NET·h·max(0, F − P_long). Short (NET < 0): the loss if the price rises to the short stress
    price, |NET|·h·max(0, P_short − F). A price move in the agent's favour counts as zero. F is
    the source's MtM-weighted price (MtM / (NET·h)) when its rows carry different prices.
    """
    if net > 0 and bucket.stress_price_long is not None:
        return net * bucket.hours * max(0.0, forward_price - bucket.stress_price_long)
    if net < 0 and bucket.stress_price_short is not None:
        return -net * bucket.hours * max(0.0, bucket.stress_price_short - forward_price)
    return 0.0


def leverage_factor(
    portfolio: Portfolio | Mapping[str, Any], parameters: RiskParameters | Mapping[str, Any]
) -> LeverageResult:
    """Compute the leverage factor (FA) of a portfolio under a week's parameters.

    ``portfolio``: the engine's Portfolio or its payload, or an agent's v2 payload (converted by
    ``formats.engine_portfolio``). Each row is priced by the week's price source rule
    (``RiskParameters.price``); the netting source stays (submarket, energy type).
    """
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
        if pos.energy_type not in parameters.energy_types:
            raise ValueError(
                f"portfolio.positions[{n}].energy_type must be one of the week's energy types "
                f"({', '.join(parameters.energy_types)})"
            )
        rows_by_bucket[pos.bucket].append(pos)

    figures = []
    for bucket in parameters.buckets:
        net: dict[str, float] = {}
        forward: dict[str, float] = {}
        mtm: dict[str, float] = {}
        financial = 0.0
        for pos in rows_by_bucket[bucket.index]:
            source = pos.source
            price = parameters.price(
                bucket.index, pos.submarket, pos.energy_type, pos.contract_type
            )
            net[source] = net.get(source, 0.0) + pos.net_mwm
            forward.setdefault(
                source, parameters.price(bucket.index, pos.submarket, pos.energy_type)
            )
            mtm[source] = mtm.get(source, 0.0) + pos.net_mwm * price * bucket.hours
            financial += pos.financial_result(bucket.hours)
        extra = 0.0
        for source, n_mwm in net.items():
            price = mtm[source] / (n_mwm * bucket.hours) if n_mwm != 0 else forward[source]
            extra += source_stress_loss(n_mwm, price, bucket)
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
    PLD cap (when the week sets them) and parallel shifts of the curve in R$/MWh (floored at 0).

    At the floor or the cap every price source is at that price (spreads 0, no published
    curves); a shift moves the submarkets' curves and the published curves alike."""
    portfolio, parameters = _coerce(portfolio, parameters)
    scenarios: dict[str, RiskParameters] = {}
    zeros = (0.0,) * BUCKET_COUNT
    for name, level in (("pld_floor", parameters.pld_floor), ("pld_cap", parameters.pld_cap)):
        if level is not None:
            scenarios[name] = replace(
                parameters.with_forward_prices(
                    {s: [level] * BUCKET_COUNT for s in parameters.forward_prices}
                ),
                energy_spreads=dict.fromkeys(parameters.energy_types, zeros),
                contract_spreads=dict.fromkeys(CONTRACT_TYPES, zeros),
                forward_curves={},
            )
    for shift in shifts:

        def moved(curve: Sequence[float], shift: float = shift) -> tuple[float, ...]:
            return tuple(max(0.0, p + shift) for p in curve)

        scenarios[f"shift_{shift:+g}"] = replace(
            parameters,
            forward_prices={s: moved(c) for s, c in parameters.forward_prices.items()},
            forward_curves={k: moved(c) for k, c in parameters.forward_curves.items()},
        )
    results = {"base": leverage_factor(portfolio, parameters)}
    for name, scenario in scenarios.items():
        results[name] = leverage_factor(portfolio, scenario)
    return results
