"""Small checks shared by the payload parsers; every message names the offending field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

WEEK_PATTERN = re.compile(r"^\d{4}(0[1-9]|1[0-2])\d{3}$")


def require_mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{field} must be an object (got {type(value).__name__})")
    return value


def require_key(data: Mapping[str, Any], key: str, field: str) -> Any:
    if key not in data:
        raise ValueError(f"{field}.{key} is required")
    return data[key]


def number(value: Any, field: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number, optionally ≥ minimum (or > minimum when strict)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number (got {value!r})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{field} must be finite (got {value})")
    if minimum is not None:
        if strict and value <= minimum:
            raise ValueError(f"{field} must be > {minimum:g} (got {value:g})")
        if not strict and value < minimum:
            raise ValueError(f"{field} must be ≥ {minimum:g} (got {value:g})")
    return value


def integer(value: Any, field: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an integer (got {value!r})")
    if not low <= value <= high:
        raise ValueError(f"{field} must be between {low} and {high} (got {value})")
    return value


def text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string (got {value!r})")
    return value.strip()


def choice(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def week_code(value: Any, field: str) -> str:
    """Weekly reporting event code YYYYMM + 3-digit sequence, e.g. 202303001."""
    if not isinstance(value, str) or not WEEK_PATTERN.match(value):
        raise ValueError(f"{field} must look like YYYYMMNNN, e.g. 202303001 (got {value!r})")
    return value


def schema(data: Mapping[str, Any], expected: str, field: str) -> None:
    found = data.get("schema", expected)
    if found != expected:
        raise ValueError(f"{field}.schema must be {expected!r} (got {found!r})")
