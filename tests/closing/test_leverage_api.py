"""The agents' leverage API on stored rows (tests/closing/admin_data): who sees what, who may
decide, and what a bad request gets. The signature re-check against a real enclave's answers is
tests/closing/test_leverage_signed.py."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission

from prudencial.closing.models import LeverageDecision
from tests.closing.admin_data import CANARY_TEXTS, make_closing
from tests.factories import UserFactory, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored():
    return make_closing()


def _user(agent, role="controls", name="decisor"):
    user = UserFactory(username=name)
    grant(user, agent, role=role)
    return user


def _staff(name="ccee.analista"):
    user = UserFactory(username=name, is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_leverageresult", content_type__app_label="closing")
    )
    return user


def _url(closing, agent, tail=""):
    return f"/api/v1/weeks/{closing.week.code}/agents/{agent.pk}/{tail}"


def _no_canary(response):
    text = response.content.decode()
    assert not any(c in text for c in CANARY_TEXTS), text


def test_the_agent_sees_its_own_result_with_every_figure(stored, client_for):
    closing, results, agents = stored
    client = client_for(_user(agents["HIDDEN"]))
    body = client.get(_url(closing, agents["HIDDEN"], "leverage/")).json()
    assert body["status"] == "computed" and body["figures"]["fa"] == results["HIDDEN"].fa
    assert body["decision"] == {"state": "pending", "at": None, "reason": ""}
    assert (
        body["closing"]["reference"] == closing.reference and body["closing"]["correction"] is None
    )
    # Rows written without an enclave answer are never shown as verified.
    assert body["signature"]["status"] == "unverified"
    risk = client.get(_url(closing, agents["HIDDEN"], "network-risk/")).json()
    assert risk["local"]["community"] == 1 and risk["network_mean"] == 0.125
    assert [c["rank"] for c in risk["communities"]] == [1, 2]
    assert "members" not in json.dumps(risk["communities"])
    history = client.get(f"/api/v1/agents/{agents['HIDDEN'].pk}/leverage/history/").json()
    assert [h["week"] for h in history] == [closing.week.code]
    assert history[0]["closing"]["parameters_version"] == closing.parameters_version


def test_staff_see_that_a_result_exists_and_its_figures_only_once_sent(stored, client_for):
    closing, _, agents = stored
    client = client_for(_staff())
    hidden = client.get(_url(closing, agents["HIDDEN"], "leverage/"))
    assert hidden.status_code == 200 and hidden.json()["figures"] is None
    assert hidden.json()["breakdown_jwe"] is None
    _no_canary(hidden)
    risk = client.get(_url(closing, agents["HIDDEN"], "network-risk/"))
    assert risk.json()["local"] is None
    _no_canary(risk)
    gone = client.get(_url(closing, agents["GONE"], "leverage/"))
    assert gone.json()["figures"] is None and gone.json()["decision"]["state"] == "cancelled"
    _no_canary(gone)
    sent = client.get(_url(closing, agents["SENT"], "leverage/")).json()
    assert sent["figures"]["fa"] == 1.5
    # The history is the agent's own: staff read the admin's week pages instead.
    assert client.get(f"/api/v1/agents/{agents['SENT'].pk}/leverage/history/").status_code == 404
    # Staff cannot decide for an agent.
    assert client.post(_url(closing, agents["HIDDEN"], "leverage/send/")).status_code == 403
    assert not LeverageDecision.objects.filter(result__agent=agents["HIDDEN"]).exists()


@pytest.mark.parametrize(
    "method,tail",
    [
        ("get", "leverage/"),
        ("post", "leverage/send/"),
        ("post", "leverage/cancel/"),
        ("get", "network-risk/"),
    ],
)
def test_another_agents_user_gets_404_as_for_nothing(stored, client_for, method, tail):
    closing, _, agents = stored
    client = client_for(_user(agents["SENT"], name="alheio"))
    response = getattr(client, method)(
        _url(closing, agents["HIDDEN"], tail), {"reason": "x"}, format="json"
    )
    assert response.status_code == 404
    _no_canary(response)
    assert not LeverageDecision.objects.filter(result__agent=agents["HIDDEN"]).exists()


def test_another_agents_history_is_404(stored, client_for):
    _, _, agents = stored
    client = client_for(_user(agents["SENT"], name="alheio"))
    response = client.get(f"/api/v1/agents/{agents['HIDDEN'].pk}/leverage/history/")
    assert response.status_code == 404
    _no_canary(response)


def test_a_user_who_only_represents_may_read_but_not_decide(stored, client_for):
    closing, _, agents = stored
    client = client_for(_user(agents["HIDDEN"], role="represents", name="representa"))
    assert client.get(_url(closing, agents["HIDDEN"], "leverage/")).status_code == 200
    refused = client.post(
        _url(closing, agents["HIDDEN"], "leverage/cancel/"), {"reason": "x"}, format="json"
    )
    assert refused.status_code == 403
    assert not LeverageDecision.objects.filter(result__agent=agents["HIDDEN"]).exists()


def test_a_result_whose_signature_does_not_verify_cannot_be_sent(stored, client_for):
    closing, _, agents = stored
    client = client_for(_user(agents["HIDDEN"]))
    refused = client.post(_url(closing, agents["HIDDEN"], "leverage/send/"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "unverified"
    assert not LeverageDecision.objects.filter(result__agent=agents["HIDDEN"]).exists()


def test_cancel_needs_a_reason_named_in_the_error(stored, client_for):
    closing, _, agents = stored
    client = client_for(_user(agents["HIDDEN"]))
    for body in ({}, {"reason": ""}, {"reason": "x" * 2001}):
        refused = client.post(
            _url(closing, agents["HIDDEN"], "leverage/cancel/"), body, format="json"
        )
        assert refused.status_code == 400 and "reason" in refused.json()["error"]["fields"], (
            refused.json()
        )
    blank = client.post(
        _url(closing, agents["HIDDEN"], "leverage/cancel/"), {"reason": "   "}, format="json"
    )
    assert blank.status_code == 400 and "reason" in blank.json()["error"]["fields"]
    assert not LeverageDecision.objects.filter(result__agent=agents["HIDDEN"]).exists()
    done = client.post(
        _url(closing, agents["HIDDEN"], "leverage/cancel/"), {"reason": "revisar"}, format="json"
    )
    assert done.status_code == 200 and done.json()["decision"]["state"] == "cancelled"
    assert done.json()["decision"]["reason"] == "revisar"


def test_a_missing_result_cannot_be_sent_and_says_why(stored, client_for):
    closing, _, agents = stored
    client = client_for(_user(agents["MISSING"]))
    body = client.get(_url(closing, agents["MISSING"], "leverage/")).json()
    assert body["signature"]["status"] == "unsigned" and body["figures"]["fa"] is None
    refused = client.post(_url(closing, agents["MISSING"], "leverage/send/"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_computed"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/weeks/not-a-week/agents/1/leverage/",
        "/api/v1/weeks/202399001/agents/1/leverage/",
        "/api/v1/weeks/202303001/agents/999999/leverage/",
        "/api/v1/weeks/202303001/agents/99999999999999999999/leverage/",
    ],
)
def test_unknown_weeks_and_agents_are_404(stored, client_for, path):
    _, _, agents = stored
    assert client_for(_user(agents["HIDDEN"])).get(path).status_code == 404


def test_without_a_token_nothing_is_shown(stored, api_client):
    closing, _, agents = stored
    for path in (
        _url(closing, agents["SENT"], "leverage/"),
        f"/api/v1/agents/{agents['SENT'].pk}/leverage/history/",
    ):
        assert api_client.get(path).status_code in (401, 403)
    assert api_client.post(_url(closing, agents["SENT"], "leverage/send/")).status_code in (
        401,
        403,
    )


def test_the_admin_network_panel_counts_k_without_lone_agents(stored, admin_client):
    from prudencial.closing.models import CommunityResult

    closing, _, _ = stored
    CommunityResult.objects.create(
        closing=closing, community=9, rank=3, size=1, isolated=True, members=[]
    )
    page = admin_client.get(f"/admin/closing/closing/{closing.pk}/network/").content.decode()
    assert "1 de 2" in page and "2 de 2" in page and "isolado" in page and "3 de" not in page
