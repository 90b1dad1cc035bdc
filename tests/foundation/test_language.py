"""pt-BR is the default for everyone; English only when chosen (cookie set by /i18n/setlang/)."""

import pytest


@pytest.mark.django_db
def test_portuguese_even_for_an_english_browser(client):
    page = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert "Monitoramento Prudencial" in page.content.decode()


@pytest.mark.django_db
def test_english_when_chosen(client):
    client.post("/i18n/setlang/", {"language": "en", "next": "/admin/login/"})
    page = client.get("/admin/login/")
    assert "Prudential Monitoring Platform" in page.content.decode()


@pytest.mark.django_db
def test_api_errors_follow_the_same_rule(api_client):
    assert (
        "Autenticação necessária"
        in api_client.get("/api/v1/agents/", HTTP_ACCEPT_LANGUAGE="en").json()["error"]["message"]
    )
