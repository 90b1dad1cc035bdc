"""`make demo`'s data: load_demo_market builds a market through the services, prints working logins
of a CCEE staff user and of an agent's user, and a second run changes nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from prudencial.management.commands.load_demo_market import AGENT_LOGIN, STAFF_LOGIN
from prudencial.models import (
    Agent,
    AgentClass,
    AgentUserObjectPermission,
    Representation,
    User,
    Week,
    WeekStatus,
)
from prudencial.selectors import agent_list
from prudencial.services.representations import effective_q
from tests.access.helpers import totp_code
from tests.factories import today

pytestmark = pytest.mark.django_db


def load(**options) -> str:
    out = io.StringIO()
    call_command("load_demo_market", agents=20, verbosity=0, stdout=out, **options)
    return out.getvalue()


def test_demo_market_is_real_and_its_logins_work(client, api_client):
    output = load()

    assert Agent.objects.count() == 20
    assert {c for c in Agent.objects.values_list("agent_class", flat=True)} >= {
        AgentClass.TRADER,
        AgentClass.GENERATOR,
        AgentClass.FREE_CONSUMER,
    }
    assert not User.objects.filter(cpf__isnull=True).exists()  # people have CPFs
    # Permissions derived from representations, as the services derive them.
    assert AgentUserObjectPermission.objects.exists()
    assert set(Week.objects.values_list("status", flat=True)) == {
        WeekStatus.PUBLISHED,
        WeekStatus.CLOSED,
        WeekStatus.OPEN,
        WeekStatus.SCHEDULED,
    }
    for week in Week.objects.all():
        assert week.parameters.buckets.count() == 7

    # The printed staff login opens the admin.
    assert f"{STAFF_LOGIN[0]} / {STAFF_LOGIN[1]}" in output
    # With the printed second-factor key (the admin asks staff for a TOTP code).
    key = output.split(f"Segundo fator de {STAFF_LOGIN[0]} (TOTP, chave de demonstração): ")[1]
    code = totp_code(key.split()[0])
    client.post(
        "/admin/login/",
        {"username": STAFF_LOGIN[0], "password": STAFF_LOGIN[1], "otp_token": code},
    )
    assert client.get("/admin/prudencial/agent/").status_code == 200

    # The printed agent login gets a token and sees exactly the agents represented today.
    assert f"{AGENT_LOGIN[0]} / {AGENT_LOGIN[1]}" in output
    assert api_client.post(
        "/api/v1/auth/token/", {"username": AGENT_LOGIN[0], "password": AGENT_LOGIN[1]}
    ).json()["token"]
    # The printed token works (a token's key is shown once, when it is created).
    token = output.split("Token da API: Authorization: Token ")[1].split()[0]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    listed = {row["acronym"] for row in api_client.get("/api/v1/agents/").json()["results"]}
    demo_user = User.objects.get(username=AGENT_LOGIN[0])
    in_force = set(
        Representation.objects.filter(effective_q(today()), user=demo_user).values_list(
            "agent__acronym", flat=True
        )
    )
    ended = set(
        Representation.objects.filter(user=demo_user, valid_until__lt=today()).values_list(
            "agent__acronym", flat=True
        )
    )
    assert len(in_force) == 3 and ended  # the demo shows a lost access too
    assert listed == in_force == {a.acronym for a in agent_list(user=demo_user)}
    assert client.login(username=AGENT_LOGIN[0], password=AGENT_LOGIN[1])
    assert client.get("/admin/").status_code == 302  # agents' users are refused


def test_loading_again_changes_nothing_and_prints_the_logins():
    load()
    counts = (Agent.objects.count(), User.objects.count(), Representation.objects.count())

    output = load()

    assert "já está carregado" in output
    assert f"{AGENT_LOGIN[0]} / {AGENT_LOGIN[1]}" in output
    assert (Agent.objects.count(), User.objects.count(), Representation.objects.count()) == counts


def test_the_staff_edit_in_the_demo_history_names_the_staff_user():
    load()
    staff = User.objects.get(username=STAFF_LOGIN[0])
    open_week = Week.objects.get(status=WeekStatus.OPEN)
    assert open_week.parameters.history.filter(history_user=staff, history_type="~").exists()
