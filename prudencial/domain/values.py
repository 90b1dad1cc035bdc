"""Checks of single values shared by the payload parsers; each raises DomainError naming the
field (the risk engine's portfolio and counterparty parsers use them too)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from prudencial.domain.calendar import check_week_code
from prudencial.domain.errors import DomainError


def require_mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DomainError(field, "object", got=type(value).__name__)
    return value


def require_key(data: Mapping[str, Any], key: str, field: str) -> Any:
    if key not in data:
        raise DomainError(f"{field}.{key}", "required")
    return data[key]


def number(value: Any, field: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number, optionally ≥ minimum (or > minimum when strict)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DomainError(field, "number", got=value)
    value = float(value)
    if not math.isfinite(value):
        raise DomainError(field, "finite", got=value)
    if minimum is not None:
        if strict and value <= minimum:
            raise DomainError(field, "minimum_strict", minimum=f"{minimum:g}", got=value)
        if not strict and value < minimum:
            raise DomainError(field, "minimum", minimum=f"{minimum:g}", got=value)
    return value


def integer(value: Any, field: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DomainError(field, "integer", got=value)
    if not low <= value <= high:
        raise DomainError(field, "between", low=low, high=high, got=value)
    return value


def text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DomainError(field, "text", got=value)
    return value.strip()


def choice(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise DomainError(field, "choice", allowed=", ".join(allowed), got=value)
    return value


def week_code(value: Any, field: str) -> str:
    """Weekly reporting event code YYYYMM + 3-digit sequence, e.g. 202303001."""
    return check_week_code(value, field)


def schema(data: Mapping[str, Any], expected: str, field: str) -> None:
    found = data.get("schema", expected)
    if found != expected:
        raise DomainError(f"{field}.schema", "schema", expected=repr(expected), got=found)
