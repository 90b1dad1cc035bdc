"""The domain package alone: no Django, identifiers, the week code, classes and cadences."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from importlib import resources

import pytest

from prudencial.domain import calendar, formats, identifiers, market
from prudencial.domain.errors import RULES, DomainError
from prudencial.domain.payloads import BatchAgent


def test_the_domain_package_imports_no_django():
    code = (
        "import sys, pkgutil, importlib, prudencial.domain as d\n"
        "for m in pkgutil.iter_modules(d.__path__): importlib.import_module(f'prudencial.domain.{m.name}')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'scipy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("12345678000195", None),
        ("12ABC34501DE35", None),
        ("12345678000196", identifiers.CHECK_DIGITS),
        ("00000000000000", identifiers.REPEATED),
        ("12abc34501DE35", identifiers.FORMAT),  # the stored form is upper case
        ("1234567800019", identifiers.FORMAT),
    ],
)
def test_cnpj(value, problem):
    assert identifiers.cnpj_problem(value) == problem
    assert identifiers.cnpj_is_valid(value) is (problem is None)


def test_cnpj_normal_form_and_mask():
    assert identifiers.normalize_cnpj(" 12.abc.345/01de-35 ") == "12ABC34501DE35"
    assert identifiers.format_cnpj("12ABC34501DE35") == "12.ABC.345/01DE-35"
    assert identifiers.cnpj_check_digits("12abc34501de") == "35"


def test_cpf_and_acronym():
    assert identifiers.cpf_check_digits("529982247") == "25"
    assert identifiers.cpf_is_valid(identifiers.normalize_cpf("529.982.247-25"))
    assert identifiers.cpf_problem("11111111111") == identifiers.REPEATED
    assert identifiers.normalize_acronym(" cm47 ") == "CM47"


def test_week_code():
    assert calendar.parse_week_code("202303002") == (date(2023, 3, 1), 2)
    assert calendar.next_week_code(date(2023, 3, 1), None) == "202303001"
    assert calendar.next_week_code(date(2023, 3, 1), "202303041") == "202303042"
    with pytest.raises(DomainError) as info:
        calendar.next_week_code(date(2023, 3, 1), "202303999")
    assert info.value.field == "code" and info.value.code == "between"
    for bad in ("202313001", "20230301", 202303001, "2023-03-001"):
        assert not calendar.is_week_code(bad)
        with pytest.raises(DomainError, match="^week must look like YYYYMMNNN"):
            calendar.check_week_code(bad)


def test_in_force_is_inclusive_on_both_ends():
    start, end = date(2024, 1, 10), date(2024, 1, 20)
    assert calendar.in_force(start, end, start) and calendar.in_force(start, end, end)
    assert not calendar.in_force(start, end, date(2024, 1, 21))
    assert not calendar.in_force(start, None, date(2024, 1, 9))
    assert calendar.in_force(start, None, date(2099, 1, 1))


def test_months_and_buckets():
    assert market.month_label(date(2023, 3, 1)) == "MAR/2023"
    assert market.add_months(date(2023, 11, 1), 3) == date(2024, 2, 1)
    assert [market.month_hours(date(2024, m, 1)) for m in (2, 3, 4)] == [696, 744, 720]
    assert tuple(range(7)) == market.BUCKETS and market.bucket_name(6) == "M+6"


def test_xlsx_aliases_of_submarkets_and_energy_types():
    for alias in ("SE/CO", "SECO", "se/co", "se"):
        assert market.normalize_submarket(alias) == "SE"
    assert market.normalize_submarket("XX") == "XX"
    assert market.normalize_energy_type("Incentivada") == "incentivized"
    assert market.normalize_energy_type("CONVENTIONAL") == "conventional"


def test_cadence_default_table_and_unknown_class():
    assert market.cadence_for_class("trader") == "weekly"
    assert market.cadence_for_class("distributor") == "exempt"
    assert market.cadence_for_class("trader", {"trader": "monthly"}) == "monthly"
    with pytest.raises(DomainError, match="agent_class must be one of .*got 'pirate'"):
        market.cadence_for_class("pirate")


def test_every_rule_has_an_english_sentence_and_fills_its_placeholders():
    error = DomainError("parameters.k", "at_most", maximum="10", got=11.0)
    assert str(error) == "parameters.k must be at most 10 (got 11.0)"
    assert error.field == "parameters.k" and error.rule == "must be at most 10"
    with pytest.raises(KeyError):
        DomainError("x", "no_such_rule")
    assert all(isinstance(text, str) and text for text in RULES.values())


def test_batch_agent_carries_the_registry_class_and_derives_the_network_class():
    who = BatchAgent.from_dict(
        {"acronym": "AP3", "cnpj": "12345678000195", "class": "self_producer"}
    )
    assert who.network_class == "GE"
    assert who.to_dict() == {"acronym": "AP3", "cnpj": "12345678000195", "class": "self_producer"}
    with pytest.raises(DomainError, match=r"^agent\.class of agent AP3 is required"):
        BatchAgent.from_dict({"acronym": "AP3", "cnpj": "12345678000195"})


def _schema(kind: str) -> dict:
    return formats.json_schema(kind)


def _find(node, key):
    """Every value of `key` anywhere in a JSON Schema."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _find(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _find(v, key)


def test_the_json_schemas_use_the_domains_values():
    """The schemas are generated by prudencial.domain.formats (no static copy left); this test
    holds them to the domain's values, so a change in one place fails here."""
    portfolio = _schema("portfolio")
    contract = portfolio["properties"]["contracts"]["items"]["properties"]
    assert tuple(portfolio["$defs"]["submarket"]["enum"]) == market.SUBMARKETS
    assert tuple(contract["energy_type"]["enum"]) == formats.DEFAULT_ENERGY_TYPES
    assert portfolio["$defs"]["bucket"]["maximum"] == market.BUCKET_COUNT - 1
    for kind in ("portfolio", "counterparties"):
        schema = _schema(kind)
        assert schema["$defs"]["week"]["pattern"] == calendar.WEEK_CODE_PATTERN
        assert set(_find(schema, "pattern")) <= {
            calendar.WEEK_CODE_PATTERN,
            identifiers.CNPJ_PATTERN,
        }
        assert identifiers.CNPJ_PATTERN in set(_find(schema, "pattern"))
    assert (
        not resources.files("enclave_bridge.enclave")
        .joinpath("schemas", "portfolio.json")
        .is_file()
    )
