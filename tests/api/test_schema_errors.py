"""Finding 12: the OpenAPI schema documents the error answers of every operation with one shared
component, and the token endpoint needs no token."""

from __future__ import annotations

import jsonschema
import pytest

pytestmark = pytest.mark.django_db

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def schema(api_client):
    response = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_every_operation_documents_the_error_answers(schema):
    seen = 0
    for path, method, operation in operations(schema):
        expected = {"400", "401", "403", "404", "411", "413", "414", "429"}
        if method != "get":
            expected.add("409")
        if "requestBody" in operation:
            expected.add("415")
        documented = operation["responses"]
        assert expected <= set(documented), (path, method, sorted(documented))
        for status in expected:
            assert documented[status] == {"$ref": f"#/components/responses/Error{status}"}
        seen += 1
    assert seen >= 7


def test_the_error_component_describes_what_the_api_answers(
    schema, api_client, client_for, agent_user
):
    component = schema["components"]["schemas"]["Error"]
    answers = [
        api_client.get("/api/v1/agents/"),  # 401
        api_client.get("/api/v1/nope/"),  # URL-level 404
        api_client.post("/api/v1/auth/token/", {}),  # 400 with fields
        client_for(agent_user).get("/api/v1/agents/?limit=0"),
        api_client.post("/api/v1/auth/token/", "[" * 99, content_type="application/json"),
    ]
    for answer in answers:
        assert answer.status_code >= 400
        jsonschema.validate(answer.json(), component)
    assert schema["components"]["responses"]["Error429"]["headers"]["Retry-After"]


def test_the_token_endpoint_needs_no_token_and_the_others_do(schema):
    token = schema["paths"]["/api/v1/auth/token/"]["post"]
    assert token["security"] == []
    for path, _method, operation in operations(schema):
        if path.startswith("/api/v1/public/"):  # what CCEE publishes: no login
            assert operation["security"] == [], path
        elif path != "/api/v1/auth/token/":
            assert {"tokenAuth": []} in operation["security"], path


def test_enclave_operations_document_502_and_503_and_every_operation_405(schema):
    for path, method, operation in operations(schema):
        assert "405" in operation["responses"], (path, method)
        if path.startswith("/api/v1/enclave/"):
            assert {"502", "503"} <= set(operation["responses"]), (path, method)
        else:
            assert "503" not in operation["responses"], (path, method)
