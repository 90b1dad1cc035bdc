"""Validation of decrypted payloads: JSON Schema (draft 2020-12) first, then business rules.

Every error is ``{"field", "row", "rule"}``: the field path (``positions[3].resource_mwm``), the row
(1-based item number for JSON, the Excel row for the XLSX template) and the rule broken, built
only from the schema and the rules themselves. jsonschema's own messages quote the offending value,
so they are never passed on.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from enclave_bridge.wire.protocol import E_BAD_REQUEST, ProtocolError, strict_json_loads
from prudencial.domain.identifiers import cnpj_is_valid
from prudencial.domain.market import BUCKETS

KINDS = ("portfolio", "counterparties")
SCHEMA_IDS = {
    "portfolio": "prudencial/portfolio/v1",
    "counterparties": "prudencial/counterparties/v1",
}
ROW_LISTS = {"portfolio": "positions", "counterparties": "counterparties"}
MAX_ERRORS = 200


@dataclass
class Outcome:
    """Result of validating one payload. ``payload`` is kept in enclave memory only."""

    status: str
    errors: list[dict[str, Any]]
    digest: str
    summary: dict[str, Any]
    payload: dict[str, Any] | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        """What may leave the enclave (no values)."""
        return {
            "status": self.status,
            "errors": self.errors,
            "digest": self.digest,
            "summary": self.summary,
        }


@cache
def validator(kind: str) -> Draft202012Validator:
    """Compiled schema for a payload kind (loaded once per process)."""
    text = resources.files(__package__).joinpath("schemas", f"{kind}.json").read_text("utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def fast_validator(kind: str) -> Callable[[Any], bool]:
    """The same schema compiled to plain closures: answers only "valid or not", ~20x faster than
    jsonschema's iter_errors. A valid payload (the common case) never reaches jsonschema; an
    invalid one is re-checked by jsonschema for the error list, so jsonschema stays the
    reference. Keywords outside the supported subset make compilation fail loudly."""
    schema = json.loads(schema_text(kind))
    return _compile(schema, schema)


_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description"}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


_TYPED_KEYWORDS = {
    "object": {"required", "properties", "additionalProperties"},
    "array": {"items", "minItems", "maxItems"},
    "string": {"minLength", "maxLength", "pattern"},
    "number": {"minimum", "maximum"},
    "integer": {"minimum", "maximum"},
}
_GENERAL_KEYWORDS = {"$ref", "enum", "const", "type"}


def _compile(node: dict[str, Any], root: dict[str, Any]) -> Callable[[Any], bool]:
    """One closure per schema node; type-specific keywords are checked only under their type."""
    kind = node.get("type")
    allowed = _GENERAL_KEYWORDS | _ANNOTATIONS | _TYPED_KEYWORDS.get(kind, set())
    unknown = sorted(set(node) - allowed)
    if unknown:
        raise ValueError(f"schema keyword(s) {unknown} unsupported by the fast validator here")
    parts: list[Callable[[Any], bool]] = []
    if "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref}")
        parts.append(_compile(root["$defs"][ref.removeprefix("#/$defs/")], root))
    if "enum" in node:
        options = tuple(node["enum"])
        parts.append(lambda v: any(_same(v, x) for x in options))
    if "const" in node:
        const = node["const"]
        parts.append(lambda v: _same(v, const))
    if kind is not None:
        parts.append(_typed(kind, node, root))
    if len(parts) == 1:
        return parts[0]
    return lambda v: all(part(v) for part in parts)


def _typed(kind: str, node: dict[str, Any], root: dict[str, Any]) -> Callable[[Any], bool]:
    if kind == "object":
        required = frozenset(node.get("required", ()))
        props = {name: _compile(sub, root) for name, sub in node.get("properties", {}).items()}
        closed = node.get("additionalProperties", True)
        if closed not in (True, False):
            raise ValueError("additionalProperties must be true or false")
        names = frozenset(props)

        def check_object(v: Any) -> bool:
            if not isinstance(v, dict):
                return False
            keys = v.keys()
            if not required <= keys or (closed is False and not keys <= names):
                return False
            for key, value in v.items():
                check = props.get(key)
                if check is not None and not check(value):
                    return False
            return True

        return check_object
    if kind == "array":
        low, high = node.get("minItems", 0), node.get("maxItems")
        item = _compile(node["items"], root) if "items" in node else None

        def check_array(v: Any) -> bool:
            if not isinstance(v, list) or len(v) < low or (high is not None and len(v) > high):
                return False
            return item is None or all(item(x) for x in v)

        return check_array
    if kind == "string":
        shortest, longest = node.get("minLength", 0), node.get("maxLength")
        regex = re.compile(node["pattern"]) if "pattern" in node else None

        def check_string(v: Any) -> bool:
            if not isinstance(v, str) or len(v) < shortest:
                return False
            if longest is not None and len(v) > longest:
                return False
            return regex is None or regex.search(v) is not None

        return check_string
    if kind in ("number", "integer"):
        is_type = _TYPES[kind]
        low, high = node.get("minimum"), node.get("maximum")

        def check_number(v: Any) -> bool:
            if not is_type(v):
                return False
            return (low is None or v >= low) and (high is None or v <= high)

        return check_number
    if kind in _TYPES:
        return _TYPES[kind]
    raise ValueError(f"unsupported type {kind!r}")


def _same(a: Any, b: Any) -> bool:
    """JSON equality for scalars: booleans are not numbers."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def schema_text(kind: str) -> str:
    return resources.files(__package__).joinpath("schemas", f"{kind}.json").read_text("utf-8")


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _rule(error: ValidationError) -> tuple[str, str | None]:
    """Describe a schema violation from the schema side only; may refine the field name."""
    v, expected = error.validator, error.validator_value
    if v == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in expected if name not in present]
        return "is required", missing[0] if missing else None
    if v == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys())
        return f"has a property that is not allowed (allowed: {', '.join(allowed)})", None
    if v == "type":
        return f"must be of type {expected}", None
    if v == "minimum":
        return f"must be ≥ {expected:g}", None
    if v == "maximum":
        return f"must be ≤ {expected:g}", None
    if v == "enum":
        return f"must be one of {', '.join(map(str, expected))}", None
    if v == "const":
        return f"must be {expected}", None
    if v == "pattern":
        return f"must match the pattern {expected}", None
    if v == "minItems":
        return f"must have at least {expected} item(s)", None
    if v == "maxItems":
        return f"must have at most {expected} item(s)", None
    if v == "minLength":
        return f"must have at least {expected} character(s)", None
    if v == "maxLength":
        return f"must have at most {expected} character(s)", None
    return f"violates the schema rule {v}", None


