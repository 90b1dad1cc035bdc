"""The alert parameters of a week: saved through parameters_save, refused naming the field and
the rule, fa_alert_threshold and fa_bands kept saying one thing, copied to the next week and
published with the week."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from prudencial.services.parameters import parameters_save
from tests.factories import WeekFactory, week_with_parameters

pytestmark = pytest.mark.django_db

BANDS = [{"code": "attention", "from": 0.8}, {"code": "alert", "from": 1.0}]


def save(week, **fields):
    return parameters_save(week=week, fields=fields, buckets={})


def errors_of(week, **fields) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as exc:
        save(week, **fields)
    return exc.value.message_dict


def test_a_new_week_alerts_as_its_threshold_did():
    week = week_with_parameters()
    p = week.parameters
    assert p.fa_bands == [{"code": "alert", "from": 1.0}]
    assert p.fa_alert_threshold == Decimal("1")
    assert p.concentration_limit_largest == Decimal("0.25")
    assert p.concentration_limit_top_five == Decimal("1")
    assert p.case_response_days == 5


def test_bands_saved_move_the_threshold_and_are_copied_to_the_next_week():
    week = week_with_parameters()
    saved = save(week, fa_bands=[{"code": "attention", "from": 0.8}, {"code": "alert", "from": 1}])
    saved.refresh_from_db()
    assert saved.fa_bands == BANDS  # floats, one shape
    assert saved.fa_alert_threshold == Decimal("1.0000")
    saved = save(
        week, fa_bands=[{"code": "attention", "from": 0.7}, {"code": "alert", "from": 1.3}]
    )
    saved.refresh_from_db()
    assert saved.fa_alert_threshold == Decimal("1.3000")
    following = WeekFactory()
    assert following.parameters.fa_bands == saved.fa_bands


def test_the_threshold_alone_moves_the_alert_band():
    week = week_with_parameters()
    save(week, fa_bands=BANDS)
    saved = save(week, fa_alert_threshold=Decimal("1.2"))
    saved.refresh_from_db()
    assert saved.fa_bands == [{"code": "attention", "from": 0.8}, {"code": "alert", "from": 1.2}]
    history = list(saved.history.order_by("-history_id")[:1])
    assert history[0].fa_bands == saved.fa_bands


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"fa_bands": BANDS[::-1]}, "fa_bands[1].from", "maior que o início da faixa anterior"),
        ({"fa_bands": []}, "fa_bands", "de 1 a 10 faixas"),
        ({"fa_bands": [{"code": "ALERTA", "from": 1}]}, "fa_bands[0].code", "código de faixa"),
        ({"fa_bands": [{"code": "alert", "from": -1}]}, "fa_bands[0].from", "deve ser > 0"),
        (
            {"fa_bands": BANDS, "fa_alert_threshold": Decimal("0.9")},
            "fa_alert_threshold",
            "igual ao início da faixa 'alert'",
        ),
        ({"fa_alert_threshold": Decimal("0.5"), "fa_bands": None}, "fa_bands", "lista"),
        (
            {
                "concentration_limit_largest": Decimal("0.6"),
                "concentration_limit_top_five": Decimal("0.5"),
            },
            "concentration_limit_largest",
            "não pode exceder o limite das cinco maiores",
        ),
        ({"concentration_limit_top_five": Decimal("0")}, "concentration_limit_top_five", "> 0"),
        ({"case_response_days": 0}, "case_response_days", "entre 1 e 60"),
        ({"case_response_days": 61}, "case_response_days", "entre 1 e 60"),
    ],
)
def test_bad_alert_parameters_are_refused_naming_the_field_and_the_rule(fields, field, words):
    week = week_with_parameters()
    errors = errors_of(week, **fields)
    assert field in errors, errors
    assert any(words in m for m in errors[field]), errors[field]
    week.parameters.refresh_from_db()
    assert week.parameters.fa_bands == [{"code": "alert", "from": 1.0}]  # nothing half-written


def test_the_threshold_cannot_move_the_alert_band_below_another():
    week = week_with_parameters()
    save(week, fa_bands=BANDS)
    errors = errors_of(week, fa_alert_threshold=Decimal("0.7"))
    assert any("ordem crescente" in m for m in errors["fa_alert_threshold"])


def test_the_database_refuses_limits_out_of_order():
    from django.db import IntegrityError, transaction

    week = week_with_parameters()
    p = week.parameters
    with pytest.raises(IntegrityError), transaction.atomic():
        type(p).objects.filter(pk=p.pk).update(concentration_limit_largest=Decimal("2"))
    with pytest.raises(IntegrityError), transaction.atomic():
        type(p).objects.filter(pk=p.pk).update(case_response_days=0)


def test_the_admin_form_names_the_band_at_fault():
    from prudencial.admin.weeks import RiskParametersForm

    form = RiskParametersForm()
    form.cleaned_data = {"fa_bands": [{"code": "alert", "from": 1}, {"code": "x", "from": 0.5}]}
    with pytest.raises(ValidationError) as exc:
        form.clean_fa_bands()
    assert "fa_bands[1].from" in exc.value.messages[0]


def test_the_week_api_publishes_the_bands_and_limits(client_for, agent_user):
    week = week_with_parameters()
    save(week, fa_bands=BANDS)
    body = client_for(agent_user).get(f"/api/v1/weeks/{week.code}/").json()["parameters"]
    assert body["fa_bands"] == BANDS
    assert body["concentration_limit_largest"] == "0.2500"
    assert body["concentration_limit_top_five"] == "1.0000"
    assert body["case_response_days"] == 5
