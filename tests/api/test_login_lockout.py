"""Finding 10: a forged X-Forwarded-For neither dodges the throttle nor the lockout. Failures are
counted per username and per client address (django-axes); the client address is believed from
X-Forwarded-For only when the peer is one of our proxies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import RequestFactory

from prudencial.api.addresses import client_address
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
LOCKED_MESSAGE = (
    "Acesso bloqueado após 5 tentativas de login malsucedidas: tente de novo daqui a 15 minutos."
)


def login(client, username, password, *, peer="192.0.2.10", forwarded=None):
    extra = {"REMOTE_ADDR": peer}
    if forwarded:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.post(TOKEN, {"username": username, "password": password}, **extra)


def assert_locked_out(response):
    assert response.status_code == 429, response.content
    assert response.json()["error"] == {
        "code": "locked_out",
        "message": LOCKED_MESSAGE,
        "fields": {},
    }
    assert response["Retry-After"] == "900"
    assert "token" not in response.json()


def test_fifty_wrong_passwords_with_forged_forwarded_for_are_locked_out(api_client, agent_user):
    answers = [
        login(api_client, agent_user.username, "errada", forwarded=f"203.0.113.{i}").status_code
        for i in range(50)
    ]
    assert answers == [400] * 4 + [429] * 46
    # The right password does not get through while locked out.
    assert_locked_out(login(api_client, agent_user.username, PASSWORD, forwarded="203.0.113.99"))


def test_a_username_is_locked_whatever_address_it_comes_from(api_client, agent_user, settings):
    """Behind our proxy each attempt has a genuine, different client address: the username's own
    count still locks it, and other users are not affected."""
    settings.PRUDENCIAL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    for i in range(4):
        response = login(
            api_client, agent_user.username, "errada", peer="10.0.0.2", forwarded=f"198.51.100.{i}"
        )
        assert response.status_code == 400
    assert_locked_out(
        login(api_client, agent_user.username, "errada", peer="10.0.0.2", forwarded="198.51.100.9")
    )
    assert_locked_out(
        login(api_client, agent_user.username, PASSWORD, peer="10.0.0.2", forwarded="198.51.100.7")
    )
    other = UserFactory()
    assert login(api_client, other.username, PASSWORD, forwarded="198.51.100.1").status_code == 200


def test_an_address_is_locked_whatever_usernames_it_tries(api_client, agent_user):
    for i in range(4):
        assert login(api_client, f"ninguem{i}", "x", peer="192.0.2.50").status_code == 400
    assert_locked_out(login(api_client, "ninguem9", "x", peer="192.0.2.50"))
    assert_locked_out(login(api_client, agent_user.username, PASSWORD, peer="192.0.2.50"))
    # The user, from elsewhere, is not locked: the two counts are separate.
    assert login(api_client, agent_user.username, PASSWORD, peer="192.0.2.51").status_code == 200


def test_the_lockout_ends_after_the_cool_off(api_client, agent_user):
    from axes.models import AccessAttempt

    for _ in range(5):
        login(api_client, agent_user.username, "errada")
    assert_locked_out(login(api_client, agent_user.username, PASSWORD))
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16)
    )
    assert login(api_client, agent_user.username, PASSWORD).status_code == 200


def test_limit_and_cool_off_are_settings(api_client, agent_user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    assert login(api_client, agent_user.username, "errada").status_code == 400
    response = login(api_client, agent_user.username, "errada")
    assert response.status_code == 429 and response["Retry-After"] == "60"
    assert response.json()["error"]["message"] == (
        "Acesso bloqueado após 2 tentativas de login malsucedidas: tente de novo daqui a 1 minuto."
    )


def test_the_lockout_message_is_in_english_when_chosen(api_client, agent_user):
    api_client.cookies["django_language"] = "en"
    for _ in range(4):
        login(api_client, agent_user.username, "errada")
    response = login(api_client, agent_user.username, "errada")
    assert response.status_code == 429
    assert response.json()["error"]["message"] == (
        "Access blocked after 5 failed login attempts: try again in 15 minutes."
    )


def test_the_token_throttle_counts_the_peer_not_the_forged_header(
    api_client, settings, fresh_address
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth": "3/minute", "attestation": "3/minute"},
    }
    peer = fresh_address()
    statuses = [
        # No password: refused before any authentication, so only the throttle counts these.
        api_client.post(
            TOKEN, {"username": "x"}, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}"
        ).status_code
        for i in range(4)
    ]
    assert statuses == [400, 400, 400, 429]
    response = api_client.post(TOKEN, {"username": "x"}, REMOTE_ADDR=peer)
    assert response.json()["error"]["code"] == "throttled"
    assert response.json()["error"]["message"].startswith(
        "Requisições demais: tente de novo daqui a "
    )
    assert 0 < int(response["Retry-After"]) <= 60
    # Another client is not throttled.
    assert api_client.post(TOKEN, {"username": "x"}, REMOTE_ADDR=fresh_address()).status_code == 400


# --- the admin login -------------------------------------------------------------------------


def admin_login(client, username, password):
    return client.post("/admin/login/", {"username": username, "password": password})


def test_the_admin_login_locks_out_with_a_page_that_says_how_long(client, ccee_staff):
    for _ in range(4):
        assert admin_login(client, ccee_staff.username, "errada").status_code == 200
    response = admin_login(client, ccee_staff.username, "errada")
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    assert LOCKED_MESSAGE in page and 'lang="pt-br"' in page
    # Locked: the right password does not log in.
    response = admin_login(client, ccee_staff.username, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_admin_lockout_page_in_english(client, ccee_staff):
    client.cookies["django_language"] = "en"
    for _ in range(5):
        response = admin_login(client, ccee_staff.username, "errada")
    assert "try again in 15 minutes" in response.content.decode()


def test_admin_and_token_endpoint_share_the_count(client, api_client, ccee_staff):
    for _ in range(3):
        admin_login(client, ccee_staff.username, "errada")
    login(api_client, ccee_staff.username, "errada", peer="192.0.2.77")
    assert_locked_out(login(api_client, ccee_staff.username, "errada", peer="192.0.2.78"))


# --- the one client-address function -----------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        ([], "192.0.2.1", None, "192.0.2.1"),
        ([], "192.0.2.1", "203.0.113.5", "192.0.2.1"),  # no proxy trusted: header ignored
        (["10.0.0.0/8"], "192.0.2.1", "203.0.113.5", "192.0.2.1"),  # peer is not our proxy
        (["10.0.0.0/8"], "10.1.2.3", "203.0.113.5", "203.0.113.5"),
        # The client wrote the left part; our proxy appended the address it saw.
        (["10.0.0.0/8"], "10.1.2.3", "6.6.6.6, 203.0.113.5", "203.0.113.5"),
        (["10.0.0.0/8"], "10.1.2.3", "6.6.6.6, 203.0.113.5, 10.9.9.9", "203.0.113.5"),
        (["10.0.0.0/8"], "10.1.2.3", "10.4.4.4, 10.9.9.9", "10.4.4.4"),  # all ours
        (["10.0.0.0/8"], "10.1.2.3", "", "10.1.2.3"),
        (["10.0.0.0/8"], "10.1.2.3", "garbage, 10.9.9.9", "10.9.9.9"),
        (["10.0.0.0/8"], "10.1.2.3", "203.0.113.5:4711", "203.0.113.5"),
        (["2001:db8::/32"], "2001:db8::1", "[2001:db9::7]:443", "2001:db9::7"),
        (["192.0.2.7"], "::ffff:192.0.2.7", "203.0.113.5", "203.0.113.5"),
        ([], "", "203.0.113.5", ""),
    ],
)
def test_client_address(settings, trusted, peer, forwarded, expected):
    settings.PRUDENCIAL_TRUSTED_PROXIES = trusted
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_address(RequestFactory().get("/", **extra)) == expected


def test_axes_and_the_throttle_use_the_same_function(settings):
    from axes.helpers import get_client_ip_address

    from prudencial.api.throttling import ScopedRateThrottle

    settings.PRUDENCIAL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.8"
    )
    assert get_client_ip_address(request) == "203.0.113.8"
    assert ScopedRateThrottle().get_ident(request) == "203.0.113.8"


def test_the_lockout_answer_under_the_api_is_json_when_axes_middleware_gives_it(rf):
    """AXES_LOCKOUT_CALLABLE serves the admin's page; under /api/ (any login that marks the plain
    request) it answers the API's shape."""
    from prudencial.api.lockout import lockout_response

    response = lockout_response(rf.post(TOKEN))
    assert response.status_code == 429 and response["Retry-After"] == "900"
    assert response["Content-Type"] == "application/json"
