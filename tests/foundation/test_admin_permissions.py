"""Permission rules of the admin, attacked: staff who are not superusers cannot raise privileges
or reach superusers' and other staff members' accounts (passwords included); frozen parameters
are read-only; ending and deleting representations revoke access at once; the staff group
(setup_roles) sees the enclave's key registry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.urls import reverse

from prudencial.management.commands.setup_roles import STAFF_GROUP
from prudencial.models import ParameterBucket, Representation, Week
from prudencial.selectors import agent_list
from tests.factories import PASSWORD, UserFactory, grant, today, week_with_parameters
from tests.foundation.admin_forms import change_form_data

pytestmark = pytest.mark.django_db


def user_url(user, view: str = "change") -> str:
    if view == "password":
        return reverse("admin:auth_user_password_change", args=[user.pk])
    return reverse(f"admin:prudencial_user_{view}", args=[user.pk])


# --- 5. the UserAdmin privilege lock -----------------------------------------------------------


def test_staff_cannot_raise_an_agents_user_privileges(client, ccee_staff, agent_user):
    client.force_login(ccee_staff)
    page = client.get(user_url(agent_user))
    assert page.status_code == 200
    data = change_form_data(page, first_name="Novo nome")
    data.update(
        is_staff="on",
        is_superuser="on",
        groups=[str(Group.objects.get(name=STAFF_GROUP).pk)],
        user_permissions=[],
    )

    response = client.post(user_url(agent_user), data)

    assert response.status_code == 302
    agent_user.refresh_from_db()
    assert agent_user.first_name == "Novo nome"  # the allowed change went through
    assert not agent_user.is_staff and not agent_user.is_superuser
    assert not agent_user.groups.exists()


def test_staff_cannot_raise_their_own_privileges(client, ccee_staff):
    client.force_login(ccee_staff)
    data = change_form_data(client.get(user_url(ccee_staff)), is_superuser="on")
    client.post(user_url(ccee_staff), data)
    ccee_staff.refresh_from_db()
    assert not ccee_staff.is_superuser


@pytest.mark.parametrize("target", ["superuser", "other_staff"])
@pytest.mark.parametrize("view", ["change", "password", "delete"])
def test_staff_cannot_reach_superusers_or_other_staff(client, ccee_staff, superuser, target, view):
    other = superuser if target == "superuser" else UserFactory(is_staff=True)
    client.force_login(ccee_staff)

    if view == "change":
        page = client.get(user_url(other))  # they may look, read-only
        assert page.status_code == 200 and not page.context["has_change_permission"]
        response = client.post(user_url(other), {"first_name": "Mudado", "username": "x"})
        assert response.status_code == 403
    elif view == "password":
        assert client.get(user_url(other, view)).status_code == 403
        response = client.post(
            user_url(other, view),
            {
                "password1": "nova-senha-forte-987",
                "password2": "nova-senha-forte-987",
                "usable_password": "true",
            },
        )
        assert response.status_code == 403
    else:
        assert client.post(user_url(other, view), {"post": "yes"}).status_code == 403
    other.refresh_from_db()
    assert other.first_name != "Mudado"
    assert other.check_password(PASSWORD)


def test_staff_may_change_an_agents_users_password(client, ccee_staff, agent_user):
    client.force_login(ccee_staff)
    response = client.post(
        user_url(agent_user, "password"),
        {
            "password1": "nova-senha-forte-987",
            "password2": "nova-senha-forte-987",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    agent_user.refresh_from_db()
    assert agent_user.check_password("nova-senha-forte-987")


def test_superuser_may_change_a_staff_members_password(client, superuser, ccee_staff):
    client.force_login(superuser)
    response = client.post(
        user_url(ccee_staff, "password"),
        {
            "password1": "nova-senha-forte-987",
            "password2": "nova-senha-forte-987",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    ccee_staff.refresh_from_db()
    assert ccee_staff.check_password("nova-senha-forte-987")


# --- frozen parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["computed", "published"])
def test_frozen_parameters_are_read_only_in_the_admin(client, superuser, status):
    week = week_with_parameters()
    Week.objects.filter(pk=week.pk).update(status=status)
    url = reverse("admin:prudencial_riskparameters_change", args=[week.parameters.pk])
    client.force_login(superuser)

    page = client.get(url)
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert 'name="_save"' not in page.content.decode()

    before = list(ParameterBucket.objects.values_list("volatility", flat=True))
    response = client.post(url, {"pld_floor": "1", "buckets-0-volatility": "9"})
    assert response.status_code == 403
    assert list(ParameterBucket.objects.values_list("volatility", flat=True)) == before


# --- representations: end today and delete revoke at once -------------------------------------


def test_end_today_action_revokes_access_at_once(client, ccee_staff, agent_user, agent_a):
    rep = Representation.objects.get(user=agent_user, agent=agent_a)
    assert list(agent_list(user=agent_user)) == [agent_a]
    client.force_login(ccee_staff)

    response = client.post(
        reverse("admin:prudencial_representation_changelist"),
        {"action": "end_today", ACTION_CHECKBOX_NAME: [str(rep.pk)]},
    )

    assert response.status_code == 302
    rep.refresh_from_db()
    assert rep.valid_until == today() - timedelta(days=1)
    assert not agent_list(user=agent_user).exists()
    assert not agent_user.has_perm("view_agent", agent_a)


def test_delete_in_the_admin_revokes_access_at_once(client, superuser, agent_user, agent_a):
    rep = Representation.objects.get(user=agent_user, agent=agent_a)
    client.force_login(superuser)

    response = client.post(
        reverse("admin:prudencial_representation_delete", args=[rep.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Representation.objects.filter(pk=rep.pk).exists()
    assert not agent_list(user=agent_user).exists()


def test_bulk_delete_in_the_admin_revokes_access_at_once(client, superuser, agent_user, agent_a):
    other = UserFactory()
    grant(other, agent_a)
    reps = Representation.objects.filter(agent=agent_a)
    client.force_login(superuser)

    response = client.post(
        reverse("admin:prudencial_representation_changelist"),
        {
            "action": "delete_selected",
            "post": "yes",
            ACTION_CHECKBOX_NAME: [str(r.pk) for r in reps],
        },
    )

    assert response.status_code == 302
    assert not Representation.objects.exists()
    assert not agent_list(user=agent_user).exists()
    assert not agent_list(user=other).exists()


def test_staff_have_no_delete_permission_on_representations(client, ccee_staff, agent_user):
    rep = Representation.objects.get(user=agent_user)
    client.force_login(ccee_staff)
    url = reverse("admin:prudencial_representation_delete", args=[rep.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert agent_list(user=agent_user).exists()


# --- 6. setup_roles: the key registry ----------------------------------------------------------


@pytest.mark.parametrize("model", ["enclavekey", "sealedkeyset"])
def test_staff_group_sees_the_enclave_key_registry(client, ccee_staff, model):
    client.force_login(ccee_staff)
    assert ccee_staff.has_perm(f"enclave_bridge.view_{model}")
    assert not ccee_staff.has_perm(f"enclave_bridge.change_{model}")
    response = client.get(reverse(f"admin:enclave_bridge_{model}_changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("granted", "refused"),
    [
        (
            ["closing.view_closing", "closing.view_leverageresult", "closing.run_closing",
             "closing.submit_trade_network"],
            ["closing.change_leverageresult", "closing.add_leveragedecision",
             "closing.change_closing", "closing.delete_closing"],
        ),
        (
            ["seal.view_criterion", "seal.add_criterion", "seal.change_evaluation",
             "seal.view_decisionlog", "seal.view_evidence"],
            ["seal.change_decisionlog", "seal.add_evidence", "seal.change_adherenceresult",
             "seal.delete_evaluation"],
        ),
    ],
    ids=["closing", "seal"],
)  # fmt: skip
def test_staff_group_runs_the_closing_and_the_seal_but_never_writes_what_services_write(
    client, ccee_staff, granted, refused
):
    for permission in granted:
        assert ccee_staff.has_perm(permission), permission
    for permission in refused:
        assert not ccee_staff.has_perm(permission), permission
    client.force_login(ccee_staff)
    assert client.get(reverse("admin:closing_closing_changelist")).status_code == 200
    assert client.get(reverse("admin:seal_evaluation_changelist")).status_code == 200


# --- 7. the week list in the admin does not fetch buckets -------------------------------------


def test_admin_week_list_does_not_prefetch_buckets(
    client, superuser, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    week_with_parameters()
    client.force_login(superuser)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("admin:prudencial_week_changelist")).status_code == 200
    assert not any("prudencial_parameterbucket" in q["sql"] for q in queries.captured_queries)
