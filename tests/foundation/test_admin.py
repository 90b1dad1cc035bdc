"""The admin: every registered model's changelist renders for those who may see it, agents'
users and anonymous visitors are kept out, and the agent list follows the one selector."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse

from prudencial.models import Agent, ParameterBucket, RiskParameters, Week
from prudencial.services.agents import agent_update
from prudencial.services.weeks import week_open
from tests.factories import (
    PASSWORD,
    PLD_CAP,
    UserFactory,
    WeekFactory,
    correlation_matrix,
    default_buckets,
    grant,
    save_parameters,
    week_with_parameters,
)

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


def changelist_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


@pytest.fixture
def populated(agent_a, agent_b, agent_user):
    """One row at least in every prudencial table, and changes in the histories."""
    agent_update(agent=agent_a, legal_name="AGA Energia Ltda.")
    week = week_with_parameters()
    # CCEE staff adjust the parameters: a decimal change in the history, buckets replaced.
    buckets = default_buckets()
    buckets[0]["volatility"] = "0.055"
    save_parameters(
        week=week,
        first_month=week.parameters.first_month,
        correlation=correlation_matrix(),
        buckets=buckets,
        pld_floor="61.07",
        pld_cap=PLD_CAP,
    )
    week_open(week=week)
    WeekFactory()  # copies the parameters
    return {"week": week}


def test_every_prudencial_model_is_registered():
    labels = {model._meta.label for model in REGISTERED}
    assert {
        "prudencial.Agent",
        "prudencial.Representation",
        "prudencial.User",
        "prudencial.Week",
        "prudencial.RiskParameters",
    } <= labels


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_superuser_sees_every_changelist(client, superuser, populated, model):
    client.force_login(superuser)
    response = client.get(changelist_url(model))
    assert response.status_code == 200
    if model._meta.app_label == "prudencial":
        assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_staff_sees_the_prudencial_changelists_and_only_those(client, staff_user, populated, model):
    client.force_login(staff_user)
    response = client.get(changelist_url(model))
    if model._meta.app_label == "prudencial":
        assert response.status_code == 200
        assert response.context["cl"].result_count >= 1
    else:
        assert response.status_code == 403


def test_staff_agent_changelist_lists_every_agent(client, staff_user, populated):
    client.force_login(staff_user)
    response = client.get(changelist_url(Agent))
    assert [a.acronym for a in response.context["cl"].result_list] == ["AGA", "AGB"]


@pytest.mark.parametrize(
    "model",
    [Agent, Week, RiskParameters],
    ids=lambda m: m.__name__,
)
def test_superuser_opens_a_change_page(client, superuser, populated, model):
    client.force_login(superuser)
    obj = model.objects.order_by("pk").first()
    assert client.get(change_url(obj)).status_code == 200


def test_superuser_opens_a_user_page(client, superuser, agent_user):
    client.force_login(superuser)
    response = client.get(change_url(agent_user))
    assert response.status_code == 200
    assert "AGA" in response.content.decode()


# --- who may enter -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/", "/admin/prudencial/agent/", "/admin/prudencial/week/"])
def test_anonymous_is_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


def test_agent_user_cannot_log_in_to_the_admin(client, agent_user):
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": agent_user.username, "password": PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("url", ["/admin/", "/admin/prudencial/agent/"])
def test_agent_user_with_a_session_is_refused(client, agent_user, url):
    client.force_login(agent_user)  # e.g. logged in for the browsable API
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_user_logs_in(client, staff_user):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.access.helpers import current_code

    # The admin asks staff for the code of their authenticator app (prudencial.access).
    device = TOTPDevice.objects.create(user=staff_user, name="app", confirmed=True)
    response = client.post(
        "/admin/login/?next=/admin/",
        {
            "username": staff_user.username,
            "password": PASSWORD,
            "otp_token": current_code(device),
            "next": "/admin/",
        },
    )
    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == staff_user.pk


def test_inactive_staff_cannot_log_in(client, staff_user):
    staff_user.is_active = False
    staff_user.save()
    client.post("/admin/login/", {"username": staff_user.username, "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


# --- staff without the global permission --------------------------------------------------------


@pytest.fixture
def limited_staff(agent_a, agent_b):
    """Staff who may change agents but lacks the global view permission, and represents A."""
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_agent"))
    grant(user, agent_a)
    return user


def test_limited_staff_sees_only_the_selectors_agents(client, limited_staff, agent_b):
    client.force_login(limited_staff)
    response = client.get(changelist_url(Agent))
    assert response.status_code == 200
    assert [a.acronym for a in response.context["cl"].result_list] == ["AGA"]
    assert "AGB" not in response.content.decode()


def test_limited_staff_cannot_open_a_hidden_agent(client, limited_staff, agent_a, agent_b):
    client.force_login(limited_staff)
    assert client.get(change_url(agent_a)).status_code == 200
    response = client.get(change_url(agent_b))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_limited_staff_search_by_masked_cnpj_stays_within_the_selector(
    client, limited_staff, agent_a, agent_b
):
    client.force_login(limited_staff)
    hidden = client.get(changelist_url(Agent), {"q": agent_b.cnpj_display})
    assert list(hidden.context["cl"].result_list) == []
    shown = client.get(changelist_url(Agent), {"q": agent_a.cnpj_display})
    assert [a.acronym for a in shown.context["cl"].result_list] == ["AGA"]


def test_staff_without_any_permission_is_forbidden(client, agent_a):
    user = UserFactory(is_staff=True)
    client.force_login(user)
    assert client.get(changelist_url(Agent)).status_code == 403


def test_money_and_decimals_are_formatted_the_pt_br_way():
    from prudencial.templatetags.prudencial_format import brl, decimal_br

    assert brl("1234.5") == "R$ 1.234,50"
    assert decimal_br("0.95", 2) == "0,95"


def test_setting_parameters_records_the_buckets_history():
    week = week_with_parameters()
    created = ParameterBucket.history.filter(parameters_id=week.parameters.pk, history_type="+")
    assert sorted(created.values_list("index", flat=True)) == list(range(7))


def test_limited_staff_agent_autocomplete_stays_within_the_selector(client, limited_staff):
    limited_staff.user_permissions.add(Permission.objects.get(codename="add_representation"))
    client.force_login(limited_staff)
    response = client.get(
        "/admin/autocomplete/",
        {
            "app_label": "prudencial",
            "model_name": "representation",
            "field_name": "agent",
            "term": "AG",
        },
    )
    assert response.status_code == 200
    assert [row["text"].split(" ")[0] for row in response.json()["results"]] == ["AGA"]


@pytest.mark.parametrize(
    "model",
    [m for m in REGISTERED if m._meta.app_label == "prudencial"],
    ids=lambda m: m._meta.label,
)
def test_every_prudencial_admin_has_search_filters_and_no_foreign_key_drop_down(model, rf):
    """Search, filters, list_select_related and autocomplete (or read-only) for every foreign key
    that a form shows: no unbounded drop-down of users or agents (style.md, large tables)."""
    from django.db import models as db_models

    model_admin = admin.site._registry[model]
    assert model_admin.search_fields, "no search"
    assert model_admin.list_filter, "no filters"
    foreign_keys = [f.name for f in model._meta.fields if isinstance(f, db_models.ForeignKey)]
    if foreign_keys:
        assert model_admin.list_select_related, "foreign keys but no list_select_related"
    request = rf.get("/admin/")
    request.user = UserFactory(is_superuser=True, is_staff=True)
    if not model_admin.has_change_permission(request) and not model_admin.has_add_permission(
        request
    ):
        return  # read-only (the history tables): no form
    shown = set(model_admin.get_fields(request)) - set(model_admin.get_readonly_fields(request))
    for name in set(foreign_keys) & shown:
        assert name in (*model_admin.autocomplete_fields, *model_admin.raw_id_fields), name
