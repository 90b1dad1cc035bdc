"""The one error type of the domain package: the field path, the rule broken and its values.

``field`` is a path such as ``parameters.buckets[0].volatility``; ``code`` names the rule (one of
``RULES``) so the host can say it in pt-BR or English; ``params`` fills the rule's placeholders.
``str(error)`` is the English sentence the enclave answers with. Parameters are public, so the
values may appear; payload errors built from these never leave the enclave with a value (the
enclave's validation builds its own value-free errors).
"""

from __future__ import annotations

from typing import Any

#: rule code → English template (the host's pt-BR table in prudencial/services/parameters.py
#: must cover every code; tests/domain checks that it does).
RULES: dict[str, str] = {
    "object": "must be an object",
    "required": "is required",
    "number": "must be a number",
    "finite": "must be finite",
    "minimum": "must be ≥ {minimum}",
    "minimum_strict": "must be > {minimum}",
    "integer": "must be an integer",
    "between": "must be between {low} and {high}",
    "text": "must be a non-empty string",
    "choice": "must be one of {allowed}",
    "week_code": "must look like YYYYMMNNN, e.g. 202303001",
    "schema": "must be {expected}",
    "list": "must be a list",
    "length": "must list {n} values (M+0 … M+6)",
    "open_unit_interval": "must be in (0, 1)",
    "bucket_order": "must be {n} (buckets in order M+0 … M+6)",
    "floor_below_cap": "must be < pld_cap",
    "matrix": "must be a {n}×{n} matrix of numbers",
    "correlation_range": "must be in [-1, 1]",
    "unit_diagonal": "must be 1 (unit diagonal)",
    "symmetric": "must be symmetric",
    "positive_semidefinite": "must be positive semi-definite (smallest eigenvalue {smallest})",
    "stress_price_required": "is required when theta > 0",
    "month_hours": "must be the hours of a month (672, 696, 720 or 744)",
    "volatility_range": "must be in (0, 1]",
    "within_pld_bounds": "must lie between the PLD floor and cap",
    "at_most": "must be at most {maximum}",
    "price_history": "must list 1 to {n} weekly prices, each between 0 and {maximum} R$/MWh",
    "agent_class": "must be one of {allowed}",
    "energy_types": "must list energy type codes (lower case, digits and _), each once",
    "curve_key": "must be submarket/energy_type or submarket/energy_type/contract_type, "
    "with the week's energy types",
    "unpriced_source": "is required: the week has neither a curve nor a spread for it",
    "zero_by_definition": "must be 0 (conventional is the submarket's curve by definition)",
    "no_network_class": "is {agent_class}: distributors are exempt from reporting and have no "
    "network class",
    # Alert parameters (prudencial/domain/alerts.py).
    "band_count": "must list 1 to {n} bands",
    "band_code": "must be a band code (lower case letter, then lower case, digits or _), each once",
    "band_order": "must be greater than the previous band's start ({previous})",
    "alert_band": "must keep the bands in increasing order (it moves the '{band}' band's start)",
    "limit_order": "must not exceed the five largest counterparties' limit ({other})",
    "threshold_band": "must equal the start of the '{band}' band ({start})",
}


_NOTHING = object()


class DomainError(ValueError):
    """A value the regulation's rules refuse, naming the field and the rule."""

    def __init__(self, field: str, code: str, *, got: Any = _NOTHING, **params: Any) -> None:
        if code not in RULES:
            raise KeyError(f"unknown rule code {code!r}")
        self.field = field
        self.code = code
        self.params = params
        self.rule = RULES[code].format(**params)
        suffix = "" if got is _NOTHING else f" (got {got!r})"
        super().__init__(f"{field} {self.rule}{suffix}")
