"""Validation of decrypted payloads: JSON Schema (draft 2020-12) first, then business rules.

The schemas and the rules are ``prudencial.domain.formats``' (docs/formats.md): the schemas are
generated there for the week's energy types and compiled here once per tuple of types (jsonschema,
and the fast validator below for the common valid case); the business rules and the agent/week
binding are ``formats.rule_errors``. Only ``prudencial/portfolio/v2`` and
``prudencial/counterparties/v2`` are accepted; a v1 payload is refused with a rule saying so.

Every error is ``{"field", "row", "rule"}``: the field path (``contracts[3].amount_brl``), the row
(1-based item number for JSON, the Excel row for the XLSX template, whose sheet the field names)
and the rule broken, built only from the schema and the rules themselves. jsonschema's own
messages quote the offending value, so they are never passed on.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from enclave_bridge.wire.protocol import (
    E_BAD_REQUEST,
    MAX_JSON_VALUES,
    ProtocolError,
    strict_json_loads,
)
from prudencial.domain import formats
from prudencial.domain.market import BUCKET_COUNT

from .registry import parse_entries

KINDS = formats.KINDS
SCHEMA_IDS = formats.SCHEMA_IDS
ROW_LISTS = formats.ROW_LISTS
MAX_ERRORS = formats.MAX_ERRORS
DEFAULT_TYPES = formats.DEFAULT_ENERGY_TYPES


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


@lru_cache(maxsize=32)
def _schema_json(kind: str, energy_types: tuple[str, ...]) -> str:
    return json.dumps(formats.json_schema(kind, energy_types), ensure_ascii=False, indent=2)


def schema(kind: str, energy_types: Iterable[str] = DEFAULT_TYPES) -> dict[str, Any]:
    """The payload kind's JSON Schema for the week's energy types (a fresh copy)."""
    return json.loads(_schema_json(kind, tuple(energy_types)))


def schema_text(kind: str, energy_types: Iterable[str] = DEFAULT_TYPES) -> str:
    return _schema_json(kind, tuple(energy_types))


@lru_cache(maxsize=32)
def _validator(kind: str, energy_types: tuple[str, ...]) -> Draft202012Validator:
    compiled = schema(kind, energy_types)
    Draft202012Validator.check_schema(compiled)
    return Draft202012Validator(compiled)


def validator(kind: str, energy_types: Iterable[str] = DEFAULT_TYPES) -> Draft202012Validator:
    """Compiled schema for a payload kind and a week's energy types (cached per tuple)."""
    return _validator(kind, tuple(energy_types))


@lru_cache(maxsize=32)
def _fast_validator(kind: str, energy_types: tuple[str, ...]) -> Callable[[Any], bool]:
    compiled = schema(kind, energy_types)
    return _compile(compiled, compiled)


def fast_validator(kind: str, energy_types: Iterable[str] = DEFAULT_TYPES) -> Callable[[Any], bool]:
    """The same schema compiled to plain closures: answers only "valid or not", ~20x faster than
    jsonschema's iter_errors. A valid payload (the common case) never reaches jsonschema; an
    invalid one is re-checked by jsonschema for the error list, so jsonschema stays the
    reference. Keywords outside the supported subset make compilation fail loudly."""
    return _fast_validator(kind, tuple(energy_types))


_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "examples", "$comment"}
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
    kinds = kind if isinstance(kind, list) else [kind]
    allowed = _GENERAL_KEYWORDS | _ANNOTATIONS
    for name in kinds:
        allowed |= _TYPED_KEYWORDS.get(name, set())
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
        if all(isinstance(x, str) for x in options):
            # Only a str equals a str: a set lookup is the same test as _same over the options
            # (the codes of contracts and forecasts are most of a payload's values).
            strings = frozenset(options)
            parts.append(lambda v: isinstance(v, str) and v in strings)
        else:
            parts.append(lambda v: any(_same(v, x) for x in options))
    if "const" in node:
        const = node["const"]
        parts.append(lambda v: _same(v, const))
    if isinstance(kind, list):  # e.g. ["string", "null"]: any one of the types, with its keywords
        options = [_typed(name, node, root) for name in kind]
        parts.append(lambda v: any(check(v) for check in options))
    elif kind is not None:
        parts.append(_typed(kind, node, root))
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda v: first(v) and second(v)
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
        return f"must be of type {expected}", None  # a list prints as formats' walker prints it
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


def _schema_errors(
    kind: str, payload: Any, energy_types: tuple[str, ...], errors: formats.Errors
) -> None:
    # At most MAX_ERRORS + 1 errors are built (iter_errors is lazy): the report is cut there anyway.
    first = itertools.islice(validator(kind, energy_types).iter_errors(payload), MAX_ERRORS + 1)
    for error in sorted(first, key=lambda e: [str(p) for p in e.absolute_path]):
        parts = list(error.absolute_path)
        rule, missing = _rule(error)
        if missing:
            parts.append(missing)
        errors.add(tuple(parts), rule)


MAX_ENERGY_TYPES = 64  # codes in one week's list: bounds the schemas compiled per request


