"""GET /api/v1/registry/lookup/?q=: CCEE's public list of agents (acronym, CNPJ, legal name of
the active agents) for any signed-in user, and nothing else."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.settings import api_settings

from tests.factories import AgentFactory, UserFactory, grant

URL = "/api/v1/registry/lookup/"
FIELDS = {"acronym", "cnpj", "legal_name"}


@pytest.fixture
def registry(db):
    return {
        "CM47": AgentFactory(acronym="CM47", legal_name="Comercializadora Quarenta e Sete S.A."),
        "CM470": AgentFactory(acronym="CM470", legal_name="Outra Energia Ltda."),
        "GE12": AgentFactory(
            acronym="GE12", legal_name="Geradora Doze S.A.", agent_class="generator"
        ),
        "OLD1": AgentFactory(
            acronym="OLD1", legal_name="Comercializadora Antiga S.A.", is_active=False
        ),
    }


@pytest.fixture
def client(client_for, db):
    return client_for(UserFactory(username="qualquer.pessoa"))  # represents nobody


def lookup(client, q):
    response = client.get(URL, {"q": q})
    assert response.status_code == 200, response.content
    return response.json()


def test_acronym_prefix_exact_first(client, registry):
    rows = lookup(client, "cm47")
    assert [r["acronym"] for r in rows] == ["CM47", "CM470"]
    assert rows[0] == {
        "acronym": "CM47",
        "cnpj": registry["CM47"].cnpj,
        "legal_name": "Comercializadora Quarenta e Sete S.A.",
    }


def test_cnpj_prefix_digits_or_masked(client, registry):
    agent = registry["GE12"]
    assert [r["acronym"] for r in lookup(client, agent.cnpj[:10])] == ["GE12"]
    masked = agent.cnpj_display  # 12.345.678/0001-95
    assert [r["acronym"] for r in lookup(client, masked)] == ["GE12"]
    assert [r["acronym"] for r in lookup(client, masked[:12])] == ["GE12"]


def test_legal_name_contains(client, registry):
    assert [r["acronym"] for r in lookup(client, "geradora doze")] == ["GE12"]
    assert {r["acronym"] for r in lookup(client, "comercializadora")} == {"CM47"}


def test_only_public_fields_and_only_active_agents(client, registry):
    rows = lookup(client, "S.A.") + lookup(client, "Ltda")
    assert rows and all(set(r) == FIELDS for r in rows)
    assert "OLD1" not in {r["acronym"] for r in rows}
    assert lookup(client, "OLD1") == []
    assert lookup(client, registry["OLD1"].cnpj) == []
    # the class is neither returned nor searchable
    assert lookup(client, "generator") == []
    assert lookup(client, "trader") == []


def test_users_and_representations_cannot_be_found(client, registry):
    person = UserFactory(
        username="maria.souza", first_name="Maria", last_name="Souza", cpf="52998224725"
    )
    grant(person, registry["CM47"])
    for q in ("maria", "souza", "maria.souza", person.cpf, person.cpf[:6], person.email):
        assert lookup(client, q) == [], q


def test_at_most_twenty(client, db):
    for i in range(25):
        AgentFactory(acronym=f"ZZ{i:02d}", legal_name=f"Zeta {i} S.A.")
    rows = lookup(client, "zz")
    assert len(rows) == 20
    assert [r["acronym"] for r in rows] == [f"ZZ{i:02d}" for i in range(20)]


def test_query_bounds(client, registry):
    for params in ({}, {"q": ""}, {"q": "c"}, {"q": " c "}, {"q": "x" * 101}):
        response = client.get(URL, params)
        assert response.status_code == 400, params
        assert "q" in response.json()["error"]["fields"]
    assert client.get(URL, {"q": "%%"}).json() == []  # LIKE wildcards are matched literally
    assert client.get(URL, {"q": "__"}).json() == []


def test_signed_in_only(api_client, registry):
    assert api_client.get(URL, {"q": "cm"}).status_code == 401


def test_throttled_per_user(client_for, registry):
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "registry_lookup": "3/minute"}
    from django.conf import settings

    with override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    ):
        first = client_for(UserFactory())
        assert [first.get(URL, {"q": "cm"}).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert client_for(UserFactory()).get(URL, {"q": "cm"}).status_code == 200


def test_one_query_whatever_the_registry_size(client, registry, django_assert_num_queries):
    for i in range(30):
        AgentFactory(acronym=f"QQ{i:02d}")
    client.get(URL, {"q": "qq"})  # the token's user is now known to the connection
    with django_assert_num_queries(2):  # the token (with its user), the lookup
        rows = lookup(client, "qq")
    assert len(rows) == 20
