"""The submission formats (REN ANEEL 1.072/2023 art. 135-B): payloads, JSON Schemas and rules.

One definition for the agent's machine, the host and the enclave (docs/formats.md is the spec):

- ``json_schema(kind, energy_types)``: the JSON Schema (draft 2020-12, with an example) of a
  ``portfolio`` (``prudencial/portfolio/v2``) or ``counterparties``
  (``prudencial/counterparties/v2``) payload; ``batch`` gives the batch file's
  (``prudencial/batch/v1``), ``contracts`` the trade network's (``prudencial/contracts/v1``,
  ``contracts_errors``). Plain dicts: the enclave compiles them (jsonschema and its fast
  validator), this module walks them itself (``schema_errors``) so it needs no jsonschema.
- ``validate(kind, payload, ...)``: schema, business rules and the agent/week binding, as a list
  of ``{"field", "row", "rule"}`` built from the schema and the rules only, never from a value.
- ``pla(payload)``, ``engine_portfolio(payload, parameters)``: what the risk engine needs.
- ``canonical_json(obj)``: sorted keys, no spaces, UTF-8, floats as ``json.dumps`` writes them;
  ``normalize(kind, payload)`` writes every ``number`` field as a float (what the XLSX parser
  gives), so a JSON payload and its spreadsheet canonicalise to the same bytes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prudencial.domain.calendar import WEEK_CODE_PATTERN
from prudencial.domain.identifiers import CNPJ_PATTERN, cnpj_is_valid
from prudencial.domain.market import BUCKET_COUNT, SUBMARKETS

PORTFOLIO_SCHEMA_ID = "prudencial/portfolio/v2"
COUNTERPARTIES_SCHEMA_ID = "prudencial/counterparties/v2"
BATCH_SCHEMA_ID = "prudencial/batch/v1"
KINDS = ("portfolio", "counterparties")
SCHEMA_IDS = {"portfolio": PORTFOLIO_SCHEMA_ID, "counterparties": COUNTERPARTIES_SCHEMA_ID}
#: Former ids: refused with a rule that names the one accepted.
RETIRED_SCHEMA_IDS = {
    "portfolio": ("prudencial/portfolio/v1",),
    "counterparties": ("prudencial/counterparties/v1",),
}

SIDES = ("purchase", "sale")
CONTRACT_TYPES = ("fixed_price", "variable_price", "derivative")
#: The week parameter ``energy_types``' documented default.
DEFAULT_ENERGY_TYPES = (
    "conventional",
    "conventional_special",
    "incentivized_50",
    "incentivized_80",
    "incentivized_100",
    "qualified_cogeneration",
)
EQUITY_FIELDS = ("equity_brl",)
DEDUCTION_FIELDS = (
    "goodwill_net_of_deferred_tax_brl",
    "intangibles_brl",
    "sector_stakes_brl",
    "financial_stakes_brl",
    "tax_credits_brl",
)
CONTRACT_KEY = ("bucket", "side", "contract_type", "energy_type", "submarket")
FORECAST_KEY = ("bucket", "submarket", "energy_type")
MAX_COUNTERPARTIES = 5
VOLUME_MONTHS = 3
MAX_MITIGANTS_CHARS = 500
ENERGY_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"  # a week's energy type code
#: Bounds that keep the engine's arithmetic finite (Brazil's load is ~80,000 MWm).
MAX_MWM = 1_000_000.0
MAX_BRL = 1e13
MAX_ERRORS = 200

#: Sheet of the XLSX template each part of a payload comes from (prudencial.domain.sheets).
SHEET_NAMES = {
    "contracts": "Contratos",
    "forecasts": "Previsões",
    "equity": "PLA",
    "agent": "PLA",
    "regulated_market_revenue_brl": "PLA",
    "counterparties": "Contrapartes",
}
ROW_LISTS = {"portfolio": ("contracts", "forecasts"), "counterparties": ("counterparties",)}


def check_energy_types(energy_types: Iterable[str]) -> tuple[str, ...]:
    """A week's energy types as a tuple: codes like ``incentivized_50``, each once, ≥ 1."""
    types = tuple(energy_types)
    shape = re.compile(ENERGY_TYPE_PATTERN)
    if (
        not types
        or len(set(types)) != len(types)
        or not all(isinstance(t, str) and shape.match(t) for t in types)
    ):
        raise ValueError(
            "energy_types must list at least one code (lower case, digits, _), each once"
        )
    return types


def max_contract_rows(n_types: int) -> int:
    return BUCKET_COUNT * len(SIDES) * len(CONTRACT_TYPES) * n_types * len(SUBMARKETS)


def max_forecast_rows(n_types: int) -> int:
    return BUCKET_COUNT * n_types * len(SUBMARKETS)


# --- JSON Schemas --------------------------------------------------------------------------------


