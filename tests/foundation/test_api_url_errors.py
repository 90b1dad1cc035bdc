"""Errors outside DRF views (unknown URLs, crashes) keep the API's JSON shape under /api/."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/v1/agents/abc/", "/api/v2/agents/"])
def test_unknown_api_urls_answer_json_404(client, path):
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_non_api_404_stays_html(client):
    answer = client.get("/nowhere/")
    assert answer.status_code == 404 and "text/html" in answer["Content-Type"]


def test_api_500_is_json(rf):
    from prudencial.api.errors import handler500

    answer = handler500(rf.get("/api/v1/agents/"))
    assert answer.status_code == 500 and b'"server_error"' in answer.content