class ErrorList:
    """Collects errors, attaching rows from the row map, and caps their number."""

    def __init__(self, kind: str, rows: dict[int, int] | None) -> None:
        self.kind = kind
        self.rows = rows
        self.items: list[dict[str, Any]] = []
        self.truncated = False

    def row_of(self, index: int | None) -> int | None:
        if index is None:
            return None
        if self.rows is not None:
            return self.rows.get(index)
        return index + 1

    def add(self, field_path: str, rule: str, index: int | None = None) -> None:
        if len(self.items) >= MAX_ERRORS:
            self.truncated = True
            return
        self.items.append({"field": field_path, "row": self.row_of(index), "rule": rule})


def _schema_errors(kind: str, payload: Any, errors: ErrorList) -> None:
    row_list = ROW_LISTS[kind]
    # At most MAX_ERRORS + 1 errors are built (iter_errors is lazy): the report is cut there anyway.
    first = itertools.islice(validator(kind).iter_errors(payload), MAX_ERRORS + 1)
    for error in sorted(first, key=lambda e: list(e.path)):
        parts = list(error.absolute_path)
        rule, missing = _rule(error)
        if missing:
            parts.append(missing)
        index = parts[1] if len(parts) > 1 and parts[0] == row_list else None
        errors.add(_path(parts) or "(payload)", rule, index if isinstance(index, int) else None)


def _portfolio_rules(payload: dict[str, Any], errors: ErrorList) -> None:
    seen: dict[tuple[Any, ...], int] = {}
    for i, pos in enumerate(payload["positions"]):
        key = (pos["bucket"], pos["submarket"], pos["energy_type"])
        if key in seen:
            errors.add(
                f"positions[{i}]",
                f"duplicates positions[{seen[key]}]: one row per (bucket, submarket, energy_type)",
                i,
            )
        else:
            seen[key] = i
        if pos["resource_mwm"] > 0 and not pos["avg_purchase_price"] > 0:
            errors.add(f"positions[{i}].avg_purchase_price", "must be > 0 when resource_mwm > 0", i)
        if pos["requirement_mwm"] > 0 and not pos["avg_sale_price"] > 0:
            errors.add(f"positions[{i}].avg_sale_price", "must be > 0 when requirement_mwm > 0", i)


