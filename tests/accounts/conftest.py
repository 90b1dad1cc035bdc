"""Fixtures of the sign-in tests: the development OpenID provider as a real process, and a
browser-less "browser" that follows redirects across it and the platform."""

from __future__ import annotations

import re
import secrets
from html import unescape
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from prudencial.domain.identifiers import format_cpf
from tests.factories import make_cpf

CALLBACK = "http://testserver/accounts/oidc/callback/"
AFTER_LOGOUT = "http://testserver/accounts/login/"
IDP_PASSWORD = "senha-do-idp-123"

# People of the provider: their CPFs decide who they are on the platform.
CPF_MARIA = make_cpf(900_001)  # a platform user without representations
CPF_NEW = make_cpf(900_002)  # unknown to the platform: a new user on first sign-in
CPF_AGENT = make_cpf(900_003)  # a platform user who controls an agent


@pytest.fixture(autouse=True)
def _no_lockout_left_over(request):
    """django-axes keeps failures in the database: none carried between tests."""
    if not {"db", "transactional_db"} & set(request.fixturenames):
        yield
        return
    from axes.utils import reset

    request.getfixturevalue("db")
    reset()
    yield
    reset()


@pytest.fixture(scope="session")
def idp(tmp_path_factory):
    """django-oauth-toolkit's OpenID provider, started as its own process for the session."""
    from prudencial.accounts.devidp.launcher import DevIdentityProvider, Person

    provider = DevIdentityProvider(
        tmp_path_factory.mktemp("devidp"),
        # A secret that starts with "-", as token_urlsafe gives 1 time in 64: the launcher
        # must pass it as a value, not as the next option (it once failed CI that way).
        client_secret="-" + secrets.token_urlsafe(31),
        redirect_uris=[CALLBACK],
        post_logout_uris=[AFTER_LOGOUT],
        people=[
            Person("maria.sso", IDP_PASSWORD, CPF_MARIA, "maria@ccee.example", "Maria", "Souza"),
            # A masked CPF in the claim: matched all the same.
            Person(
                "novo.sso", IDP_PASSWORD, format_cpf(CPF_NEW), "novo@ccee.example", "Novo", "Lima"
            ),
            Person("agente.sso", IDP_PASSWORD, CPF_AGENT, "agente@ccee.example", "Ana", "Agente"),
            Person("sem.cpf", IDP_PASSWORD, None, "semcpf@ccee.example", "Sem", "CPF"),
        ],
    )
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture
def sso(idp, settings):
    """The platform configured for the provider (as OIDC_* in the environment would)."""
    for name, value in idp.rp_settings().items():
        setattr(settings, name, value)
    return idp


class Browser:
    """Follows redirects like a browser: the platform's URLs through Django's test client, the
    provider's over real HTTP (requests), each with its own cookies."""

    def __init__(self, client):
        self.client = client
        self.http = requests.Session()
        self.history: list[str] = []

    @staticmethod
    def _is_platform(url: str) -> bool:
        return urlsplit(url).netloc in {"", "testserver"}

    def _one(self, method: str, url: str, data=None):
        self.history.append(url)
        if self._is_platform(url):
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            call = self.client.post if method == "POST" else self.client.get
            response = call(path, data or {})
            return response.status_code, response.get("Location"), response.content.decode()
        response = self.http.request(method, url, data=data, allow_redirects=False, timeout=30)
        return response.status_code, response.headers.get("Location"), response.text

    def go(self, url: str, method: str = "GET", data=None, max_hops: int = 20):
        """Request and follow redirects; returns (final url, status, body)."""
        for _ in range(max_hops):
            status, location, body = self._one(method, url, data)
            if status not in (301, 302, 303, 307) or not location:
                return url, status, body
            url = urljoin(url, location)
            method, data = "GET", None
        raise AssertionError(f"too many redirects: {self.history}")

    def submit_idp_login(self, page_url: str, body: str, username: str, password: str):
        """Fill in the provider's login form on the page just shown and follow on."""
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
        nxt = re.search(r'name="next" value="([^"]*)"', body).group(1)
        return self.go(
            page_url,
            "POST",
            {
                "csrfmiddlewaretoken": csrf,
                "username": username,
                "password": password,
                "next": unescape(nxt),
            },
        )

    def sso_login(self, username: str, password: str = IDP_PASSWORD, start="/accounts/oidc/start/"):
        url, status, body = self.go(f"http://testserver{start}")
        assert "idp-login" in body, (url, status, body[:500])
        return self.submit_idp_login(url, body, username, password)


@pytest.fixture
def browser(client):
    return Browser(client)
