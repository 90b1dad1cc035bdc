"""Finding 9: an oversized body is a JSON 413 stating the limit; a URL without its trailing slash
is a JSON 404 saying which URL to use (no redirect that drops a POST's body, no DEBUG 500); every
URL-level error under /api/ is JSON whatever DEBUG says."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
MB20 = 20 * 1024 * 1024


@pytest.mark.parametrize("path", [TOKEN, "/api/v1/agents/", "/api/v1/enclave/attestation/"])
def test_a_20_mb_body_is_a_json_413_with_the_limit(api_client, path):
    response = api_client.post(path, b"{" + b" " * MB20 + b"}", content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "request_too_large"
    assert error["message"] == (
        f"O corpo da requisição tem {MB20 + 2} bytes; o limite é 2621440 bytes."
    )


def test_a_body_at_the_limit_is_read(api_client):
    body = b'{"username": "x", "password": "' + b"y" * (2_621_440 - 33) + b'"}'
    assert len(body) == 2_621_440
    response = api_client.post(TOKEN, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_django_refusing_what_it_reads_is_a_json_413_too(api_client, settings):
    """RequestDataTooBig, raised where Django reads the body (here a form past
    DATA_UPLOAD_MAX_MEMORY_SIZE while the edge allows more), keeps the API's shape."""
    settings.PRUDENCIAL_API_MAX_BODY_BYTES = 10 * 1024 * 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = "username=" + "a" * 5000 + "&password=x"
    response = api_client.post(TOKEN, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "request_too_large",
        "message": "O corpo da requisição passa do limite de 1000 bytes.",
        "fields": {},
    }


def test_a_chunked_body_without_content_length_is_a_411(client):
    response = client.generic("POST", TOKEN, HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 411
    assert response.json()["error"]["code"] == "length_required"


@pytest.mark.parametrize("content_length", ["12x", "-1", "²"])
def test_a_content_length_that_is_not_a_number_is_a_400(client, content_length):
    response = client.generic("POST", TOKEN, b"{}", CONTENT_LENGTH=content_length)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_content_length"


def test_outside_the_api_the_edge_leaves_bodies_to_django(client):
    # Django's own limit applies to the admin's forms, with its own (HTML) answer.
    response = client.post("/admin/login/", {"username": "x" * 3_000_000, "password": "y"})
    assert response.status_code == 400
    assert "text/html" in response["Content-Type"]


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    ("method", "path", "with_slash"),
    [
        ("post", "/api/v1/auth/token", "/api/v1/auth/token/"),
        ("get", "/api/v1/agents", "/api/v1/agents/"),
        ("post", "/api/v1/enclave/attestation", "/api/v1/enclave/attestation/"),
    ],
)
def test_a_url_without_its_trailing_slash_says_which_url_to_use(
    client, settings, debug, method, path, with_slash
):
    settings.DEBUG = debug
    response = getattr(client, method)(path, {"username": "a", "password": "b"})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "missing_trailing_slash"
    assert error["message"] == f"Endereço sem a barra final: use {with_slash} (com a barra final)."


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/v1/agents/abc/", "/api/v2/", "/api/x"])
def test_unknown_api_urls_are_json_404_with_debug_on_and_off(client, settings, debug, path):
    settings.DEBUG = debug
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_outside_the_api_django_still_redirects_and_answers_html(client):
    assert client.get("/admin").status_code == 301
    response = client.get("/nowhere/")
    assert response.status_code == 404 and "text/html" in response["Content-Type"]


@pytest.mark.parametrize("debug", [False, True])
def test_a_bad_host_header_under_the_api_is_a_json_400(client, settings, debug):
    settings.DEBUG = debug
    response = client.get("/api/v1/agents/", HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert response.json()["error"]["message"] == (
        "Requisição recusada: cabeçalhos ou formato inválidos."
    )


def test_an_error_a_view_renders_otherwise_is_json_under_the_api(client_for, agent_user):
    """The schema view renders OpenAPI YAML; its 401 (an inactive user's token) arrives as the
    API's JSON error, with its WWW-Authenticate."""
    client = client_for(agent_user)
    agent_user.is_active = False
    agent_user.save()
    response = client.get("/api/v1/schema/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "authentication_failed"