def _number(minimum: float, maximum: float, description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": minimum, "maximum": maximum, "description": description}


def _defs() -> dict[str, Any]:
    return {
        "agent": {
            "type": "object",
            "required": ["acronym", "cnpj"],
            "additionalProperties": False,
            "properties": {
                "acronym": {"type": "string", "minLength": 1, "maxLength": 40},
                "cnpj": {"type": "string", "pattern": CNPJ_PATTERN},
            },
        },
        "week": {
            "type": "string",
            "pattern": WEEK_CODE_PATTERN,
            "description": "YYYYMM + 3-digit sequence",
        },
        "bucket": {
            "type": "integer",
            "minimum": 0,
            "maximum": BUCKET_COUNT - 1,
            "description": "M+0..M+6 of the week (labels like MAR/2023)",
        },
        "submarket": {"enum": list(SUBMARKETS), "description": "SE is SE/CO"},
    }


def _portfolio_schema(types: tuple[str, ...]) -> dict[str, Any]:
    energy = {"enum": list(types), "description": "one of the week's energy types"}
    mwm = lambda d: _number(0, MAX_MWM, d)  # noqa: E731
    brl = lambda d: _number(0, MAX_BRL, d)  # noqa: E731
    equity_props = {"equity_brl": _number(-MAX_BRL, MAX_BRL, "Patrimônio líquido, R$")}
    equity_props |= {
        name: brl(f"deduction from equity, R$ (≥ 0): {name}") for name in DEDUCTION_FIELDS
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://ccee.example/schemas/{PORTFOLIO_SCHEMA_ID}.json",
        "title": f"Portfólio ({PORTFOLIO_SCHEMA_ID})",
        "description": "An agent's forward portfolio for one weekly event: contracts bought and "
        "sold per month bucket M+0..M+6, contract type, energy type and submarket, with their "
        "value in R$; generation and consumption forecasts; the equity parts from which PLA "
        "follows.",
        "type": "object",
        "required": [
            "schema",
            "agent",
            "week",
            "contracts",
            "forecasts",
            "equity",
            "regulated_market_revenue_brl",
        ],
        "additionalProperties": False,
        "properties": {
            "schema": {"const": PORTFOLIO_SCHEMA_ID},
            "agent": {"$ref": "#/$defs/agent"},
            "week": {"$ref": "#/$defs/week"},
            "contracts": {
                "type": "array",
                "maxItems": max_contract_rows(len(types)),
                "items": {
                    "type": "object",
                    "required": [*CONTRACT_KEY, "volume_mwm", "amount_brl"],
                    "additionalProperties": False,
                    "properties": {
                        "bucket": {"$ref": "#/$defs/bucket"},
                        "side": {"enum": list(SIDES)},
                        "contract_type": {"enum": list(CONTRACT_TYPES)},
                        "energy_type": energy,
                        "submarket": {"$ref": "#/$defs/submarket"},
                        "volume_mwm": mwm("MWm of the month"),
                        "amount_brl": brl("the month's contracted value, R$ (> 0 with volume)"),
                    },
                },
            },
            "forecasts": {
                "type": "array",
                "maxItems": max_forecast_rows(len(types)),
                "items": {
                    "type": "object",
                    "required": [*FORECAST_KEY, "generation_mwm", "consumption_mwm"],
                    "additionalProperties": False,
                    "properties": {
                        "bucket": {"$ref": "#/$defs/bucket"},
                        "submarket": {"$ref": "#/$defs/submarket"},
                        "energy_type": energy,
                        "generation_mwm": mwm("generation forecast, MWm"),
                        "consumption_mwm": mwm("consumption forecast, MWm"),
                    },
                },
            },
            "equity": {
                "type": "object",
                "required": [*EQUITY_FIELDS, *DEDUCTION_FIELDS],
                "additionalProperties": False,
                "properties": equity_props,
                "description": "PLA = equity_brl − the deductions",
            },
            "regulated_market_revenue_brl": brl("Receita do mercado regulado, R$"),
        },
        "$defs": _defs(),
        "examples": [example_payload("portfolio")],
    }


def _counterparties_schema() -> dict[str, Any]:
    mtm = lambda d: _number(-MAX_BRL, MAX_BRL, d)  # noqa: E731
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://ccee.example/schemas/{COUNTERPARTIES_SCHEMA_ID}.json",
        "title": f"Contrapartes ({COUNTERPARTIES_SCHEMA_ID})",
        "description": "An agent's five largest counterparty exposures for one weekly event, "
        "ranked by mark-to-market over M0..M2 (rank 1 the largest), with the amount mitigated "
        "and, optionally, the volumes traded with each counterparty.",
        "type": "object",
        "required": ["schema", "agent", "week", "counterparties"],
        "additionalProperties": False,
        "properties": {
            "schema": {"const": COUNTERPARTIES_SCHEMA_ID},
            "agent": {"$ref": "#/$defs/agent"},
            "week": {"$ref": "#/$defs/week"},
            "counterparties": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_COUNTERPARTIES,
                "items": {
                    "type": "object",
                    "required": [
                        "rank",
                        "cnpj",
                        "acronym",
                        "mtm_m0_brl",
                        "mtm_m1_brl",
                        "mtm_m2_brl",
                        "mitigation_brl",
                        "mitigants",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "rank": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_COUNTERPARTIES,
                            "description": "1 = largest MtM over M0..M2",
                        },
                        "cnpj": {"type": "string", "pattern": CNPJ_PATTERN},
                        "acronym": {
                            "type": ["string", "null"],
                            "minLength": 1,
                            "maxLength": 40,
                            "description": "the registry's acronym; null when not an agent",
                        },
                        "mtm_m0_brl": mtm("MtM M0, R$"),
                        "mtm_m1_brl": mtm("MtM M1, R$"),
                        "mtm_m2_brl": mtm("MtM M2, R$"),
                        "mitigation_brl": _number(0, MAX_BRL, "Valor mitigado, R$"),
                        "mitigants": {
                            "type": "string",
                            "maxLength": MAX_MITIGANTS_CHARS,
                            "description": "Mitigadores (texto)",
                        },
                        "volume_mwm": {
                            "type": "array",
                            "minItems": VOLUME_MONTHS,
                            "maxItems": VOLUME_MONTHS,
                            "items": _number(-MAX_MWM, MAX_MWM, "MWm"),
                            "description": "MWm M0..M2: + bought from, - sold to the counterparty",
                        },
                    },
                },
            },
        },
        "$defs": _defs(),
        "examples": [example_payload("counterparties")],
    }


