"""Query counts of the list endpoints, pinned: 1 and 50 visible rows cost the same (no N+1).

Agent list, per request with token authentication: the token with its user (1), the user's and
the groups' global permissions, asked by the selector (2), the page's count (1) and the page (1).
Week list: token (1), count (1), the page (1). Week detail: token (1), the week joined with
its parameters (1), the buckets (1).
"""

from __future__ import annotations

import pytest

from tests.factories import AgentFactory, UserFactory, WeekFactory, grant, week_with_parameters

pytestmark = pytest.mark.django_db

AGENT_LIST_QUERIES = 5
WEEK_LIST_QUERIES = 3
WEEK_DETAIL_QUERIES = 3


@pytest.mark.parametrize("visible", [1, 50])
def test_agent_list_for_an_agent_user(client_for, django_assert_num_queries, visible):
    user = UserFactory()
    agents = AgentFactory.create_batch(visible)
    for agent in agents:
        grant(user, agent)
    AgentFactory.create_batch(3)  # not visible
    client = client_for(user)

    with django_assert_num_queries(AGENT_LIST_QUERIES):
        response = client.get("/api/v1/agents/")

    assert response.json()["count"] == visible
    assert [row["id"] for row in response.json()["results"]] == [a.pk for a in agents]


@pytest.mark.parametrize("visible", [1, 50])
def test_agent_list_for_staff(client_for, staff_user, django_assert_num_queries, visible):
    AgentFactory.create_batch(visible)
    client = client_for(staff_user)

    with django_assert_num_queries(AGENT_LIST_QUERIES):
        response = client.get("/api/v1/agents/")

    assert response.json()["count"] == visible


@pytest.mark.parametrize("weeks", [1, 50])
def test_week_list(client_for, agent_user, django_assert_num_queries, weeks):
    week_with_parameters()
    WeekFactory.create_batch(weeks - 1)  # each copies the previous week's parameters
    client = client_for(agent_user)

    with django_assert_num_queries(WEEK_LIST_QUERIES):
        response = client.get("/api/v1/weeks/")

    codes = [row["code"] for row in response.json()["results"]]
    assert response.json()["count"] == weeks
    assert codes == sorted(codes, reverse=True)


def test_week_detail(client_for, agent_user, django_assert_num_queries):
    week = week_with_parameters()
    client = client_for(agent_user)

    with django_assert_num_queries(WEEK_DETAIL_QUERIES):
        response = client.get(f"/api/v1/weeks/{week.code}/")

    assert len(response.json()["parameters"]["buckets"]) == 7
