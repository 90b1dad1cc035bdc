"""The development OpenID provider itself: it enforces PKCE, and the demo's wiring."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from prudencial.accounts.management.commands import run_devidp
from tests.accounts.conftest import CALLBACK, CPF_MARIA
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_provider_refuses_an_authorization_request_without_pkce(sso, browser):
    UserFactory(cpf=CPF_MARIA)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": sso.client_id,
            "redirect_uri": CALLBACK,
            "scope": "openid",
            "state": "s",
        }
    )
    url, _status, body = browser.go(f"{sso.issuer}/authorize/?{query}")
    url, _status, body = browser.submit_idp_login(url, body, "maria.sso", "senha-do-idp-123")
    refused = [u for u in browser.history if u.startswith(CALLBACK)]
    assert refused and "error=invalid_request" in refused[0]
    assert "_auth_user_id" not in browser.client.session


def test_the_demo_provider_knows_the_demo_agent_login(settings, tmp_path):
    from prudencial.management.commands.load_demo_market import AGENT_LOGIN

    settings.VAR_DIR = tmp_path
    agent = UserFactory(username=AGENT_LOGIN[0])
    provider = run_devidp.platform_provider("http://127.0.0.1:8000", port=9400)
    people = {p.username: p for p in provider.people}
    assert people[AGENT_LOGIN[0]].cpf == agent.cpf
    assert people[AGENT_LOGIN[0]].password == AGENT_LOGIN[1]
    assert "sem.representacao" in people
    assert "http://127.0.0.1:8000/accounts/oidc/callback/" in provider.redirect_uris
    assert "http://localhost:8000/accounts/oidc/callback/" in provider.redirect_uris
    run_devidp.use_provider(provider)
    assert settings.OIDC_OP_TOKEN_ENDPOINT == "http://127.0.0.1:9400/o/token/"
    assert settings.ACCOUNTS_LOCAL_LOGIN is True