def _batch_schema(types: tuple[str, ...]) -> dict[str, Any]:
    """The batch file: the items are checked one by one against their own schemas, so here
    they are objects only (a bad item is that agent's refusal, not the file's)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://ccee.example/schemas/{BATCH_SCHEMA_ID}.json",
        "title": f"Lote ({BATCH_SCHEMA_ID})",
        "description": "Many agents' portfolio and counterparties payloads in one envelope.",
        "type": "object",
        "required": ["schema", "week"],
        "additionalProperties": False,
        "properties": {
            "schema": {"const": BATCH_SCHEMA_ID},
            "week": {"$ref": "#/$defs/week"},
            "portfolios": {"type": "array", "maxItems": 10_000, "items": {"type": "object"}},
            "counterparties": {"type": "array", "maxItems": 10_000, "items": {"type": "object"}},
        },
        "$defs": {"week": _defs()["week"]},
    }


def json_schema(kind: str, energy_types: Iterable[str] = DEFAULT_ENERGY_TYPES) -> dict[str, Any]:
    """The JSON Schema of a payload kind (``portfolio``, ``counterparties``; ``batch`` too) for a
    week's energy types: a fresh dict each call (callers may cache per tuple of types)."""
    types = check_energy_types(energy_types)
    if kind == "portfolio":
        return _portfolio_schema(types)
    if kind == "counterparties":
        return _counterparties_schema()
    if kind == "batch":
        return _batch_schema(types)
    if kind == "contracts":
        return _contracts_schema()
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, batch or contracts")


# --- examples ------------------------------------------------------------------------------------

EXAMPLE_AGENT = {"acronym": "CM47", "cnpj": "11222333000181"}


def example_payload(
    kind: str, *, agent: Mapping[str, str] | None = None, week: str = "202303001"
) -> dict[str, Any]:
    """The example of docs/formats.md (valid under the default energy types)."""
    who = {"acronym": (agent or EXAMPLE_AGENT)["acronym"], "cnpj": (agent or EXAMPLE_AGENT)["cnpj"]}
    if kind == "portfolio":
        return {
            "schema": PORTFOLIO_SCHEMA_ID,
            "agent": who,
            "week": week,
            "contracts": [
                {
                    "bucket": 0,
                    "side": "purchase",
                    "contract_type": "fixed_price",
                    "energy_type": "conventional",
                    "submarket": "SE",
                    "volume_mwm": 10.0,
                    "amount_brl": 1116000.0,
                }
            ],
            "forecasts": [
                {
                    "bucket": 0,
                    "submarket": "SE",
                    "energy_type": "conventional",
                    "generation_mwm": 0.0,
                    "consumption_mwm": 5.0,
                }
            ],
            "equity": {
                "equity_brl": 12000000.0,
                "goodwill_net_of_deferred_tax_brl": 500000.0,
                "intangibles_brl": 300000.0,
                "sector_stakes_brl": 1000000.0,
                "financial_stakes_brl": 0.0,
                "tax_credits_brl": 200000.0,
            },
            "regulated_market_revenue_brl": 0.0,
        }
    if kind == "counterparties":
        return {
            "schema": COUNTERPARTIES_SCHEMA_ID,
            "agent": who,
            "week": week,
            "counterparties": [
                {
                    "rank": 1,
                    "cnpj": "11444777000161",
                    "acronym": "GE12",
                    "mtm_m0_brl": 400000.0,
                    "mtm_m1_brl": 350000.0,
                    "mtm_m2_brl": 300000.0,
                    "mitigation_brl": 200000.0,
                    "mitigants": "Fiança bancária de R$ 200 mil",
                    "volume_mwm": [5.0, 5.0, 5.0],
                }
            ],
        }
    raise ValueError(f"kind must be one of {', '.join(KINDS)}")


