"""The cases API over HTTP, with the permission matrix: the agent's user, another agent's user,
staff (with and without alerts.change_case) and anonymous; each rule tried by someone it
should stop."""

from __future__ import annotations

import pytest

from prudencial.alerts import services
from prudencial.alerts.models import Case, CaseEvent, CaseState

pytestmark = pytest.mark.django_db


@pytest.fixture
def case(week, agent_a, make_closing, make_result, settings):
    settings.ALERTS_STAFF_EMAILS = ["risco@ccee.example"]
    closing = make_closing(week)
    result = make_result(closing, agent_a, fa=1.25)
    services.cases_open_for_closing(closing_id=closing.pk)
    case = Case.objects.get()
    case.result = result
    return case


def cases_url(agent) -> str:
    return f"/api/v1/agents/{agent.pk}/cases/"


def comments_url(case) -> str:
    return f"/api/v1/cases/{case.pk}/comments/"


def test_the_agents_user_lists_reads_and_answers(case, agent_a, agent_user, client_for):
    client = client_for(agent_user)
    body = client.get(cases_url(agent_a)).json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["id"] == case.pk
    assert (row["figure"], row["band"], row["threshold"], row["value"]) == (
        "fa",
        "alert",
        1.0,
        1.25,
    )
    assert row["week"] == case.week.code
    assert row["state"] == "open"
    assert row["comments_url"] == comments_url(case)

    history = client.get(comments_url(case)).json()
    assert history["count"] == 1
    assert [e["kind"] for e in history["results"]] == ["opened"]

    answer = client.post(
        comments_url(case), {"text": "Aporte de capital em curso.", "answer": True}, format="json"
    )
    assert answer.status_code == 201, answer.content
    assert (answer.json()["kind"], answer.json()["side"]) == ("answered", "agent")
    case.refresh_from_db()
    assert case.state == CaseState.ANSWERED
    comment = client.post(comments_url(case), {"text": "Segue o comprovante."}, format="json")
    assert comment.status_code == 201
    assert [e["kind"] for e in client.get(comments_url(case)).json()["results"]] == [
        "opened",
        "answered",
        "comment",
    ]


def test_another_agents_user_gets_404_everywhere(case, agent_a, agent_b, other_user, client_for):
    client = client_for(other_user)
    assert client.get(cases_url(agent_a)).status_code == 404
    assert client.get(comments_url(case)).status_code == 404
    refused = client.post(comments_url(case), {"text": "x", "answer": True}, format="json")
    assert refused.status_code == 404
    assert client.get(cases_url(agent_b)).json()["count"] == 0  # their own agent: no cases
    assert CaseEvent.objects.count() == 1
    assert client.get("/api/v1/cases/999999/comments/").status_code == 404
    assert client.get("/api/v1/agents/999999/cases/").status_code == 404


def test_anonymous_gets_401(case, agent_a, api_client):
    assert api_client.get(cases_url(agent_a)).status_code == 401
    assert api_client.get(comments_url(case)).status_code == 401
    assert api_client.post(comments_url(case), {"text": "x"}, format="json").status_code == 401


def test_staff_read_without_the_value_until_the_result_is_sent(
    case, agent_a, agent_user, staff_member, client_for, send_decision
):
    client = client_for(staff_member)
    row = client.get(cases_url(agent_a)).json()["results"][0]
    assert row["value"] is None
    assert row["band"] == "alert"
    send_decision(case.result, agent_user, action="cancelled")
    assert client.get(cases_url(agent_a)).json()["results"][0]["value"] is None
    send_decision(case.result, agent_user, action="sent")
    assert client.get(cases_url(agent_a)).json()["results"][0]["value"] == 1.25


def test_staff_comment_but_never_answer_for_the_agent(case, staff_member, client_for):
    client = client_for(staff_member)
    posted = client.post(comments_url(case), {"text": "Aguardamos o plano."}, format="json")
    assert posted.status_code == 201
    assert posted.json()["side"] == "staff"
    refused = client.post(comments_url(case), {"text": "ok", "answer": True}, format="json")
    assert refused.status_code == 400
    assert "answer" in refused.json()["error"]["fields"]
    case.refresh_from_db()
    assert case.state == CaseState.OPEN


def test_staff_who_may_only_read_cannot_comment(case, staff_user, client_for):
    """The test staff group has the prudencial view permissions only (no alerts.change_case)."""
    client = client_for(staff_user)
    assert client.get(comments_url(case)).status_code == 200
    refused = client.post(comments_url(case), {"text": "x"}, format="json")
    assert refused.status_code == 403
    assert CaseEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": "   "}, "text"),
        ({"text": "x" * 5001}, "text"),
        ({}, "text"),
        ({"text": "a", "answer": "talvez"}, "answer"),
    ],
)
def test_a_bad_comment_names_the_field(case, agent_user, client_for, payload, field):
    refused = client_for(agent_user).post(comments_url(case), payload, format="json")
    assert refused.status_code == 400
    assert field in refused.json()["error"]["fields"]
    assert CaseEvent.objects.count() == 1


def test_a_closed_case_takes_no_comment(case, agent_user, staff_member, client_for):
    services.case_close(case=case, by=staff_member, decision="justified", text="Justificado.")
    refused = client_for(agent_user).post(comments_url(case), {"text": "mais"}, format="json")
    assert refused.status_code == 409
    assert CaseEvent.objects.filter(kind="comment").count() == 0


def test_a_representation_that_ended_loses_the_cases_at_once(case, agent_a, agent_user, client_for):
    from datetime import timedelta

    from prudencial.models import Representation
    from tests.factories import today

    client = client_for(agent_user)
    assert client.get(cases_url(agent_a)).status_code == 200
    Representation.objects.filter(user=agent_user).update(valid_until=today() - timedelta(days=1))
    assert client.get(cases_url(agent_a)).status_code == 404
    assert client.get(comments_url(case)).status_code == 404


def test_the_list_reads_a_page_in_a_fixed_number_of_queries(
    week,
    agent_a,
    staff_member,
    client_for,
    make_closing,
    make_result,
    django_assert_max_num_queries,
    settings,
):
    settings.ALERTS_STAFF_EMAILS = ["risco@ccee.example"]
    from tests.factories import AgentFactory

    closing = make_closing(week)
    make_result(closing, agent_a, fa=1.1, largest=0.5)
    for n in range(5):
        make_result(closing, AgentFactory(acronym=f"AGX{n}"), fa=1.1, largest=0.5)
    services.cases_open_for_closing(closing_id=closing.pk)
    client = client_for(staff_member)
    client.get(cases_url(agent_a))  # warm the token and permission caches
    with django_assert_max_num_queries(12):
        body = client.get(cases_url(agent_a)).json()
    assert body["count"] == 2
    with django_assert_max_num_queries(12):
        first = client.get(cases_url(agent_a)).json()["results"][0]
    assert first["value"] is None
