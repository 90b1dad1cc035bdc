"""Admin edits of weeks and parameters go through the services (week_update, parameters_save),
and every rule the database holds reaches staff as a human message keyed to the field to fix."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from prudencial.models import (
    Agent,
    AgentClass,
    ParameterBucket,
    Representation,
    RiskParameters,
    Week,
    WeekStatus,
)
from prudencial.services import weeks as week_services
from prudencial.services.agents import agent_create, agent_update
from prudencial.services.parameters import parameters_save
from prudencial.services.weeks import week_update
from tests.factories import (
    PLD_CAP,
    WeekFactory,
    brasilia,
    correlation_matrix,
    grant,
    make_cnpj,
    week_with_parameters,
)
from tests.foundation.admin_forms import change_form_data

pytestmark = pytest.mark.django_db

MARCH_20 = date(2023, 3, 20)  # operation 20–26/03/2023: code 202303xxx


def change_url(obj) -> str:
    return reverse(f"admin:prudencial_{obj._meta.model_name}_change", args=[obj.pk])


def set_status(week: Week, status: str) -> Week:
    Week.objects.filter(pk=week.pk).update(status=status)
    week.refresh_from_db()
    return week


def march_week(**kwargs) -> Week:
    return week_with_parameters(
        operation_start=MARCH_20, operation_end=MARCH_20 + timedelta(days=6), **kwargs
    )


# --- 1. week_update ----------------------------------------------------------------------------


def test_week_update_changes_a_scheduled_weeks_window_with_history(superuser):
    week = march_week()
    new_deadline = brasilia(date(2023, 3, 30), 18)

    week_update(week=week, deadline=new_deadline, by=superuser)

    week.refresh_from_db()
    assert week.deadline == new_deadline
    latest = week.history.latest()
    assert latest.history_type == "~"
    assert latest.history_user == superuser


@pytest.mark.parametrize("status", ["open", "closed", "computed", "published"])
def test_week_update_refuses_a_week_that_is_not_scheduled(status):
    week = set_status(march_week(), status)
    before = week.deadline
    with pytest.raises(ValidationError) as info:
        week_update(week=week, deadline=before + timedelta(days=1))
    assert list(info.value.message_dict) == ["status"]
    assert "só semanas agendadas" in info.value.message_dict["status"][0]
    week.refresh_from_db()
    assert week.deadline == before


def test_week_update_names_the_field_of_a_window_out_of_order():
    week = march_week()
    with pytest.raises(ValidationError) as info:
        week_update(week=week, deadline=week.opens_at)
    assert info.value.message_dict == {
        "deadline": ["O término para preenchimento deve ser posterior à abertura."]
    }


def test_week_update_refuses_a_code_of_another_month_than_the_operation_end():
    week = march_week()
    with pytest.raises(ValidationError) as info:
        week_update(week=week, code="202304001")
    assert list(info.value.message_dict) == ["code"]
    week.refresh_from_db()
    assert week.code == "202303001"


def test_week_update_moving_the_end_to_another_month_recodes_and_moves_m0():
    week = march_week()
    assert week.code == "202303001"
    assert week.parameters.first_month == date(2023, 3, 1)

    week_update(week=week, operation_end=date(2023, 4, 2))

    week.refresh_from_db()
    assert week.code == "202304001"
    assert RiskParameters.objects.get(week=week).first_month == date(2023, 4, 1)


def test_week_update_refuses_unknown_fields():
    week = march_week()
    with pytest.raises(ValidationError) as info:
        week_update(week=week, status=WeekStatus.OPEN)
    assert list(info.value.message_dict) == ["status"]
    week.refresh_from_db()
    assert week.status == WeekStatus.SCHEDULED


def test_admin_week_edit_goes_through_week_update(client, superuser, monkeypatch):
    week = march_week()
    calls = []
    real = week_update

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr("prudencial.admin.weeks.week_update", spy)
    client.force_login(superuser)
    page = client.get(change_url(week))
    data = change_form_data(page, operation_end="2023-04-02")

    response = client.post(change_url(week), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert len(calls) == 1 and calls[0]["by"] == superuser
    week.refresh_from_db()
    assert week.operation_end == date(2023, 4, 2)
    assert week.code == "202304001"  # obj.save() would have kept a March code


def test_admin_week_window_out_of_order_is_an_error_on_the_deadline(client, superuser):
    week = march_week()
    client.force_login(superuser)
    page = client.get(change_url(week))
    data = change_form_data(page)
    data["deadline_0"], data["deadline_1"] = data["opens_at_0"], data["opens_at_1"]

    response = client.post(change_url(week), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["deadline"] == ["O término para preenchimento deve ser posterior à abertura."]
    assert "Restrição" not in response.content.decode()


# --- 2. parameters_save ----------------------------------------------------------------------


def test_parameters_save_changes_in_place_with_the_acting_user(superuser):
    week = march_week()
    parameters = week.parameters
    ids = dict(parameters.buckets.values_list("index", "pk"))

    parameters_save(
        week=week,
        by=superuser,
        fields={"pld_floor": Decimal("61.07")},
        buckets={2: {"volatility": Decimal("0.123")}},
    )

    assert dict(parameters.buckets.values_list("index", "pk")) == ids  # same rows
    history = ParameterBucket.history.filter(parameters_id=parameters.pk)
    assert not history.filter(history_type="-").exists()
    changed = history.filter(history_type="~")
    assert list(changed.values_list("index", "volatility", "history_user")) == [
        (2, Decimal("0.123000"), superuser.pk)
    ]
    assert RiskParameters.objects.get(pk=parameters.pk).pld_floor == Decimal("61.07")
    assert parameters.history.latest().history_user == superuser


@pytest.mark.parametrize("status", ["computed", "published"])
def test_parameters_save_refuses_a_frozen_week(status):
    week = set_status(march_week(), status)
    with pytest.raises(ValidationError) as info:
        parameters_save(week=week, fields={}, buckets={0: {"volatility": 1}})
    assert list(info.value.message_dict) == ["week"]
    assert ParameterBucket.objects.get(parameters__week=week, index=0).volatility != 1


@pytest.mark.parametrize(
    ("fields", "buckets", "key"),
    [
        ({"correlation": correlation_matrix(1.5)}, {}, "correlation"),
        ({"pld_floor": PLD_CAP + 1}, {}, "pld_floor"),
        ({"confidence": Decimal("1")}, {}, "confidence"),
        ({}, {3: {"volatility": Decimal("-0.1")}}, "buckets[3]"),
        ({}, {7: {"volatility": Decimal("0.1")}}, "buckets[7]"),
    ],
    ids=["correlation", "pld_floor", "confidence", "volatility<0", "no M+7"],
)
def test_parameters_save_validates_and_writes_nothing(fields, buckets, key):
    week = march_week()
    before = list(ParameterBucket.objects.filter(parameters__week=week).values())
    scalars = RiskParameters.objects.filter(week=week).values().get()
    with pytest.raises(ValidationError) as info:
        parameters_save(
            week=week,
            fields={"k": Decimal("0.5"), **fields},
            buckets={0: {"volatility": Decimal("0.2")}, **buckets},
        )
    assert key in info.value.message_dict
    assert list(ParameterBucket.objects.filter(parameters__week=week).values()) == before
    assert RiskParameters.objects.filter(week=week).values().get() == scalars


def test_bucket_error_names_the_field_and_the_rule():
    week = march_week()
    with pytest.raises(ValidationError) as info:
        parameters_save(week=week, fields={}, buckets={3: {"volatility": Decimal("-0.1")}})
    assert info.value.message_dict == {
        "buckets[3]": ["volatilidade: A volatilidade não pode ser negativa."]
    }


def test_admin_parameters_edit_goes_through_parameters_save(client, superuser, monkeypatch):
    week = march_week()
    parameters = week.parameters
    calls = []
    real = parameters_save

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr("prudencial.admin.weeks.parameters_save", spy)
    client.force_login(superuser)
    page = client.get(change_url(parameters))
    data = change_form_data(page)
    data["buckets-2-volatility"] = "0.5"
    data["pld_floor"] = "61.07"

    response = client.post(change_url(parameters), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert len(calls) == 1
    assert calls[0]["fields"] == {"pld_floor": Decimal("61.07")}
    assert calls[0]["buckets"] == {2: {"volatility": Decimal("0.5")}}
    changed = ParameterBucket.history.filter(parameters_id=parameters.pk, history_type="~")
    assert list(changed.values_list("index", "history_user")) == [(2, superuser.pk)]


def test_admin_parameters_floor_above_cap_is_an_error_on_the_floor(client, superuser):
    week = march_week()
    client.force_login(superuser)
    page = client.get(change_url(week.parameters))
    data = change_form_data(page)
    data["pld_floor"] = str(PLD_CAP + 1)

    response = client.post(change_url(week.parameters), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["pld_floor"] == ["O PLD mínimo deve ser positivo e menor que o PLD máximo."]


# --- 3. constraints speak Portuguese and name the field ------------------------------------------


def check_constraints():
    for model in apps.get_app_config("prudencial").get_models():
        for constraint in model._meta.constraints:
            if isinstance(constraint, models.CheckConstraint):
                yield model, constraint


@pytest.mark.parametrize(
    ("model", "constraint"),
    list(check_constraints()),
    ids=lambda x: getattr(x, "name", getattr(x, "__name__", "")),
)
def test_every_check_constraint_has_a_human_message(model, constraint):
    message = str(constraint.get_violation_error_message())
    assert constraint.violation_error_message != constraint.default_violation_error_message
    assert constraint.name not in message
    assert "Restrição" not in message and "violada" not in message


def test_constraint_checked_directly_says_the_rule_not_its_name():
    week = Week(
        code="202303001",
        operation_start=date(2023, 3, 6),
        operation_end=date(2023, 3, 12),
        opens_at=brasilia(date(2023, 3, 15)),
        deadline=brasilia(date(2023, 3, 13)),
    )
    with pytest.raises(ValidationError) as info:
        week.validate_constraints()
    assert info.value.messages == ["O término para preenchimento deve ser posterior à abertura."]


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (date(2023, 3, 12), date(2023, 3, 6), "operation_end"),
        (date(2023, 3, 6), date(2023, 3, 6), "operation_end"),
    ],
)
def test_week_create_names_operation_end(start, end, field):
    with pytest.raises(ValidationError) as info:
        week_services.week_create(
            operation_start=start,
            operation_end=end,
            opens_at=brasilia(date(2023, 3, 13)),
            deadline=brasilia(date(2023, 3, 15), 20),
        )
    assert info.value.message_dict == {
        field: ["O fim de operação deve ser posterior ao início de operação."]
    }


def test_distributor_with_a_cadence_names_the_cadence():
    with pytest.raises(ValidationError) as info:
        agent_create(
            acronym="DIST",
            cnpj=make_cnpj(900),
            legal_name="Distribuidora S.A.",
            agent_class=AgentClass.DISTRIBUTOR,
            reporting_cadence="weekly",
        )
    assert list(info.value.message_dict) == ["reporting_cadence"]
    assert "Distribuidores são isentos" in info.value.message_dict["reporting_cadence"][0]
    assert not Agent.objects.filter(acronym="DIST").exists()


@pytest.mark.parametrize(
    ("agent_class", "cadence"),
    [
        (AgentClass.GENERATOR, "weekly"),
        (AgentClass.TRADER, "weekly"),
        (AgentClass.SELF_PRODUCER, "monthly"),
        (AgentClass.FREE_CONSUMER, "monthly"),
        (AgentClass.SPECIAL_CONSUMER, "monthly"),
        (AgentClass.DISTRIBUTOR, "exempt"),
    ],
)
def test_the_reporting_cadence_follows_the_class(agent_class, cadence):
    agent = agent_create(
        acronym="CAD1", cnpj=make_cnpj(901), legal_name="Agente S.A.", agent_class=agent_class
    )
    assert agent.reporting_cadence == cadence


def test_changing_the_class_re_derives_the_cadence():
    agent = agent_create(
        acronym="CAD2", cnpj=make_cnpj(902), legal_name="Agente S.A.", agent_class=AgentClass.TRADER
    )
    agent_update(agent=agent, agent_class=AgentClass.DISTRIBUTOR)
    agent.refresh_from_db()
    assert (agent.agent_class, agent.reporting_cadence) == ("distributor", "exempt")


def test_representation_ending_before_it_starts_names_valid_until(agent_a):
    from tests.factories import UserFactory

    with pytest.raises(ValidationError) as info:
        grant(
            UserFactory(),
            agent_a,
            valid_from=date(2023, 3, 10),
            valid_until=date(2023, 3, 9),
        )
    assert info.value.message_dict == {
        "valid_until": ["A data “válida até” não pode ser anterior à data “válida desde”."]
    }
    assert not Representation.objects.exists()


def test_parameters_floor_above_cap_names_the_floor_in_the_model():
    week = WeekFactory()
    parameters = RiskParameters(
        week=week,
        first_month=date(2023, 1, 1),
        correlation=correlation_matrix(),
        pld_floor=Decimal("800"),
        pld_cap=Decimal("700"),
        confidence=Decimal("0.95"),
    )
    with pytest.raises(ValidationError) as info:
        parameters.full_clean()
    assert info.value.message_dict == {
        "pld_floor": ["O PLD mínimo deve ser positivo e menor que o PLD máximo."]
    }