def _counterparty_rules(payload: dict[str, Any], errors: ErrorList) -> None:
    own = payload["agent"]["cnpj"]
    seen: dict[str, int] = {}
    for i, cp in enumerate(payload["counterparties"]):
        cnpj = cp["cnpj"]
        if not cnpj_is_valid(cnpj):
            errors.add(f"counterparties[{i}].cnpj", "must have valid CNPJ check digits", i)
        if cnpj == own:
            errors.add(f"counterparties[{i}].cnpj", "must not be the agent's own CNPJ", i)
        if cnpj in seen:
            errors.add(
                f"counterparties[{i}].cnpj",
                f"duplicates counterparties[{seen[cnpj]}]: one entry per counterparty",
                i,
            )
        else:
            seen[cnpj] = i


def _binding_rules(payload: dict[str, Any], expected: dict[str, Any], errors: ErrorList) -> None:
    agent = payload["agent"]
    if not cnpj_is_valid(agent["cnpj"]):
        errors.add("agent.cnpj", "must have valid CNPJ check digits")
    want = expected["agent"]
    if agent["acronym"] != want["acronym"] or agent["cnpj"] != want["cnpj"]:
        errors.add("agent", "must be the agent this envelope was submitted for")
    if payload["week"] != expected["week"]:
        errors.add("week", "must be the week this envelope was submitted for")


def check_expected(expected: Any) -> dict[str, Any]:
    """The host's binding (agent + week) for an envelope; shape errors are request errors."""
    if not isinstance(expected, dict):
        raise ProtocolError(E_BAD_REQUEST, "expected must be a map with agent and week")
    agent, week = expected.get("agent"), expected.get("week")
    if (
        not isinstance(agent, dict)
        or not isinstance(agent.get("acronym"), str)
        or not isinstance(agent.get("cnpj"), str)
    ):
        raise ProtocolError(E_BAD_REQUEST, "expected.agent must have acronym and cnpj (text)")
    if not isinstance(week, str):
        raise ProtocolError(E_BAD_REQUEST, "expected.week must be text")
    return {"agent": {"acronym": agent["acronym"], "cnpj": agent["cnpj"]}, "week": week}


def _summary(kind: str, payload: Any, *, accepted: bool) -> dict[str, Any]:
    """Counts only; the list of buckets only for an accepted payload, where every bucket is one
    of 0–6 (a rejected payload's values, even integers, never leave the enclave)."""
    if not isinstance(payload, dict):
        return {"kind": kind}
    items = payload.get(ROW_LISTS[kind])
    count = len(items) if isinstance(items, list) else 0
    if kind == "portfolio":
        summary = {"kind": kind, "positions": count}
        if accepted and isinstance(items, list):
            summary["buckets"] = sorted({p["bucket"] for p in items if p.get("bucket") in BUCKETS})
        return summary
    return {"kind": kind, "counterparties": count}


def _reject_constant(name: str) -> float:
    raise ValueError("non-finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("non-finite number")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 300:  # beyond any float: would overflow the risk engine's arithmetic
        raise ValueError("integer too large")
    return int(text)


def parse_json(plaintext: bytes) -> Any:
    """Strict JSON: UTF-8, finite numbers only (no NaN/Infinity, no 1e999), checked while parsing;
    no duplicate keys and bounded nesting (``JsonRefused`` names the rule)."""
    return strict_json_loads(
        plaintext.decode("utf-8"),
        parse_constant=_reject_constant,
        parse_float=_finite_float,
        parse_int=_bounded_int,
    )


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def validate_payload(
    kind: str,
    payload: Any,
    expected: dict[str, Any],
    *,
    digest: str,
    rows: dict[int, int] | None = None,
    source_errors: list[dict[str, Any]] | None = None,
    finite_checked: bool = False,
) -> Outcome:
    """Schema, then business rules and the agent/week binding (only on a schema-valid payload).

    ``finite_checked``: the parser already refused non-finite numbers (``parse_json`` does).
    """
    errors = ErrorList(kind, rows)
    for err in source_errors or []:
        errors.items.append(err)
    if not errors.items:
        if not finite_checked and not _finite(payload):
            errors.add("(payload)", "numbers must be finite")
        elif not fast_validator(kind)(payload):
            _schema_errors(kind, payload, errors)
        if not errors.items:
            _binding_rules(payload, expected, errors)
            if kind == "portfolio":
                _portfolio_rules(payload, errors)
            else:
                _counterparty_rules(payload, errors)
    accepted = not errors.items
    summary = _summary(kind, payload, accepted=accepted)
    if errors.truncated:
        summary["errors_truncated"] = True
    return Outcome(
        status="accepted" if accepted else "rejected",
        errors=errors.items,
        digest=digest,
        summary=summary,
        payload=payload if accepted else None,
    )
