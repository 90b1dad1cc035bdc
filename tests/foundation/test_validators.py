"""CNPJ and CPF validators: each rule, and the models naming the field that breaks it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from prudencial.models import Agent, AgentClass, User
from prudencial.services.agents import agent_create
from prudencial.validators import (
    cnpj_check_digits,
    cpf_check_digits,
    format_cnpj,
    format_cpf,
    normalize_cnpj,
    validate_cnpj,
    validate_cpf,
)


def error_code(validator, value) -> str:
    with pytest.raises(ValidationError) as info:
        validator(value)
    return info.value.code


# --- CNPJ ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "11.222.333/0001-81",  # the classic numeric example
        "11222333000181",
        "  11.222.333/0001-81 ",
        "12.ABC.345/01DE-35",  # Receita Federal's alphanumeric example (IN RFB 2.229/2024)
        "12ABC34501DE35",
        "12.abc.345/01de-35",  # lower case is accepted and upper-cased
    ],
)
def test_valid_cnpj_is_accepted(value):
    assert validate_cnpj(value) is None


def test_check_digits_match_the_published_examples():
    assert cnpj_check_digits("112223330001") == "81"
    assert cnpj_check_digits("12ABC34501DE") == "35"
    assert cnpj_check_digits("12abc34501de") == "35"
    assert cpf_check_digits("529982247") == "25"
    assert cpf_check_digits("111444777") == "35"


@pytest.mark.parametrize(
    "value",
    [
        "11.222.333/0001-80",
        "11222333000118",  # check digits swapped
        "21222333000181",  # one base digit changed
        "12.ABC.345/01DE-36",
        "12.ABD.345/01DE-35",
    ],
)
def test_cnpj_with_wrong_check_digits_is_refused(value):
    assert error_code(validate_cnpj, value) == "cnpj_check_digits"


@pytest.mark.parametrize(
    "value",
    [
        "1122233300018",  # 13
        "112223330001811",  # 15
        "",
        "12.ABC.345/01DE-3A",  # letters are not allowed in the check digits
        "12ABC34501DEA5",
        "12ABC34501D!35",
        "12ÁBC34501DE35",
    ],
)
def test_cnpj_with_wrong_shape_is_refused(value):
    assert error_code(validate_cnpj, value) == "cnpj_format"


@pytest.mark.parametrize("value", ["00000000000000", "11111111111111", "99.999.999/9999-99"])
def test_cnpj_with_all_characters_equal_is_refused(value):
    assert error_code(validate_cnpj, value) == "cnpj_repeated"


def test_cnpj_masks_round_trip():
    assert normalize_cnpj("12.abc.345/01de-35") == "12ABC34501DE35"
    assert format_cnpj("12ABC34501DE35") == "12.ABC.345/01DE-35"
    assert format_cnpj("11222333000181") == "11.222.333/0001-81"


# --- CPF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["529.982.247-25", "52998224725", "111.444.777-35"])
def test_valid_cpf_is_accepted(value):
    assert validate_cpf(value) is None


@pytest.mark.parametrize("value", ["529.982.247-24", "52998224752", "111.444.777-53"])
def test_cpf_with_wrong_check_digits_is_refused(value):
    assert error_code(validate_cpf, value) == "cpf_check_digits"


@pytest.mark.parametrize("value", ["5299822472", "529982247250", "529.982.247-2X", "ABC98224725"])
def test_cpf_with_wrong_shape_is_refused(value):
    assert error_code(validate_cpf, value) == "cpf_format"


@pytest.mark.parametrize("value", ["00000000000", "111.111.111-11", "99999999999"])
def test_cpf_with_all_digits_equal_is_refused(value):
    assert error_code(validate_cpf, value) == "cpf_repeated"


def test_cpf_format():
    assert format_cpf("52998224725") == "529.982.247-25"


# --- models ----------------------------------------------------------------------------------


def agent(**overrides) -> Agent:
    fields = {
        "acronym": "CM47",
        "cnpj": "11222333000181",
        "legal_name": "CM47 Comercializadora S.A.",
        "agent_class": AgentClass.TRADER,
        "reporting_cadence": "weekly",
    }
    return Agent(**{**fields, **overrides})


@pytest.mark.django_db
def test_agent_full_clean_names_the_cnpj_field():
    with pytest.raises(ValidationError) as info:
        agent(cnpj="11222333000180").full_clean()
    assert set(info.value.message_dict) == {"cnpj"}
    assert "dígitos verificadores" in info.value.message_dict["cnpj"][0]


@pytest.mark.django_db
def test_agent_create_normalises_a_masked_alphanumeric_cnpj():
    created = agent_create(
        acronym=" cm47 ",
        cnpj="12.abc.345/01de-35",
        legal_name="CM47 Comercializadora S.A.",
        agent_class=AgentClass.TRADER,
    )
    created.refresh_from_db()
    assert created.cnpj == "12ABC34501DE35"
    assert created.acronym == "CM47"
    assert created.cnpj_display == "12.ABC.345/01DE-35"
    assert created.reporting_cadence == "weekly"


@pytest.mark.django_db
def test_agent_create_refuses_a_bad_cnpj_and_writes_nothing():
    with pytest.raises(ValidationError) as info:
        agent_create(
            acronym="CM47",
            cnpj="12.ABC.345/01DE-3A",
            legal_name="CM47",
            agent_class=AgentClass.TRADER,
        )
    assert "cnpj" in info.value.message_dict
    assert not Agent.objects.exists()


@pytest.mark.django_db
def test_user_full_clean_names_the_cpf_field():
    with pytest.raises(ValidationError) as info:
        User(username="maria", cpf="52998224724", password="x").full_clean()
    assert set(info.value.message_dict) == {"cpf"}


@pytest.mark.django_db
def test_user_save_normalises_a_masked_cpf():
    user = User(username="maria", cpf="529.982.247-25")
    user.set_password("x")
    user.save()
    user.refresh_from_db()
    assert user.cpf == "52998224725"
    assert user.cpf_display == "529.982.247-25"


@pytest.mark.django_db
def test_user_full_clean_accepts_a_masked_cpf():
    User(username="maria", cpf="529.982.247-25", password="x").full_clean()


@pytest.mark.django_db
def test_agent_full_clean_accepts_a_masked_cnpj():
    agent(cnpj="11.222.333/0001-81").full_clean()
