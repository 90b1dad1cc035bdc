"""Finding 7: limit and offset are bounded integers; anything else is a 400 naming the rule."""

from __future__ import annotations

import pytest

from tests.factories import AgentFactory, WeekFactory

pytestmark = pytest.mark.django_db

HUGE = "9223372036854775808"  # 2^63: past a signed 64-bit LIMIT/OFFSET


@pytest.fixture
def staff_api(client_for, ccee_staff):
    AgentFactory.create_batch(3)
    WeekFactory.create_batch(3)
    return client_for(ccee_staff)


@pytest.mark.parametrize("path", ["/api/v1/agents/", "/api/v1/weeks/"])
@pytest.mark.parametrize(
    ("query", "parameter", "rule"),
    [
        (f"limit={HUGE}", "limit", "deve ser um inteiro de 1 a 500."),
        (f"offset={HUGE}", "offset", "deve ser um inteiro de 0 a 2147483647."),
        ("limit=501", "limit", "deve ser um inteiro de 1 a 500."),
        ("limit=0", "limit", "deve ser um inteiro de 1 a 500."),
        ("limit=-1", "limit", "deve ser um inteiro de 1 a 500."),
        ("limit=abc", "limit", "deve ser um inteiro de 1 a 500."),
        ("limit=1e3", "limit", "deve ser um inteiro de 1 a 500."),
        ("offset=-5", "offset", "deve ser um inteiro de 0 a 2147483647."),
        ("offset=2147483648", "offset", "deve ser um inteiro de 0 a 2147483647."),
        ("offset=%20", "offset", "deve ser um inteiro de 0 a 2147483647."),
        ("limit=5&limit=abc", "limit", "informe este parâmetro uma vez só."),
        ("offset=1&offset=2", "offset", "informe este parâmetro uma vez só."),
    ],
)
def test_out_of_range_or_non_integer_page_parameters_are_a_400_naming_them(
    staff_api, path, query, parameter, rule
):
    response = staff_api.get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"] == {parameter: [rule]}
    assert parameter in error["message"]


@pytest.mark.parametrize("path", ["/api/v1/agents/", "/api/v1/weeks/"])
def test_bounds_themselves_are_accepted(staff_api, path):
    assert len(staff_api.get(f"{path}?limit=500").json()["results"]) >= 2
    assert staff_api.get(f"{path}?limit=1&offset=2147483647").json()["results"] == []
    page = staff_api.get(f"{path}?limit=1&offset=1").json()
    assert len(page["results"]) == 1 and page["previous"] and page["next"]


def test_default_page_is_100(staff_api):
    AgentFactory.create_batch(101)
    body = staff_api.get("/api/v1/agents/").json()
    assert len(body["results"]) == 100 and "limit=100" in body["next"]


def test_max_limit_is_a_setting(staff_api, settings):
    settings.PRUDENCIAL_API_MAX_LIMIT = 2
    response = staff_api.get("/api/v1/agents/?limit=3")
    assert response.json()["error"]["fields"] == {"limit": ["deve ser um inteiro de 1 a 2."]}


def test_schema_states_the_bounds(api_client):
    schema = api_client.get(
        "/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    ).json()
    parameters = {
        p["name"]: p["schema"] for p in schema["paths"]["/api/v1/agents/"]["get"]["parameters"]
    }
    assert parameters["limit"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert parameters["offset"] == {"type": "integer", "minimum": 0, "maximum": 2147483647}


def test_the_rule_in_english_when_chosen(staff_api):
    staff_api.cookies["django_language"] = "en"
    response = staff_api.get("/api/v1/agents/?limit=0&offset=1")
    assert response.json()["error"]["fields"] == {"limit": ["must be an integer from 1 to 500."]}
