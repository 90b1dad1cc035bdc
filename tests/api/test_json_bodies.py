"""Finding 8: JSON bodies nested too deep or with a repeated key are a 400 naming the rule, on
every endpoint that reads JSON (the anonymous token endpoint, the enclave's attestation)."""

from __future__ import annotations

import json

import pytest

from prudencial.api.parsers import nesting_depth
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
ATTESTATION = "/api/v1/enclave/attestation/"
DEEP = "[" * 100_000 + "]" * 100_000


def post_json(client, path, body: str):
    return client.post(path, body, content_type="application/json")


@pytest.fixture
def agent_api(client_for, agent_user):
    return client_for(agent_user)


@pytest.mark.parametrize("body", [DEEP, '{"a":' * 100_000 + "1" + "}" * 100_000, "[" * 100_000])
def test_a_body_nested_100000_deep_is_a_400_on_the_token_endpoint(api_client, body):
    response = post_json(api_client, TOKEN, body)
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "json_too_deep"
    assert "no máximo 32 níveis" in error["message"]


def test_a_body_nested_100000_deep_is_a_400_on_the_attestation_endpoint(agent_api):
    # Refused while parsing, before anything reaches the enclave.
    response = post_json(agent_api, ATTESTATION, '{"nonce": ' + DEEP + "}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "json_too_deep"


def test_the_depth_limit_itself_is_accepted_and_one_more_is_not(api_client, settings):
    at_limit = '{"username": ' + "[" * 31 + "]" * 31 + ', "password": "x"}'  # 32 levels
    response = post_json(api_client, TOKEN, at_limit)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"  # parsed; the field is refused
    over = '{"username": ' + "[" * 32 + "]" * 32 + ', "password": "x"}'
    assert post_json(api_client, TOKEN, over).json()["error"]["code"] == "json_too_deep"
    settings.PRUDENCIAL_API_MAX_JSON_DEPTH = 40
    assert post_json(api_client, TOKEN, over).json()["error"]["code"] == "invalid"


def test_brackets_inside_strings_do_not_count(api_client, agent_user):
    tricky = "[" * 1000 + '\\"' + "{" * 1000  # an escaped quote does not end the string
    body = json.dumps({"username": agent_user.username, "password": PASSWORD, "x": tricky})
    response = post_json(api_client, TOKEN, body)
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[["', 0),
        ("[]", 1),
        ('[1, {"a": [2]}]', 3),
        ('[[], [], {"b": {}}]', 3),
        ('["\\"[", [[0]]]', 3),
        ('"unterminated [[[', 0),
        ("[" * 100_000, 100_000),
    ],
)
def test_nesting_depth(text, depth):
    assert nesting_depth(text) == depth


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('{"username": "a", "username": "b", "password": "x"}', '"username"'),
        ('{"username": "a", "password": "x", "extra": {"k": 1, "k": 2}}', '"k"'),
    ],
)
def test_a_repeated_key_is_a_400_naming_it(api_client, body, key):
    response = post_json(api_client, TOKEN, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "json_duplicate_key"
    assert key in error["message"] and "repetida" in error["message"]


def test_a_repeated_key_is_a_400_on_the_attestation_endpoint(agent_api):
    response = post_json(agent_api, ATTESTATION, '{"nonce": "AAAA", "nonce": "BBBB"}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "json_duplicate_key"


@pytest.mark.parametrize("body", ["{", '{"username": NaN}', "\xff".encode("latin-1")])
def test_other_unreadable_json_is_a_400_parse_error(api_client, body):
    response = api_client.post(TOKEN, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert response.json()["error"]["message"].startswith("JSON inválido")


def test_an_unsupported_media_type_is_a_415(api_client):
    response = api_client.post(TOKEN, "<x/>", content_type="application/xml")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_parse_errors_name_the_place_not_the_parser_text_and_infinity_is_refused(api_client):
    for body in ('{"username": 1e999}', '{"username": NaN}', '{"username": ' + "9" * 5000 + "}"):
        answer = api_client.post("/api/v1/auth/token/", body, content_type="application/json")
        assert answer.status_code == 400, body[:40]
        message = answer.json()["error"]["message"]
        assert "sys.set_int_max_str_digits" not in message and "Expecting" not in message
    answer = api_client.post("/api/v1/auth/token/", '{"a": }', content_type="application/json")
    assert "linha 1, coluna 7" in answer.json()["error"]["message"]
