"""Expiring API tokens: created by POST /api/v1/auth/token/ (the key shown once), refused with a
message saying why once expired or revoked, listed and revoked by their owner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from prudencial.access.models import AccessToken, AuditEvent, AuditKind
from prudencial.access.tokens import digest, token_create
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
TOKENS = "/api/v1/auth/tokens/"


def get_token(api_client, user, **extra):
    return api_client.post(TOKEN, {"username": user.username, "password": PASSWORD, **extra})


def with_key(api_client, key):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api_client


def test_the_token_endpoint_answers_the_key_once_with_its_expiry(api_client, agent_user, settings):
    settings.ACCESS_TOKEN_LIFETIME = timedelta(days=7)
    response = get_token(api_client, agent_user, name="cliente do agente")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"token", "expires_at", "id", "name"}
    token = AccessToken.objects.get(pk=body["id"])
    assert token.digest == digest(body["token"]) and token.prefix == body["token"][:8]
    assert body["token"] not in str(AccessToken.objects.filter(pk=token.pk).values().get())
    assert timedelta(days=7) - (token.expires_at - timezone.now()) < timedelta(minutes=1)
    assert body["name"] == "cliente do agente"
    agents = with_key(api_client, body["token"]).get("/api/v1/agents/")
    assert agents.status_code == 200
    assert [a["acronym"] for a in agents.json()["results"]] == ["AGA"]


def test_each_request_gives_a_new_token_and_the_older_ones_keep_working(api_client, agent_user):
    first = get_token(api_client, agent_user).json()["token"]
    second = get_token(api_client, agent_user).json()["token"]
    assert first != second
    for key in (first, second):
        assert with_key(api_client, key).get("/api/v1/agents/").status_code == 200


def test_an_expired_token_is_refused_with_a_message_saying_it_expired(api_client, agent_user):
    token, key = token_create(user=agent_user)
    AccessToken.objects.filter(pk=token.pk).update(
        created_at=timezone.now() - timedelta(days=31),
        expires_at=timezone.now() - timedelta(minutes=5),
    )
    response = with_key(api_client, key).get("/api/v1/agents/")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "token_expired"
    assert error["message"].startswith("Token expirado em ")
    assert "POST /api/v1/auth/token/" in error["message"]
    assert response["WWW-Authenticate"] == "Token"


def test_the_expiry_message_in_english(api_client, agent_user):
    token, key = token_create(user=agent_user)
    AccessToken.objects.filter(pk=token.pk).update(
        created_at=timezone.now() - timedelta(days=2), expires_at=timezone.now() - timedelta(days=1)
    )
    api_client.cookies["django_language"] = "en"
    response = with_key(api_client, key).get("/api/v1/agents/")
    assert response.json()["error"]["message"].startswith("Token expired on ")


def test_an_unknown_token_is_refused_as_invalid(api_client, agent_user):
    response = with_key(api_client, "nao-existe").get("/api/v1/agents/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response.json()["error"]["message"].startswith("Token inválido")


def test_the_owner_lists_tokens_without_their_keys(api_client, agent_user):
    keys = [token_create(user=agent_user, name=f"t{i}")[1] for i in range(3)]
    other, _ = token_create(user=UserFactory())
    response = with_key(api_client, keys[0]).get(TOKENS)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["name"] for r in rows] == ["t2", "t1", "t0"]
    assert {r["status"] for r in rows} == {"active"}
    assert other.pk not in {r["id"] for r in rows}
    text = response.content.decode()
    assert not any(key in text for key in keys)
    assert {r["prefix"] for r in rows} == {key[:8] for key in keys}


def test_the_owner_revokes_a_token_and_it_stops_working_at_once(api_client, agent_user):
    keep, keep_key = token_create(user=agent_user)
    gone, gone_key = token_create(user=agent_user)
    response = with_key(api_client, keep_key).delete(f"{TOKENS}{gone.pk}/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "revoked" and response.json()["revoked_at"]
    refused = with_key(api_client, gone_key).get("/api/v1/agents/")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_revoked"
    assert refused.json()["error"]["message"].startswith("Token revogado em ")
    assert with_key(api_client, keep_key).get("/api/v1/agents/").status_code == 200
    # A token can revoke itself (logout of a client).
    assert with_key(api_client, keep_key).delete(f"{TOKENS}{keep.pk}/").status_code == 200
    assert with_key(api_client, keep_key).get("/api/v1/agents/").status_code == 401


def test_nobody_revokes_or_sees_another_s_token(api_client, agent_user):
    theirs, their_key = token_create(user=UserFactory())
    _, key = token_create(user=agent_user)
    assert with_key(api_client, key).delete(f"{TOKENS}{theirs.pk}/").status_code == 404
    assert with_key(api_client, their_key).get("/api/v1/agents/").status_code == 200


def test_tokens_in_force_are_limited_per_person(api_client, agent_user, settings):
    settings.ACCESS_TOKEN_LIMIT_PER_USER = 2
    assert get_token(api_client, agent_user).status_code == 200
    assert get_token(api_client, agent_user).status_code == 200
    response = get_token(api_client, agent_user)
    assert response.status_code == 400
    assert "revogue um" in response.json()["error"]["message"]
    # Revoking one makes room.
    first = AccessToken.objects.filter(user=agent_user).last()
    from prudencial.access.tokens import token_revoke

    token_revoke(token=first, by=agent_user)
    assert get_token(api_client, agent_user).status_code == 200


def test_creation_and_revocation_are_audited(api_client, agent_user):
    body = api_client.post(
        TOKEN, {"username": agent_user.username, "password": PASSWORD}, REMOTE_ADDR="192.0.2.44"
    ).json()
    with_key(api_client, body["token"]).delete(f"{TOKENS}{body['id']}/", REMOTE_ADDR="192.0.2.45")
    created, revoked = AuditEvent.objects.filter(
        kind__in=[AuditKind.TOKEN_CREATED, AuditKind.TOKEN_REVOKED]
    ).order_by("seq")
    assert (created.kind, created.actor_id, created.ip_address) == (
        "token_created",
        agent_user.pk,
        "192.0.2.44",
    )
    assert (created.object_type, created.object_id) == ("access.accesstoken", str(body["id"]))
    assert (revoked.kind, revoked.actor_id, revoked.ip_address) == (
        "token_revoked",
        agent_user.pk,
        "192.0.2.45",
    )


def test_the_token_list_is_in_the_schema(api_client):
    schema = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/auth/tokens/" in schema["paths"]
    assert "delete" in schema["paths"]["/api/v1/auth/tokens/{id}/"]
    created = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]["200"]
    ref = created["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    assert {"token", "expires_at"} <= set(schema["components"]["schemas"][ref]["properties"])


def test_an_overlong_login_is_refused_before_any_lookup(api_client):
    response = api_client.post(TOKEN, {"username": "x" * 300, "password": "y"})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["username"]