# --- the schema walker (the subset the schemas above use) ---------------------------------------

_TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
}


def _same(a: Any, b: Any) -> bool:
    """JSON equality for scalars: booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _join(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _walk(
    node: Mapping[str, Any], value: Any, path: tuple[Any, ...], root: Mapping[str, Any], out: list
):
    """Append (path, rule) for every violation, with the enclave's wording (validation._rule)."""
    if "$ref" in node:
        _walk(root["$defs"][node["$ref"].removeprefix("#/$defs/")], value, path, root, out)
    if "const" in node and not _same(value, node["const"]):
        out.append((path, f"must be {node['const']}"))
    if "enum" in node and not any(_same(value, x) for x in node["enum"]):
        out.append((path, f"must be one of {', '.join(map(str, node['enum']))}"))
    kinds = node.get("type")
    if kinds is None:
        return
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if not any(_TYPE_CHECKS[k](value) for k in kinds):
        expected = kinds[0] if len(kinds) == 1 else kinds
        out.append((path, f"must be of type {expected}"))
        return
    if isinstance(value, dict):
        props = node.get("properties", {})
        for name in node.get("required", ()):
            if name not in value:
                out.append(((*path, name), "is required"))
        if node.get("additionalProperties", True) is False and not set(value) <= set(props):
            allowed = ", ".join(sorted(props))
            out.append((path, f"has a property that is not allowed (allowed: {allowed})"))
        for name, sub in props.items():
            if name in value:
                _walk(sub, value[name], (*path, name), root, out)
    elif isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            out.append((path, f"must have at least {node['minItems']} item(s)"))
        if "maxItems" in node and len(value) > node["maxItems"]:
            out.append((path, f"must have at most {node['maxItems']} item(s)"))
            return  # do not walk an oversized list item by item
        if "items" in node:
            for i, item in enumerate(value):
                _walk(node["items"], item, (*path, i), root, out)
                if len(out) > MAX_ERRORS:
                    return
    elif isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            out.append((path, f"must have at least {node['minLength']} character(s)"))
        if "maxLength" in node and len(value) > node["maxLength"]:
            out.append((path, f"must have at most {node['maxLength']} character(s)"))
        if "pattern" in node and re.search(node["pattern"], value) is None:
            out.append((path, f"must match the pattern {node['pattern']}"))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            out.append((path, "must be a finite number"))
        elif "minimum" in node and value < node["minimum"]:
            out.append((path, f"must be ≥ {node['minimum']:g}"))
        elif "maximum" in node and value > node["maximum"]:
            out.append((path, f"must be ≤ {node['maximum']:g}"))


class Errors:
    """Collects value-free errors; the row is the 1-based item (JSON) or the Excel row."""

    def __init__(self, rows: Mapping[str, Any] | None) -> None:
        self.rows = rows
        self.items: list[dict[str, Any]] = []

    def row(self, part: str | None, index: int | None) -> int | None:
        if part is None:
            return None
        if self.rows is None:
            return None if index is None else index + 1
        where = self.rows.get(part)
        if isinstance(where, Mapping):
            return None if index is None else where.get(index)
        return where if isinstance(where, int) else None

    def add(self, path: tuple[Any, ...], rule: str) -> None:
        if len(self.items) > MAX_ERRORS:
            return
        head = path[0] if path and isinstance(path[0], str) else None
        index = path[1] if len(path) > 1 and isinstance(path[1], int) else None
        text = _join(path) or "(payload)"
        if self.rows is not None and head in SHEET_NAMES:
            text = f"sheet {SHEET_NAMES[head]}: {text}"
        self.items.append({"field": text, "row": self.row(head, index), "rule": rule})


