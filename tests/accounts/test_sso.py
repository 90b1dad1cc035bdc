"""CCEE's single sign-on end to end: the platform (mozilla-django-oidc) against the development
OpenID provider running as its own process (django-oauth-toolkit), through a browser-less
browser that follows every redirect. Nothing of either library is mocked."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.signals import user_logged_in

from prudencial.models import User
from tests.accounts.conftest import CPF_AGENT, CPF_MARIA, CPF_NEW
from tests.factories import UserFactory, grant

pytestmark = pytest.mark.django_db


def test_a_user_without_representations_signs_in_and_sees_no_agent(sso, browser, agent_a):
    maria = UserFactory(username="maria", cpf=CPF_MARIA, email="maria@ccee.example")
    received = []

    def on_login(sender, user, **kwargs):
        received.append(user)

    user_logged_in.connect(on_login)
    try:
        url, status, body = browser.sso_login("maria.sso")
    finally:
        user_logged_in.disconnect(on_login)
    assert status == 200, body[:500]
    assert url == "http://testserver/accounts/"
    assert "maria" in body  # the account page of the matched user
    assert int(browser.client.session["_auth_user_id"]) == maria.pk
    assert maria in received
    # The authorization request carried PKCE (S256) and a nonce; the provider required them.
    authorize = next(u for u in browser.history if "/o/authorize/" in u)
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["nonce"] and query["state"]
    # Signed in with the session, and no representation: the API shows no agent.
    agents = browser.client.get("/api/v1/agents/")
    assert agents.status_code == 200, agents.content
    assert agents.json()["count"] == 0
    assert agents.json()["results"] == []


def test_the_user_is_matched_by_cpf_and_sees_the_agents_they_control(
    sso, browser, agent_a, agent_b
):
    ana = UserFactory(username="ana.local", cpf=CPF_AGENT, email="outro@example.com")
    grant(ana, agent_a)
    url, status, _body = browser.sso_login("agente.sso")
    assert status == 200 and url.endswith("/accounts/")
    assert int(browser.client.session["_auth_user_id"]) == ana.pk
    acronyms = [a["acronym"] for a in browser.client.get("/api/v1/agents/").json()["results"]]
    assert acronyms == ["AGA"]
    ana.refresh_from_db()
    assert ana.email == "agente@ccee.example"  # CCEE's address, verified there: confirmed here


def test_an_unknown_cpf_gets_a_new_user_with_no_agent(sso, browser, agent_a):
    url, status, _ = browser.sso_login("novo.sso")  # the claim is masked: 000.000.000-00
    assert status == 200 and url.endswith("/accounts/")
    user = User.objects.get(cpf=CPF_NEW)
    assert user.username == "novo.sso"
    assert not user.has_usable_password()
    assert (user.first_name, user.last_name, user.email) == ("Novo", "Lima", "novo@ccee.example")
    assert browser.client.get("/api/v1/agents/").json()["count"] == 0


def test_no_new_user_when_creation_is_off(sso, browser, settings):
    settings.OIDC_CREATE_USER = False
    url, status, body = browser.sso_login("novo.sso")
    assert url == "http://testserver/accounts/login/"
    assert "Seu CPF ainda não está cadastrado na plataforma" in body
    assert not User.objects.filter(cpf=CPF_NEW).exists()
    assert "_auth_user_id" not in browser.client.session


def test_a_login_without_a_cpf_claim_is_refused(sso, browser):
    url, _status, body = browser.sso_login("sem.cpf")
    assert url == "http://testserver/accounts/login/"
    assert "O login CCEE não informou um CPF válido" in body
    assert "_auth_user_id" not in browser.client.session


def test_the_cpf_claim_is_configurable(sso, browser, settings):
    """A provider whose CPF comes under another claim: with OIDC_CPF_CLAIM pointing elsewhere,
    the dev provider's "cpf" is not read, so the person has no CPF for the platform."""
    settings.OIDC_CPF_CLAIM = "documento"
    UserFactory(cpf=CPF_MARIA)
    url, _status, body = browser.sso_login("maria.sso")
    assert url.endswith("/accounts/login/")
    assert "não informou um CPF válido" in body


def test_the_session_is_refreshed_at_the_provider_when_the_id_token_is_due(sso, browser):
    maria = UserFactory(cpf=CPF_MARIA)
    browser.sso_login("maria.sso")
    session = browser.client.session
    session["oidc_id_token_expiration"] = 0  # the renewal time has passed
    session.save()
    hops_before = len(browser.history)
    url, status, _ = browser.go("http://testserver/accounts/")
    assert status == 200 and url == "http://testserver/accounts/"
    trip = browser.history[hops_before:]
    authorize = next(u for u in trip if "/o/authorize/" in u)
    assert parse_qs(urlsplit(authorize).query)["prompt"] == ["none"]  # silent: no login form
    assert any("/accounts/oidc/callback/" in u for u in trip)
    assert browser.client.session["oidc_id_token_expiration"] > 0
    assert int(browser.client.session["_auth_user_id"]) == maria.pk


def test_the_api_says_so_when_the_sso_session_is_due(sso, browser):
    UserFactory(cpf=CPF_MARIA)
    browser.sso_login("maria.sso")
    session = browser.client.session
    session["oidc_id_token_expiration"] = 0
    session.save()
    response = browser.client.get("/api/v1/agents/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_expired"


def test_logout_ends_the_session_at_the_provider_too(sso, browser):
    UserFactory(cpf=CPF_MARIA)
    browser.sso_login("maria.sso")
    id_token = browser.client.session["oidc_id_token"]
    response = browser.client.post("/accounts/logout/")
    location = response["Location"]
    assert location.startswith(sso.issuer + "/logout/")
    params = parse_qs(urlsplit(location).query)
    assert params["id_token_hint"] == [id_token]
    assert params["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]
    assert "_auth_user_id" not in browser.client.session
    url, status, _ = browser.go(location)
    assert url == "http://testserver/accounts/login/" and status == 200
    # The provider's session is over too: signing in again asks for the password.
    url, _status, body = browser.go("http://testserver/accounts/oidc/start/")
    assert "idp-login" in body


def test_the_login_page_offers_the_ccee_login_when_sso_is_configured(sso, client):
    page = client.get("/accounts/login/").content.decode()
    assert 'id="sso-login"' in page
    assert "Entrar com o login CCEE" in page
    # SSO configured: the local forms are off unless ACCOUNTS_LOCAL_LOGIN keeps them.
    assert 'id="login-form"' not in page
    assert client.post("/accounts/login/", {"username": "x", "password": "y"}).status_code == 404
    assert client.post("/accounts/access/", {"email": "a@example.com"}).status_code == 404


def test_sso_is_off_without_its_settings(client):
    assert client.get("/accounts/oidc/start/").status_code == 404
    assert client.get("/accounts/oidc/callback/?code=x&state=y").status_code == 404
    assert 'id="sso-login"' not in client.get("/accounts/login/").content.decode()