def check_energy_types(raw: Any, name: str = "energy_types") -> tuple[str, ...]:
    """A week's energy types from the host: absent, the documented default; present, a list of
    at most MAX_ENERGY_TYPES codes under the domain's rule (``formats.check_energy_types``, the
    one the schemas and the sheets use)."""
    if raw is None:
        return DEFAULT_TYPES
    rule = (
        f"{name} must list 1 to {MAX_ENERGY_TYPES} energy type codes "
        "(lower case, digits, _), each once"
    )
    if (
        not isinstance(raw, list | tuple)
        or len(raw) > MAX_ENERGY_TYPES
        or not all(isinstance(code, str) for code in raw)  # set() below needs hashable items
    ):
        raise ProtocolError(E_BAD_REQUEST, rule)
    try:
        return formats.check_energy_types(raw)
    except ValueError:
        raise ProtocolError(E_BAD_REQUEST, rule) from None


def check_bucket_labels(raw: Any, name: str = "bucket_labels") -> tuple[str, ...] | None:
    """The week's month labels (the XLSX template's), one per bucket, 1-20 characters each;
    None when the host sends none."""
    if raw is None:
        return None
    if (
        not isinstance(raw, list | tuple)
        or len(raw) != BUCKET_COUNT
        or not all(isinstance(x, str) and 0 < len(x) <= 20 for x in raw)
    ):
        raise ProtocolError(
            E_BAD_REQUEST, f"{name} must list {BUCKET_COUNT} labels of 1-20 characters"
        )
    return tuple(raw)


def _check_registry(registry: Any) -> dict[str, str] | None:
    """An inline registry (CNPJ → acronym), under the rules of a staged one (registry.py)."""
    if registry is None:
        return None
    if not isinstance(registry, dict):
        raise ProtocolError(E_BAD_REQUEST, "expected.registry must map CNPJ (text) to acronym")
    return parse_entries(
        [{"cnpj": cnpj, "acronym": acronym} for cnpj, acronym in registry.items()],
        name="expected.registry",
    )


def check_expected(expected: Any) -> dict[str, Any]:
    """The host's binding for an envelope: agent + week, and optionally the week's
    ``energy_types``, ``bucket_labels`` (the XLSX months) and the ``registry`` (CNPJ → acronym
    of the registered agents; absent, the counterparties' acronym rule is skipped). Shape
    errors are request errors."""
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
    out: dict[str, Any] = {
        "agent": {"acronym": agent["acronym"], "cnpj": agent["cnpj"]},
        "week": week,
        "energy_types": check_energy_types(expected.get("energy_types"), "expected.energy_types"),
        "registry": _check_registry(expected.get("registry")),
    }
    labels = check_bucket_labels(expected.get("bucket_labels"), "expected.bucket_labels")
    if labels is not None:
        out["bucket_labels"] = labels
    return out


def _summary(kind: str) -> dict[str, Any]:
    """The verdict's summary: the kind only (``errors_truncated`` is added when the error list
    is cut). Counts of contract, forecast or counterparty rows and the months an agent holds
    positions in describe its business and are not the host's to know, so nothing about the
    payload leaves the enclave here."""
    return {"kind": kind}


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


def parse_json(plaintext: bytes, *, max_values: int = MAX_JSON_VALUES) -> Any:
    """Strict JSON: UTF-8, finite numbers only (no NaN/Infinity, no 1e999), checked while parsing;
    no duplicate keys, bounded nesting and at most ``max_values`` values (``JsonRefused`` names
    the rule). One agent's envelope and a batch file (split.py) are read by this same parser."""
    return strict_json_loads(
        plaintext.decode("utf-8"),
        max_values=max_values,
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
    rows: dict[str, Any] | None = None,
    source_errors: list[dict[str, Any]] | None = None,
    finite_checked: bool = False,
) -> Outcome:
    """Schema, then business rules and the agent/week binding (only on a schema-valid payload).

    ``expected`` is check_expected's. ``rows``: the XLSX row map (formats.validate's).
    ``finite_checked``: the parser already refused non-finite numbers (``parse_json`` does).
    """
    types = tuple(expected.get("energy_types") or DEFAULT_TYPES)
    errors = formats.Errors(rows)
    errors.items.extend(source_errors or [])
    if not errors.items:
        retired = formats.RETIRED_SCHEMA_IDS.get(kind, ())
        if isinstance(payload, dict) and payload.get("schema") in retired:
            errors.add(("schema",), f"schema must be {SCHEMA_IDS[kind]}")
        elif not finite_checked and not _finite(payload):
            errors.add(("(payload)",), "numbers must be finite")
        elif not fast_validator(kind, types)(payload):
            _schema_errors(kind, payload, types, errors)
        if not errors.items:
            errors.items.extend(
                formats.rule_errors(
                    kind,
                    payload,
                    agent=expected["agent"],
                    week=expected["week"],
                    registry=expected.get("registry"),
                    rows=rows,
                )
            )
    accepted = not errors.items
    summary = _summary(kind)
    if len(errors.items) > MAX_ERRORS:
        summary["errors_truncated"] = True
    return Outcome(
        status="accepted" if accepted else "rejected",
        errors=errors.items[:MAX_ERRORS],
        digest=digest,
        summary=summary,
        payload=payload if accepted else None,
    )