def schema_errors(
    kind: str,
    payload: Any,
    energy_types: Iterable[str] = DEFAULT_ENERGY_TYPES,
    *,
    rows: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The payload against ``json_schema(kind, energy_types)``, without jsonschema; the same
    verdict as jsonschema (tests/domain/test_formats.py holds them equal)."""
    errors = Errors(rows)
    retired = RETIRED_SCHEMA_IDS.get(kind, ())
    if isinstance(payload, dict) and payload.get("schema") in retired:
        errors.add(("schema",), f"schema must be {SCHEMA_IDS[kind]}")
        return errors.items
    found: list[tuple[tuple[Any, ...], str]] = []
    _walk(json_schema(kind, energy_types), payload, (), {"$defs": _defs()}, found)
    for path, rule in sorted(found, key=lambda f: [str(p) for p in f[0]]):
        errors.add(path, rule)
    return errors.items[:MAX_ERRORS]


# --- business rules ------------------------------------------------------------------------------


def _unique(items: list[dict[str, Any]], key: tuple[str, ...], name: str, errors: Errors) -> None:
    seen: dict[tuple[Any, ...], int] = {}
    for i, item in enumerate(items):
        k = tuple(item[f] for f in key)
        if k in seen:
            first = errors.row(name, seen[k])
            errors.add(
                (name, i),
                f"repeats row {first}: one row per ({', '.join(key)})",
            )
        else:
            seen[k] = i


def _portfolio_rules(payload: dict[str, Any], errors: Errors) -> None:
    _unique(payload["contracts"], CONTRACT_KEY, "contracts", errors)
    _unique(payload["forecasts"], FORECAST_KEY, "forecasts", errors)
    for i, row in enumerate(payload["contracts"]):
        if row["volume_mwm"] > 0 and not row["amount_brl"] > 0:
            errors.add(("contracts", i, "amount_brl"), "must be > 0 when volume_mwm > 0")


def mtm_sum(counterparty: Mapping[str, Any]) -> float:
    """Mark-to-market over M0–M2, R$ (the rank's order)."""
    return counterparty["mtm_m0_brl"] + counterparty["mtm_m1_brl"] + counterparty["mtm_m2_brl"]


def _counterparty_rules(
    payload: dict[str, Any], registry: Mapping[str, str] | None, errors: Errors
) -> None:
    own = payload["agent"]["cnpj"]
    items = payload["counterparties"]
    n = len(items)
    seen: dict[str, int] = {}
    ranks: dict[int, int] = {}
    for i, cp in enumerate(items):
        cnpj, rank = cp["cnpj"], int(cp["rank"])
        if not cnpj_is_valid(cnpj):
            errors.add(("counterparties", i, "cnpj"), "must have valid CNPJ check digits")
        if cnpj == own:
            errors.add(("counterparties", i, "cnpj"), "must not be the agent's own CNPJ")
        if cnpj in seen:
            first = errors.row("counterparties", seen[cnpj])
            errors.add(
                ("counterparties", i, "cnpj"), f"repeats row {first}: one row per counterparty"
            )
        else:
            seen[cnpj] = i
        if not 1 <= rank <= n or rank in ranks:
            errors.add(("counterparties", i, "rank"), f"must be 1 to {n}, each rank once")
        else:
            ranks[rank] = i
        if registry is not None:
            known = registry.get(cnpj)
            if known is None and cp["acronym"] is not None:
                errors.add(
                    ("counterparties", i, "acronym"),
                    "must be null: the CNPJ is not a registered agent",
                )
            elif known is not None and cp["acronym"] != known:
                errors.add(
                    ("counterparties", i, "acronym"),
                    "must be the registry's acronym of this CNPJ",
                )
    if len(ranks) == n:
        order = [ranks[r] for r in range(1, n + 1)]
        for higher, lower in zip(order, order[1:], strict=False):
            if mtm_sum(items[lower]) > mtm_sum(items[higher]):
                errors.add(
                    ("counterparties", lower, "rank"),
                    "must follow the mark-to-market over M0–M2, largest first (rank 1)",
                )


def _binding_rules(
    payload: dict[str, Any], agent: Mapping[str, str], week: str, errors: Errors
) -> None:
    declared = payload["agent"]
    if not cnpj_is_valid(declared["cnpj"]):
        errors.add(("agent", "cnpj"), "must have valid CNPJ check digits")
    if declared["acronym"] != agent["acronym"] or declared["cnpj"] != agent["cnpj"]:
        errors.add(("agent",), "must be the agent this envelope was submitted for")
    if payload["week"] != week:
        errors.add(("week",), "must be the week this envelope was submitted for")


def rule_errors(
    kind: str,
    payload: dict[str, Any],
    *,
    agent: Mapping[str, str],
    week: str,
    registry: Mapping[str, str] | None = None,
    rows: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Binding and business rules of a schema-valid payload (``validate`` runs the schema
    first; the enclave runs its compiled schema, then this). ``registry`` (CNPJ → acronym of
    the registered agents) None skips the acronym rule alone."""
    errors = Errors(rows)
    _binding_rules(payload, agent, week, errors)
    if kind == "portfolio":
        _portfolio_rules(payload, errors)
    else:
        _counterparty_rules(payload, registry, errors)
    return errors.items[:MAX_ERRORS]


def validate(
    kind: str,
    payload: Any,
    *,
    agent: Mapping[str, str],
    week: str,
    energy_types: Iterable[str] = DEFAULT_ENERGY_TYPES,
    registry: Mapping[str, str] | None = None,
    rows: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every refusal of a payload as ``{"field", "row", "rule"}`` (empty: accepted).

    ``agent`` {acronym, cnpj} and ``week``: who and when the envelope was submitted for.
    ``rows``: for a payload parsed from the XLSX template, the Excel rows
    (``{"contracts": {index: row}, ..., "equity": row}``); the field then names the sheet.
    Never quotes a value: fields, rows and the rules' own words only.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    found = schema_errors(kind, payload, energy_types, rows=rows)
    if found:
        return found
    return rule_errors(kind, payload, agent=agent, week=week, registry=registry, rows=rows)


# --- figures from a valid payload ----------------------------------------------------------------


def pla(payload: Mapping[str, Any]) -> float:
    """Patrimônio Líquido Ajustado: equity − (goodwill net of deferred tax + intangibles +
    stakes in monitored sector companies + stakes in supervised financial entities + tax
    credits), R$."""
    equity = payload["equity"]
    return float(equity["equity_brl"]) - sum(float(equity[name]) for name in DEDUCTION_FIELDS)


def engine_portfolio(payload: Mapping[str, Any], parameters: Any = None) -> dict[str, Any]:
    """A valid v2 portfolio as the risk engine's input (``prudencial.risk.leverage.Portfolio``).

    One position per (bucket, submarket, energy type, contract type) with the purchases as
    resource and the sales as requirement, priced at F(i, sm, et, ct); one per (bucket,
    submarket, energy type) of the forecasts (generation as resource, consumption as
    requirement), ``contract_type`` None, priced at F_base. ``financial_brl`` is the row's
    declared R$ (sales − purchases), so RES_FIN = Σ sales − Σ purchases + regulated revenue.
    The netting source stays (submarket, energy type). ``parameters`` (RiskParameters or its
    payload), when given, must be the payload's week.
    """
    if parameters is not None:
        week = parameters["week"] if isinstance(parameters, Mapping) else parameters.week
        if week != payload["week"]:
            raise ValueError(
                f"portfolio.week {payload['week']} must be the parameters' week {week}"
            )
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in payload["contracts"]:
        key = (int(row["bucket"]), row["submarket"], row["energy_type"], row["contract_type"])
        pos = merged.setdefault(
            key,
            {
                "bucket": key[0],
                "submarket": key[1],
                "energy_type": key[2],
                "contract_type": key[3],
                "resource_mwm": 0.0,
                "requirement_mwm": 0.0,
                "financial_brl": 0.0,
            },
        )
        volume, amount = float(row["volume_mwm"]), float(row["amount_brl"])
        if row["side"] == "purchase":
            pos["resource_mwm"] += volume
            pos["financial_brl"] -= amount
        else:
            pos["requirement_mwm"] += volume
            pos["financial_brl"] += amount
    for row in payload["forecasts"]:
        key = (int(row["bucket"]), row["submarket"], row["energy_type"], None)
        pos = merged.setdefault(
            key,
            {
                "bucket": key[0],
                "submarket": key[1],
                "energy_type": key[2],
                "contract_type": None,
                "resource_mwm": 0.0,
                "requirement_mwm": 0.0,
                "financial_brl": 0.0,
            },
        )
        pos["resource_mwm"] += float(row["generation_mwm"])
        pos["requirement_mwm"] += float(row["consumption_mwm"])
    return {
        "schema": "prudencial/portfolio/v1",  # the engine's internal position list
        "agent": {"acronym": payload["agent"]["acronym"], "cnpj": payload["agent"]["cnpj"]},
        "week": payload["week"],
        "adjusted_equity": pla(payload),
        "regulated_market_revenue": float(payload["regulated_market_revenue_brl"]),
        "positions": list(merged.values()),
    }


def concentration_input(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The counterparties in rank order (what prudencial.risk.concentration reads)."""
    return sorted(payload["counterparties"], key=lambda cp: cp["rank"])


# --- canonical form --------------------------------------------------------------------------------

_INTEGER_FIELDS = frozenset({"bucket", "rank"})


def _floats(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _floats(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v, key) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if key in _INTEGER_FIELDS:
        return int(value) if isinstance(value, float) and value.is_integer() else value
    return float(value)


def normalize(kind: str, payload: Any) -> Any:
    """Every ``number`` field as a float and ``bucket``/``rank`` as integers (what the XLSX
    parser gives): ``canonical_json(normalize(kind, p))`` is the same bytes for a payload and
    its spreadsheet."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    return _floats(payload)


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 (not ASCII-escaped), floats as json.dumps writes them;
    NaN and infinities refused."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


# --- batch file ------------------------------------------------------------------------------------


def split_batch(doc: Any, *, week: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """A ``prudencial/batch/v1`` document as {acronym: {"portfolio": p|None, "counterparties":
    c|None}} plus the file-level errors (wrong schema or week, an item without an agent
    acronym, an agent twice in one list). The items are validated one by one afterwards."""
    errors = Errors(None)
    found: list[tuple[tuple[Any, ...], str]] = []
    _walk(_batch_schema(DEFAULT_ENERGY_TYPES), doc, (), {"$defs": _defs()}, found)
    for path, rule in found:
        errors.add(path, rule)
    if errors.items:
        return {}, errors.items
    if doc["week"] != week:
        errors.add(("week",), "must be the week this envelope was submitted for")
    out: dict[str, dict[str, Any]] = {}
    for name, kind in (("portfolios", "portfolio"), ("counterparties", "counterparties")):
        for i, item in enumerate(doc.get(name, [])):
            who = item.get("agent")
            acronym = who.get("acronym") if isinstance(who, dict) else None
            if not isinstance(acronym, str) or not acronym:
                errors.add((name, i, "agent", "acronym"), "is required")
                continue
            slot = out.setdefault(acronym, {"portfolio": None, "counterparties": None})
            if slot[kind] is not None:
                errors.add((name, i, "agent"), "repeats an agent of the same list")
                continue
            slot[kind] = item
    return out, errors.items


def iter_row_lists(kind: str) -> Sequence[str]:
    return ROW_LISTS[kind]


# --- trade network (prudencial/contracts/v1) ----------------------------------------------------

CONTRACTS_SCHEMA_ID = "prudencial/contracts/v1"
MAX_TRADE_CONTRACTS = 200_000  # contracts in one prudencial/contracts/v1 document
#: A trade network sent in parts: at most this many documents (``part.count``) in one set.
MAX_TRADE_NETWORK_PARTS = 32
#: The contracts of a whole trade network (every part of a set together), as the enclave opens it.
MAX_TRADE_NETWORK_CONTRACTS = 1_000_000
TRADE_NETWORK_PART_SET_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MONTH_LABEL_PATTERN = r"^[A-Z]{3}/[0-9]{4}$"  # "MAR/2023", the XLSX template's month labels
MAX_PRICE_BRL_MWH = 100_000.0
CONTRACT_COLUMNS = ("seller_cnpj", "buyer_cnpj", "bucket", "month", "volume_mwm", "price_brl_mwh")


def _part_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["set", "index", "count"],
        "additionalProperties": False,
        "description": "one part of a trade network sent in parts: the set's id, this part's "
        "index (1..count) and the set's number of parts; absent, the document is a whole network",
        "properties": {
            "set": {"type": "string", "pattern": TRADE_NETWORK_PART_SET_PATTERN},
            "index": {"type": "integer", "minimum": 1, "maximum": MAX_TRADE_NETWORK_PARTS},
            "count": {"type": "integer", "minimum": 1, "maximum": MAX_TRADE_NETWORK_PARTS},
        },
    }


def contracts_part_errors(part: Any) -> list[dict[str, Any]]:
    """The refusals of a ``part`` (``{set, index, count}``) alone, naming ``part.*``; empty when
    it is valid (1 ≤ index ≤ count ≤ MAX_TRADE_NETWORK_PARTS)."""
    errors = Errors(None)
    found: list[tuple[tuple[Any, ...], str]] = []
    _walk(_part_schema(), part, ("part",), {"$defs": _defs()}, found)
    for path, rule in sorted(found, key=lambda f: [str(p) for p in f[0]]):
        errors.add(path, rule)
    if not errors.items and part["index"] > part["count"]:
        errors.add(("part", "index"), "must be ≤ part.count")
    return errors.items


def _contracts_schema(max_contracts: int = MAX_TRADE_CONTRACTS) -> dict[str, Any]:
    defs = _defs()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://ccee.example/schemas/{CONTRACTS_SCHEMA_ID}.json",
        "title": f"Rede de contratos ({CONTRACTS_SCHEMA_ID})",
        "description": "The week's registered bilateral contracts (seller, buyer, month, MWm, "
        "price), uploaded by CCEE staff; the network model's edges when present.",
        "type": "object",
        "required": ["schema", "week", "contracts"],
        "additionalProperties": False,
        "properties": {
            "schema": {"const": CONTRACTS_SCHEMA_ID},
            "week": {"$ref": "#/$defs/week"},
            "part": _part_schema(),
            "contracts": {
                "type": "array",
                "maxItems": max_contracts,
                "items": {
                    "type": "object",
                    "required": ["seller_cnpj", "buyer_cnpj", "volume_mwm", "price_brl_mwh"],
                    "additionalProperties": False,
                    "properties": {
                        "seller_cnpj": {"type": "string", "pattern": CNPJ_PATTERN},
                        "buyer_cnpj": {"type": "string", "pattern": CNPJ_PATTERN},
                        "bucket": {"$ref": "#/$defs/bucket"},
                        "month": {
                            "type": "string",
                            "pattern": MONTH_LABEL_PATTERN,
                            "description": "the bucket's label (e.g. MAR/2023), instead of bucket",
                        },
                        "volume_mwm": _number(0, MAX_MWM, "MWm, > 0"),
                        "price_brl_mwh": _number(0, MAX_PRICE_BRL_MWH, "R$/MWh, ≥ 0"),
                    },
                },
            },
        },
        "$defs": {"week": defs["week"], "bucket": defs["bucket"]},
        "examples": [example_contracts()],
    }


def example_contracts(week: str = "202303001") -> dict[str, Any]:
    """The example of docs/formats.md."""
    return {
        "schema": CONTRACTS_SCHEMA_ID,
        "week": week,
        "contracts": [
            {
                "seller_cnpj": "11222333000181",
                "buyer_cnpj": "11444777000161",
                "bucket": 0,
                "volume_mwm": 5.0,
                "price_brl_mwh": 155.0,
            },
            {
                "seller_cnpj": "11444777000161",
                "buyer_cnpj": "11222333000181",
                "month": "MAY/2023",
                "volume_mwm": 2.5,
                "price_brl_mwh": 0.0,
            },
        ],
    }


def contracts_errors(
    payload: Any,
    *,
    week: str,
    bucket_labels: Sequence[str] | None = None,
    max_contracts: int = MAX_TRADE_CONTRACTS,
) -> list[dict[str, Any]]:
    """Every refusal of a trade network as ``{"field", "row", "rule"}`` (empty: accepted):
    schema, the week binding, CNPJ check digits, seller ≠ buyer, volume > 0, exactly one of
    ``bucket`` / ``month`` and — when the week's ``bucket_labels`` are given — a known month.
    Never quotes a value. ``max_contracts``: one document's limit (the staff client checks a
    whole file, before it is sent in parts, against MAX_TRADE_NETWORK_CONTRACTS)."""
    errors = Errors(None)
    rows = payload.get("contracts") if isinstance(payload, dict) else None
    if isinstance(rows, list) and len(rows) > max_contracts:  # before walking each row
        errors.add(("contracts",), f"must have at most {max_contracts} item(s)")
        return errors.items
    found: list[tuple[tuple[Any, ...], str]] = []
    _walk(_contracts_schema(max_contracts), payload, (), {"$defs": _defs()}, found)
    for path, rule in sorted(found, key=lambda f: [str(p) for p in f[0]]):
        errors.add(path, rule)
    if errors.items:
        return errors.items[:MAX_ERRORS]
    if payload["week"] != week:
        errors.add(("week",), "must be the week this envelope was submitted for")
    part = payload.get("part")
    if part is not None and part["index"] > part["count"]:
        errors.add(("part", "index"), "must be ≤ part.count")
    labels = None if bucket_labels is None else set(bucket_labels)
    valid: dict[str, bool] = {}
    for i, row in enumerate(payload["contracts"]):
        for name in ("seller_cnpj", "buyer_cnpj"):
            cnpj = row[name]
            ok = valid.get(cnpj)
            if ok is None:
                ok = valid[cnpj] = cnpj_is_valid(cnpj)
            if not ok:
                errors.add(("contracts", i, name), "must have valid CNPJ check digits")
        if row["seller_cnpj"] == row["buyer_cnpj"]:
            errors.add(("contracts", i, "buyer_cnpj"), "must not be the seller's CNPJ")
        if not row["volume_mwm"] > 0:
            errors.add(("contracts", i, "volume_mwm"), "must be > 0")
        if ("bucket" in row) == ("month" in row):
            errors.add(("contracts", i), "must have exactly one of bucket or month")
        elif labels is not None and "month" in row and row["month"] not in labels:
            errors.add(("contracts", i, "month"), "must be one of the week's month labels")
        if len(errors.items) > MAX_ERRORS:
            break
    return errors.items[:MAX_ERRORS]


def contract_bucket(row: Mapping[str, Any], bucket_labels: Sequence[str]) -> int | None:
    """The bucket of a valid contract row: its ``bucket``, or its ``month``'s index in the
    week's labels (None when the month is not one of them)."""
    if "bucket" in row:
        return int(row["bucket"])
    try:
        return list(bucket_labels).index(row["month"])
    except ValueError:
        return None


def contracts_from_rows(
    rows: Iterable[Mapping[str, Any]], *, week: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A CSV/XLSX table (a header row of ``CONTRACT_COLUMNS``, already read into maps) as a
    ``prudencial/contracts/v1`` payload, plus the conversion errors (row = the table's data row,
    1-based; a cell that is not a number is named, never quoted). Pure: the staff client reads
    the file, this converts, ``contracts_errors`` judges. CNPJs lose their punctuation; a blank
    ``bucket`` or ``month`` is left out."""
    errors: list[dict[str, Any]] = []
    contracts: list[dict[str, Any]] = []
    for n, raw in enumerate(rows, start=1):
        unknown = sorted(k for k in raw if k not in CONTRACT_COLUMNS and k not in (None, ""))
        if unknown:
            errors.append(
                {
                    "field": "(header)",
                    "row": None,
                    "rule": f"columns must be {', '.join(CONTRACT_COLUMNS)}",
                }
            )
            break
        row: dict[str, Any] = {}
        for name in ("seller_cnpj", "buyer_cnpj"):
            row[name] = re.sub(r"[.\-/\s]", "", str(raw.get(name) or "")).upper()
        month = str(raw.get("month") or "").strip()
        if month:
            row["month"] = month.upper()
        for name, integer in (("bucket", True), ("volume_mwm", False), ("price_brl_mwh", False)):
            cell = raw.get(name)
            if cell is None or (isinstance(cell, str) and not cell.strip()):
                continue
            try:
                value = (
                    float(str(cell).strip().replace(",", ".")) if isinstance(cell, str) else cell
                )
                value = float(value)
                if not math.isfinite(value) or (integer and not value.is_integer()):
                    raise ValueError
            except (TypeError, ValueError):
                errors.append(
                    {
                        "field": f"contracts[{n - 1}].{name}",
                        "row": n,
                        "rule": "must be an integer" if integer else "must be a number",
                    }
                )
                continue
            row[name] = int(value) if integer else value
        contracts.append(row)
    return {"schema": CONTRACTS_SCHEMA_ID, "week": week, "contracts": contracts}, errors
