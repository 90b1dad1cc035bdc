"""``fa-preview``: the agent's own leverage factor, computed on its machine before it sends.

Same code as the enclave: the payload is checked with ``prudencial.domain.formats.validate`` and
priced with ``prudencial.risk.leverage.leverage_factor`` (which turns it into the engine's
input with ``formats.engine_portfolio``) under the week's published parameters (parsed and
checked by ``prudencial.domain.parameters.check_week_parameters``, as the enclave parses them).
Nothing is sent anywhere: the only network call is reading the week's public parameters
(``GET /api/v1/weeks/{code}/``), and a parameters file can replace even that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prudencial.domain import formats, sheets
from prudencial.domain.errors import DomainError
from prudencial.domain.parameters import check_week_parameters
from prudencial.risk.leverage import leverage_factor

from .envelope import LocalFile
from .errors import PayloadError
from .local import acronym_of, payloads_of

# Parameters the engine reads besides the bucket table: passed through as the week publishes
# them (energy types and the price-source rule of docs/formats.md, when the week has them).
PASSTHROUGH = (
    "energy_types",
    "energy_spreads",
    "contract_spreads",
    "forward_curves",
    "pld_history",
)
_NUMBER_FIELDS = ("confidence", "pld_floor", "pld_cap", "k", "theta")
_BUCKET_NUMBERS = ("volatility", "stress_price_long", "stress_price_short")


def _float(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # the API writes decimals as text ("0.9500")
        except ValueError:
            return value
    return value


def engine_parameters(week: Mapping[str, Any]) -> dict[str, Any]:
    """The week as ``GET /weeks/{code}/`` publishes it → the parameters payload the enclave
    computes with (the shape ``prudencial.services.parameters.parameters_payload`` ships).

    The API lists each bucket's forward prices by submarket; the engine takes a curve per
    submarket. A week that already publishes the engine's payload (``parameters.week`` set and
    ``forward_prices`` by submarket) is used as it is."""
    params = week.get("parameters")
    if not isinstance(params, Mapping):
        raise PayloadError("no_parameters", week=str(week.get("code", "")))
    if isinstance(params.get("forward_prices"), Mapping) and params.get("week"):
        return dict(params)
    buckets = sorted(params.get("buckets") or [], key=lambda b: b.get("index", 0))
    submarkets: list[str] = []
    for b in buckets:
        for sm in b.get("forward_prices") or {}:
            if sm not in submarkets:
                submarkets.append(sm)
    out: dict[str, Any] = {
        "week": week.get("code"),
        "confidence": _float(params.get("confidence")),
        "liquidation_days": _float(params.get("liquidation_days")),
        "sigma_period": params.get("sigma_period", "daily"),
        "netting": params.get("netting", "absolute_per_source"),
        "buckets": [
            {
                "index": b.get("index"),
                "label": b.get("label", ""),
                "hours": b.get("hours"),
                **{name: _float(b.get(name)) for name in _BUCKET_NUMBERS},
            }
            for b in buckets
        ],
        "correlation": [[_float(v) for v in row] for row in params.get("correlation") or []],
        "forward_prices": {
            sm: [_float((b.get("forward_prices") or {}).get(sm)) for b in buckets]
            for sm in submarkets
        },
    }
    for name in _NUMBER_FIELDS:
        if name in params:
            out[name] = _float(params[name])
    for name in PASSTHROUGH:
        if params.get(name) is not None:
            out[name] = params[name]
    return out


@dataclass(frozen=True)
class Preview:
    """The agent's FA as the enclave would compute it, or the errors that would refuse it."""

    agent: dict[str, str] | None
    week: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    fa: float | None = None
    fa_risk: float | None = None
    reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "week": self.week,
            "errors": self.errors,
            "fa": self.fa,
            "fa_risk": self.fa_risk,
            "reason": self.reason,
            "figures": self.figures,
        }


def _energy_types(parameters: Mapping[str, Any]) -> tuple[str, ...]:
    types = parameters.get("energy_types")
    return tuple(types) if types else formats.DEFAULT_ENERGY_TYPES


def parse_parameters(parameters: Mapping[str, Any]) -> Any:
    try:
        return check_week_parameters(dict(parameters))
    except DomainError as exc:
        raise PayloadError("bad_parameters", reason=str(exc)) from None


def fa_preview(
    payload: Mapping[str, Any],
    parameters: Mapping[str, Any],
    *,
    rows: Mapping[str, Any] | None = None,
) -> Preview:
    """FA of ``payload`` (a v2 portfolio) under the week's parameters payload."""
    parsed = parse_parameters(parameters)
    who = payload.get("agent") if isinstance(payload, Mapping) else None
    agent = (
        {"acronym": str(who.get("acronym", "")), "cnpj": str(who.get("cnpj", ""))}
        if isinstance(who, Mapping)
        else None
    )
    errors = formats.validate(
        "portfolio",
        payload,
        agent=agent or {"acronym": "", "cnpj": ""},
        week=parsed.week,
        energy_types=_energy_types(parameters),
        registry=None,
        rows=rows,
    )
    if errors:
        return Preview(agent, parsed.week, errors=errors)
    # The enclave's call, exactly (enclave_bridge/enclave/checks.py): the v2 payload goes in
    # and the engine converts it with formats.engine_portfolio.
    result = leverage_factor(dict(payload), parsed)
    figures = result.to_dict()
    return Preview(
        agent,
        parsed.week,
        fa=result.fa,
        fa_risk=result.fa_risk,
        reason=result.reason,
        figures={
            k: figures[k]
            for k in ("var_total", "rwa", "res_fin", "pla", "extra_risk", "z", "horizon_factor")
        }
        | {
            "buckets": [
                {"label": b["label"], "mtm_total": b["mtm_total"], "var": b["var"]}
                for b in figures["buckets"]
            ]
        },
    )


def preview_file(
    file: LocalFile, parameters: Mapping[str, Any], *, agent: str | None = None
) -> tuple[list[Preview], list[dict[str, Any]]]:
    """The previews of every portfolio in the file (or only ``agent``'s, by acronym)."""
    found, errors = payloads_of(
        "portfolio",
        file,
        week=str(parameters.get("week")),
        bucket_labels=sheets.labels_of(parameters),
        energy_types=_energy_types(parameters),
    )
    out = []
    for payload, rows in found:
        if agent is not None and acronym_of(payload) != agent:
            continue
        out.append(fa_preview(payload, parameters, rows=rows))
    return out, errors
