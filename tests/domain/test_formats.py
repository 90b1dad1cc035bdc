"""prudencial.domain.formats and sheets: the generated schemas are what validation enforces, every
rule refuses naming field, row and rule (never a value), the spreadsheet round-trips, the price
source rule, and the worked example on a v2 payload."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from enclave_bridge.enclave.validation import fast_validator
from prudencial.domain import formats, sheets
from prudencial.domain.errors import DomainError
from prudencial.domain.parameters import check_week_parameters, forward_price
from prudencial.risk import counterparty_concentration, leverage_factor

EXAMPLES = Path(__file__).resolve().parents[2] / "prudencial" / "risk" / "examples"
WEEK = "202303001"
AGENT = formats.EXAMPLE_AGENT
REGISTRY = {"11444777000161": "GE12"}
CANARY = 987654.321
LABELS = sheets.bucket_labels(date(2023, 3, 1))
CUSTOM_TYPES = ("conventional", "incentivized_50", "solar_hybrid")


def example(kind: str) -> dict:
    return formats.example_payload(kind, agent=AGENT, week=WEEK)


def check(kind: str, doc: dict, **kwargs) -> list[dict]:
    kwargs.setdefault("registry", REGISTRY)
    return formats.validate(kind, doc, agent=AGENT, week=WEEK, **kwargs)


def _mutations(doc):
    """Every leaf replaced by odd values, every key dropped, an extra key in every object."""
    odd = [None, True, -1, 0, 7, 1.5, 1e14, -1e14, "", "x", "SE", [], {}, [1.0, 2.0]]

    def walk(node, path):
        yield path, node
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, (*path, i))

    def at(root, path):
        for p in path:
            root = root[p]
        return root

    for path, node in list(walk(doc, ())):
        if path:
            for value in odd:
                mutated = copy.deepcopy(doc)
                at(mutated, path[:-1])[path[-1]] = value
                yield mutated
        if isinstance(node, dict):
            for key in node:
                mutated = copy.deepcopy(doc)
                del at(mutated, path)[key]
                yield mutated
            mutated = copy.deepcopy(doc)
            at(mutated, path)["unexpected"] = 1
            yield mutated


# --- the schemas are what validation enforces ------------------------------------------------


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(payload)"


def _parent(field: str) -> str:
    return field.rsplit(".", 1)[0] if "." in field else "(payload)"


@pytest.mark.parametrize("kind", formats.KINDS)
@pytest.mark.parametrize("types", [formats.DEFAULT_ENERGY_TYPES, CUSTOM_TYPES])
def test_the_generated_schema_is_what_validation_enforces(kind, types):
    """formats' own walker, jsonschema and the enclave's fast validator agree on every mutation;
    and the walker's field paths are jsonschema's."""
    schema = formats.json_schema(kind, types)
    Draft202012Validator.check_schema(schema)
    reference = Draft202012Validator(schema)
    fast = fast_validator(kind, types)
    base = example(kind)
    if kind == "portfolio":
        base["forecasts"].append(dict(base["forecasts"][0], bucket=1, energy_type=types[-1]))
    count = 0
    for doc in _mutations(base):
        walked = formats.schema_errors(kind, doc, types)
        valid = reference.is_valid(doc)
        assert (not walked) == valid == fast(doc), doc
        if (
            not valid
        ):  # the same places: a missing key is named by formats, its parent by jsonschema
            paths = {_dotted(e.absolute_path) for e in reference.iter_errors(doc)}
            named = {e["field"] for e in walked}
            assert paths <= named | {_parent(f) for f in named}, (doc, paths, named)
        count += 1
    assert count > 150


@pytest.mark.parametrize("kind", formats.KINDS)
def test_example_payloads_validate_and_are_the_schemas_examples(kind):
    schema = formats.json_schema(kind)
    assert schema["examples"] == [formats.example_payload(kind)]
    assert schema["properties"]["schema"]["const"] == formats.SCHEMA_IDS[kind]
    assert Draft202012Validator(schema).is_valid(schema["examples"][0])
    assert check(kind, example(kind)) == []


def test_the_energy_type_enum_and_the_row_limits_follow_the_weeks_types():
    schema = formats.json_schema("portfolio", CUSTOM_TYPES)
    contracts = schema["properties"]["contracts"]
    assert contracts["items"]["properties"]["energy_type"]["enum"] == list(CUSTOM_TYPES)
    assert contracts["maxItems"] == 7 * 2 * 3 * 3 * 4
    assert schema["properties"]["forecasts"]["maxItems"] == 7 * 3 * 4
    doc = example("portfolio")
    doc["contracts"][0]["energy_type"] = "incentivized_80"  # a default type, not this week's
    assert check("portfolio", doc, energy_types=CUSTOM_TYPES) == [
        {
            "field": "contracts[0].energy_type",
            "row": 1,
            "rule": "must be one of conventional, incentivized_50, solar_hybrid",
        }
    ]
    with pytest.raises(ValueError):
        formats.json_schema("portfolio", ("Conventional",))


@pytest.mark.parametrize("kind", formats.KINDS)
def test_a_v1_payload_is_refused_with_a_clear_rule(kind):
    doc = {"schema": f"prudencial/{kind}/v1", "agent": AGENT, "week": WEEK}
    assert check(kind, doc) == [
        {"field": "schema", "row": None, "rule": f"schema must be prudencial/{kind}/v2"}
    ]


# --- every rule refuses, naming field, row and rule --------------------------------------------


def _portfolio(mutate):
    doc = example("portfolio")
    mutate(doc)
    return doc


def _counterparties(mutate):
    doc = example("counterparties")
    second = dict(
        doc["counterparties"][0], rank=2, cnpj="11222333000262", acronym=None, mtm_m0_brl=1.0
    )
    doc["counterparties"].append(second)
    mutate(doc)
    return doc


PORTFOLIO_RULES = {
    "amount when volume": (
        lambda d: d["contracts"][0].update(amount_brl=0.0, volume_mwm=CANARY),
        {"field": "contracts[0].amount_brl", "row": 1, "rule": "must be > 0 when volume_mwm > 0"},
    ),
    "unique contract key": (
        lambda d: d["contracts"].append(dict(d["contracts"][0], volume_mwm=CANARY)),
        {
            "field": "contracts[1]",
            "row": 2,
            "rule": "repeats row 1: one row per (bucket, side, contract_type, energy_type, "
            "submarket)",
        },
    ),
    "unique forecast key": (
        lambda d: d["forecasts"].append(dict(d["forecasts"][0], generation_mwm=CANARY)),
        {
            "field": "forecasts[1]",
            "row": 2,
            "rule": "repeats row 1: one row per (bucket, submarket, energy_type)",
        },
    ),
    "deductions ≥ 0": (
        lambda d: d["equity"].update(intangibles_brl=-CANARY),
        {"field": "equity.intangibles_brl", "row": None, "rule": "must be ≥ 0"},
    ),
    "volume ≥ 0": (
        lambda d: d["contracts"][0].update(volume_mwm=-CANARY),
        {"field": "contracts[0].volume_mwm", "row": 1, "rule": "must be ≥ 0"},
    ),
    "energy type": (
        lambda d: d["forecasts"][0].update(energy_type=f"solar{CANARY}"),
        {
            "field": "forecasts[0].energy_type",
            "row": 1,
            "rule": "must be one of " + ", ".join(formats.DEFAULT_ENERGY_TYPES),
        },
    ),
    "agent binding": (
        lambda d: d["agent"].update(acronym="CM48"),
        {
            "field": "agent",
            "row": None,
            "rule": "must be the agent this envelope was submitted for",
        },
    ),
    "week binding": (
        lambda d: d.update(week="202303002"),
        {"field": "week", "row": None, "rule": "must be the week this envelope was submitted for"},
    ),
}
COUNTERPARTY_RULES = {
    "rank 1..n": (
        lambda d: d["counterparties"][1].update(rank=1),
        {"field": "counterparties[1].rank", "row": 2, "rule": "must be 1 to 2, each rank once"},
    ),
    "ordered by MtM": (
        lambda d: d["counterparties"][1].update(mtm_m0_brl=CANARY * 10),
        {
            "field": "counterparties[1].rank",
            "row": 2,
            "rule": "must follow the mark-to-market over M0–M2, largest first (rank 1)",
        },
    ),
    "CNPJ check digits": (
        lambda d: d["counterparties"][1].update(cnpj="11222333000263"),
        {"field": "counterparties[1].cnpj", "row": 2, "rule": "must have valid CNPJ check digits"},
    ),
    "not own": (
        lambda d: d["counterparties"][1].update(cnpj=AGENT["cnpj"]),
        {"field": "counterparties[1].cnpj", "row": 2, "rule": "must not be the agent's own CNPJ"},
    ),
    "no repeats": (
        lambda d: d["counterparties"][1].update(cnpj="11444777000161", acronym="GE12"),
        {
            "field": "counterparties[1].cnpj",
            "row": 2,
            "rule": "repeats row 1: one row per counterparty",
        },
    ),
    "registered acronym": (
        lambda d: d["counterparties"][0].update(acronym="GE13"),
        {
            "field": "counterparties[0].acronym",
            "row": 1,
            "rule": "must be the registry's acronym of this CNPJ",
        },
    ),
    "unregistered is null": (
        lambda d: d["counterparties"][1].update(acronym="XX1"),
        {
            "field": "counterparties[1].acronym",
            "row": 2,
            "rule": "must be null: the CNPJ is not a registered agent",
        },
    ),
    "mitigation ≥ 0": (
        lambda d: d["counterparties"][0].update(mitigation_brl=-CANARY),
        {"field": "counterparties[0].mitigation_brl", "row": 1, "rule": "must be ≥ 0"},
    ),
    "mitigants ≤ 500 characters": (
        lambda d: d["counterparties"][0].update(mitigants=f"{CANARY} " * 60),
        {
            "field": "counterparties[0].mitigants",
            "row": 1,
            "rule": "must have at most 500 character(s)",
        },
    ),
    "at most five": (
        lambda d: d["counterparties"].extend([d["counterparties"][1]] * 4),
        {"field": "counterparties", "row": None, "rule": "must have at most 5 item(s)"},
    ),
}


@pytest.mark.parametrize("rule", PORTFOLIO_RULES)
def test_each_portfolio_rule_names_field_row_and_rule_never_the_value(rule):
    mutate, error = PORTFOLIO_RULES[rule]
    errors = check("portfolio", _portfolio(mutate))
    assert error in errors, errors
    assert "987654" not in json.dumps(errors, ensure_ascii=False)


@pytest.mark.parametrize("rule", COUNTERPARTY_RULES)
def test_each_counterparty_rule_names_field_row_and_rule_never_the_value(rule):
    mutate, error = COUNTERPARTY_RULES[rule]
    assert check("counterparties", _counterparties(lambda d: None)) == []
    errors = check("counterparties", _counterparties(mutate))
    assert error in errors, errors
    assert "987654" not in json.dumps(errors, ensure_ascii=False)


def test_without_a_registry_only_the_acronym_rule_is_skipped():
    doc = _counterparties(lambda d: d["counterparties"][0].update(acronym="GE13"))
    assert check("counterparties", doc, registry=None) == []
    doc["counterparties"][1]["cnpj"] = AGENT["cnpj"]
    assert [e["rule"] for e in check("counterparties", doc, registry=None)] == [
        "must not be the agent's own CNPJ"
    ]


def test_a_canary_never_appears_in_any_error():
    """Every mutation of both examples with the canary in every leaf: no error quotes it."""
    for kind in formats.KINDS:
        for doc in _mutations(example(kind)):
            text = json.dumps(doc)
            for old in ("0.0", "5.0", "1116000.0", "400000.0", '"SE"', '"CM47"', '"GE12"'):
                text = text.replace(old, '"987654.321x"' if old.startswith('"') else str(CANARY))
            errors = check(kind, json.loads(text))
            assert "987654" not in json.dumps(errors, ensure_ascii=False)


def test_xlsx_rows_name_the_sheet_and_the_excel_row():
    doc = _portfolio(lambda d: d["contracts"][0].update(amount_brl=0.0))
    rows = {"contracts": {0: 7}, "forecasts": {0: 3}, "equity": 2, "agent": 2}
    assert check("portfolio", doc, rows=rows) == [
        {
            "field": "sheet Contratos: contracts[0].amount_brl",
            "row": 7,
            "rule": "must be > 0 when volume_mwm > 0",
        }
    ]
    doc = _portfolio(lambda d: d["equity"].update(tax_credits_brl=-1.0))
    assert check("portfolio", doc, rows=rows) == [
        {"field": "sheet PLA: equity.tax_credits_brl", "row": 2, "rule": "must be ≥ 0"}
    ]


# --- figures ----------------------------------------------------------------------------------


def test_pla_and_the_engine_input():
    doc = example("portfolio")
    assert formats.pla(doc) == 12_000_000.0 - 500_000.0 - 300_000.0 - 1_000_000.0 - 200_000.0
    engine = formats.engine_portfolio(doc)
    assert engine["adjusted_equity"] == formats.pla(doc)
    assert engine["positions"] == [
        {
            "bucket": 0,
            "submarket": "SE",
            "energy_type": "conventional",
            "contract_type": "fixed_price",
            "resource_mwm": 10.0,
            "requirement_mwm": 0.0,
            "financial_brl": -1_116_000.0,
        },
        {
            "bucket": 0,
            "submarket": "SE",
            "energy_type": "conventional",
            "contract_type": None,
            "resource_mwm": 0.0,
            "requirement_mwm": 5.0,
            "financial_brl": 0.0,
        },
    ]


def test_the_worked_example_on_a_v2_payload():
    """docs/domain.md: forecasts 10 / −5 / 3 MWm, PLA 10 million: FA 0.0430 (ρ = ones)."""
    doc = json.loads((EXAMPLES / "worked_example_portfolio_v2.json").read_text())
    parameters = json.loads((EXAMPLES / "worked_example_parameters.json").read_text())
    assert formats.validate("portfolio", doc, agent=doc["agent"], week=doc["week"]) == []
    result = leverage_factor(doc, parameters)
    assert result.mtm_by_bucket[:3] == pytest.approx((1_116_000, -576_000, 379_440), abs=1e-6)
    assert result.var_by_bucket[:3] == pytest.approx((205_232.65, 127_111.84, 97_690.74), abs=0.01)
    assert result.var_total == pytest.approx(430_035.23, abs=0.01)
    assert round(result.fa, 4) == 0.0430 and result.res_fin == 0.0


def test_concentration_reads_v2_counterparties():
    doc = _counterparties(lambda d: None)
    result = counterparty_concentration(doc, 10_000_000.0)
    assert result.largest_exposure == pytest.approx(1_050_000.0 - 200_000.0)
    assert result.largest_counterparty == "GE12"
    assert [e["rank"] for e in result.exposures] == [1, 2]


def test_canonical_json_is_sorted_compact_utf8():
    assert formats.canonical_json({"b": 1.0, "a": "ção", "c": [1, 2.5]}) == (
        '{"a":"ção","b":1.0,"c":[1,2.5]}'.encode()
    )
    with pytest.raises(ValueError):
        formats.canonical_json({"x": float("nan")})
    assert formats.normalize("portfolio", {"bucket": 1.0, "volume_mwm": 10}) == {
        "bucket": 1,
        "volume_mwm": 10.0,
    }


def test_split_batch():
    batch = {
        "schema": formats.BATCH_SCHEMA_ID,
        "week": WEEK,
        "portfolios": [example("portfolio")],
        "counterparties": [example("counterparties"), example("counterparties")],
    }
    items, errors = formats.split_batch(batch, week=WEEK)
    assert list(items) == ["CM47"] and items["CM47"]["portfolio"] == example("portfolio")
    assert errors == [
        {"field": "counterparties[1].agent", "row": 2, "rule": "repeats an agent of the same list"}
    ]
    _, errors = formats.split_batch(dict(batch, schema="prudencial/batch/v0"), week=WEEK)
    assert errors == [{"field": "schema", "row": None, "rule": "must be prudencial/batch/v1"}]


# --- the spreadsheet --------------------------------------------------------------------------


def _two_agents():
    other = {"acronym": "GE12", "cnpj": "11444777000161"}
    first = example("portfolio")
    first["contracts"].append(
        {
            "bucket": 6,
            "side": "sale",
            "contract_type": "derivative",
            "energy_type": "incentivized_50",
            "submarket": "NE",
            "volume_mwm": 2.5,
            "amount_brl": 12345.67,
        }
    )
    second = formats.example_payload("portfolio", agent=other, week=WEEK)
    second["forecasts"] = []
    cps = _counterparties(lambda d: None)
    cps["counterparties"][1].pop("volume_mwm")
    return [first, second, cps]


def test_sheet_round_trip_payloads_rows_payloads_rows():
    payloads = _two_agents()
    grid = sheets.payloads_to_rows("all", payloads, bucket_labels=LABELS)
    assert grid[sheets.SHEET_CONTRACTS][0] == [h for _, h in sheets.COLUMNS["Contratos"]]
    assert grid[sheets.SHEET_CONTRACTS][2][1:6] == [
        "SET/2023",
        "Venda",
        "Derivativo",
        "Incentivada 50%",
        "NE",
    ]
    parsed = sheets.rows_to_payloads("all", grid, week=WEEK, bucket_labels=LABELS)
    assert parsed.errors == [] and parsed.agent_errors == {}
    assert sorted(parsed.portfolios) == ["CM47", "GE12"] and list(parsed.counterparties) == ["CM47"]
    for doc in payloads:
        kind = "portfolio" if doc["schema"] == formats.PORTFOLIO_SCHEMA_ID else "counterparties"
        got = parsed.payloads(kind)[doc["agent"]["acronym"]]
        assert formats.canonical_json(got) == formats.canonical_json(formats.normalize(kind, doc))
        rows = parsed.rows[(kind, doc["agent"]["acronym"])]
        assert formats.validate(kind, got, agent=doc["agent"], week=WEEK, rows=rows) == []
    again = sheets.payloads_to_rows(
        "all",
        [*parsed.portfolios.values(), *parsed.counterparties.values()],
        bucket_labels=LABELS,
    )
    assert again == grid
    assert parsed.rows[("portfolio", "CM47")]["contracts"] == {0: 2, 1: 3}
    assert parsed.rows[("portfolio", "GE12")]["contracts"] == {0: 4}


def test_sheet_cells_accept_codes_aliases_and_month_forms_and_refuse_by_cell():
    grid = sheets.payloads_to_rows("portfolio", [example("portfolio")], bucket_labels=LABELS)
    row = grid[sheets.SHEET_CONTRACTS][1]
    row[1:6] = ["m+0", "compra", "FIXED_PRICE", " convencional ", "SECO"]
    parsed = sheets.rows_to_payloads("portfolio", grid, week=WEEK, bucket_labels=LABELS)
    assert parsed.portfolios["CM47"] == formats.normalize("portfolio", example("portfolio"))
    row[1:3] = [f"{CANARY}", "Troca"]
    row[7] = "abc"
    parsed = sheets.rows_to_payloads("portfolio", grid, week=WEEK, bucket_labels=LABELS)
    errors = parsed.agent_errors["CM47"]
    assert {(e["field"], e["row"]) for e in errors} == {
        ("sheet Contratos column 'Mês'", 2),
        ("sheet Contratos column 'Operação'", 2),
        ("sheet Contratos column 'Valor (R$)'", 2),
    }
    assert "987654" not in json.dumps(errors) and "Troca" not in json.dumps(errors)


def test_a_missing_sheet_or_column_is_a_file_error():
    grid = sheets.payloads_to_rows("portfolio", [example("portfolio")], bucket_labels=LABELS)
    del grid[sheets.SHEET_FORECASTS]
    grid[sheets.SHEET_CONTRACTS][0][7] = "Preço"
    parsed = sheets.rows_to_payloads("portfolio", grid, week=WEEK, bucket_labels=LABELS)
    assert {"field": "sheet Previsões", "row": None, "rule": "is required"} in parsed.errors
    assert parsed.portfolios == {}


def test_the_agents_cnpj_comes_from_the_binding_and_must_agree_with_the_sheet():
    grid = sheets.payloads_to_rows(
        "counterparties", [_counterparties(lambda d: None)], bucket_labels=LABELS
    )
    grid[sheets.SHEET_EQUITY][1][1] = None
    parsed = sheets.rows_to_payloads(
        "counterparties", grid, week=WEEK, bucket_labels=LABELS, agents={"CM47": AGENT["cnpj"]}
    )
    assert parsed.counterparties["CM47"]["agent"] == AGENT
    grid[sheets.SHEET_EQUITY][1][1] = "11.444.777/0001-61"
    parsed = sheets.rows_to_payloads(
        "counterparties", grid, week=WEEK, bucket_labels=LABELS, agents={"CM47": AGENT["cnpj"]}
    )
    assert parsed.agent_errors["CM47"] == [
        {
            "field": "sheet PLA column 'CNPJ do agente'",
            "row": 2,
            "rule": "must be the CNPJ of the agent",
        }
    ]


# --- price sources (week parameters) ------------------------------------------------------------


def _parameters(**overrides):
    data = json.loads((EXAMPLES / "worked_example_parameters.json").read_text())
    data.update(overrides)
    return data


def test_the_price_source_rule():
    spreads = dict.fromkeys(formats.DEFAULT_ENERGY_TYPES, [0.0] * 7)
    spreads["incentivized_50"] = [30.0] * 7
    parameters = check_week_parameters(
        _parameters(
            energy_spreads=spreads,
            contract_spreads={
                "fixed_price": [0.0] * 7,
                "variable_price": [5.0] * 7,
                "derivative": [0.0] * 7,
            },
            forward_curves={
                "S/incentivized_80": [400.0] * 7,
                "N/conventional/derivative": [99.0] * 7,
            },
        )
    )
    assert parameters.price(1, "SE", "conventional") == 160.0
    assert parameters.price(1, "SE", "incentivized_50") == 190.0  # F_base = curve + spread
    assert parameters.price(1, "SE", "incentivized_50", "variable_price") == 195.0
    assert parameters.price(1, "S", "incentivized_80", "variable_price") == 405.0  # curve + ct
    assert parameters.price(1, "N", "conventional", "derivative") == 99.0  # the F curve
    assert forward_price(parameters, 1, "SE", "incentivized_50")[1] == (
        "parameters.energy_spreads.incentivized_50"
    )
    assert parameters.to_dict()["forward_curves"]["S/incentivized_80"] == [400.0] * 7


def test_the_documented_defaults_price_every_type_on_its_submarkets_curve():
    parameters = check_week_parameters(_parameters())
    assert parameters.energy_types == formats.DEFAULT_ENERGY_TYPES
    for code in formats.DEFAULT_ENERGY_TYPES:
        for contract in (None, *formats.CONTRACT_TYPES):
            assert parameters.price(2, "NE", code, contract) == 170.0


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        (
            {
                "energy_types": ["conventional", "solar"],
                "energy_spreads": {"conventional": [0] * 7},
            },
            "parameters.energy_spreads.solar",
            "unpriced_source",
        ),
        (
            {"energy_types": ["conventional", "solar"], "energy_spreads": {"solar": [900.0] * 7}},
            "parameters.energy_spreads.solar[0]",
            "within_pld_bounds",
        ),
        (
            {"forward_curves": {"SE/conventional/derivative": [10.0] * 7}},
            "parameters.forward_curves.SE/conventional/derivative[0]",
            "within_pld_bounds",
        ),
        (
            {"energy_spreads": {"conventional": [1.0] * 7}},
            "parameters.energy_spreads.conventional",
            "zero_by_definition",
        ),
        ({"energy_types": ["Solar"]}, "parameters.energy_types[0]", "energy_types"),
        (
            {"forward_curves": {"SE/solar": [200.0] * 7}},
            "parameters.forward_curves key",
            "curve_key",
        ),
        (
            {"contract_spreads": {"fixed_price": [0.0] * 7}},
            "parameters.contract_spreads.variable_price",
            "unpriced_source",
        ),
    ],
)
def test_check_plausible_refuses_unpriced_types_and_prices_outside_the_pld_bounds(
    overrides, field, code
):
    with pytest.raises(DomainError) as info:
        check_week_parameters(_parameters(**overrides))
    assert (info.value.field, info.value.code) == (field, code)
