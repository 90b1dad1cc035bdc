"""GET /api/v1/schemas/{portfolio,counterparties}.json: the published JSON Schema is the domain
package's, versioned, cacheable, validates its example, refuses a broken payload and is the very
schema the enclave compiles."""

from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft202012Validator

from prudencial.domain import formats

URLS = {
    "portfolio": "/api/v1/schemas/portfolio.json",
    "counterparties": "/api/v1/schemas/counterparties.json",
}


@pytest.fixture
def agent_client(client_for, agent_user):
    return client_for(agent_user)


@pytest.mark.parametrize("kind", formats.KINDS)
def test_published_schema_is_the_domain_one(api_client, agent_client, kind):
    assert api_client.get(URLS[kind]).status_code == 401  # signed-in users
    response = agent_client.get(URLS[kind])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/schema+json"
    assert response["ETag"].startswith('"')
    assert "max-age" in response["Cache-Control"]
    schema = json.loads(response.content)
    assert schema == formats.json_schema(kind)
    assert schema["$id"].endswith(f"{formats.SCHEMA_IDS[kind]}.json")
    assert "/v2" in schema["$id"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("kind", formats.KINDS)
def test_schema_validates_its_example_and_refuses_a_broken_one(agent_client, kind):
    schema = json.loads(agent_client.get(URLS[kind]).content)
    validator = Draft202012Validator(schema)
    (example,) = schema["examples"]
    assert example == formats.example_payload(kind)
    assert list(validator.iter_errors(example)) == []

    rows = "contracts" if kind == "portfolio" else "counterparties"
    negative = copy.deepcopy(example)
    negative[rows][0]["volume_mwm" if kind == "portfolio" else "mitigation_brl"] = -1.0
    missing = copy.deepcopy(example)
    del missing["agent"]
    old_version = copy.deepcopy(example) | {"schema": formats.SCHEMA_IDS[kind][:-2] + "v1"}
    extra = copy.deepcopy(example) | {"unexpected": 1}
    for broken in (negative, missing, old_version, extra):
        assert list(validator.iter_errors(broken)), broken
        # the domain's own walker (the host's and the enclave's rules) agrees
        assert formats.validate(kind, broken, agent=example["agent"], week=example["week"])


@pytest.mark.parametrize("kind", formats.KINDS)
def test_published_schema_is_what_the_enclave_compiles(agent_client, week_two_types, kind):
    from enclave_bridge.enclave import validation

    published = json.loads(agent_client.get(URLS[kind]).content)
    assert validation.validator(kind).schema == published
    types = week_two_types.parameters.energy_types
    for_week = json.loads(agent_client.get(URLS[kind], {"week": week_two_types.code}).content)
    assert validation.validator(kind, types).schema == for_week


def test_etag_answers_not_modified(agent_client):
    first = agent_client.get(URLS["portfolio"])
    again = agent_client.get(URLS["portfolio"], HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    other = agent_client.get(URLS["counterparties"], HTTP_IF_NONE_MATCH=first["ETag"])
    assert other.status_code == 200


def test_week_schema_carries_the_week_energy_types(client_for, agent_user, week_two_types):
    agent_client = client_for(agent_user)
    response = agent_client.get(URLS["portfolio"], {"week": week_two_types.code})
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("private")
    schema = json.loads(response.content)
    assert schema == formats.json_schema("portfolio", ["conventional", "incentivized_50"])
    energy = schema["properties"]["contracts"]["items"]["properties"]["energy_type"]
    assert energy["enum"] == ["conventional", "incentivized_50"]
    default = json.loads(agent_client.get(URLS["portfolio"]).content)
    assert response["ETag"] != agent_client.get(URLS["portfolio"])["ETag"]
    assert default == formats.json_schema("portfolio")


def test_week_schema_needs_a_signed_in_user_and_a_known_week(
    api_client, client_for, agent_user, week
):
    assert api_client.get(URLS["portfolio"], {"week": week.code}).status_code == 401
    assert client_for(agent_user).get(URLS["portfolio"], {"week": "209901001"}).status_code == 404
