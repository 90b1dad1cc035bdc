"""Local accounts (SSO not configured): the login screen, "Criar / Redefinir Acesso" and
"Esqueceu o login de acesso?" by e-mail (mail.outbox), single-use expiring links (Django's
token generator), the lockout of the web login, and "only the account page until the e-mail is
confirmed" for pages and the API."""

from __future__ import annotations

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core import mail
from django.utils import timezone

from prudencial.accounts import services, signals
from prudencial.accounts.models import AccountState
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
NEW_PASSWORD = "Nova-senha-forte-2026"
SAME_ANSWER = "Se este e-mail estiver cadastrado, enviamos a ele um link"


def link_in(message) -> str:
    return re.search(r"http://testserver(/accounts/\S+/)", message.body).group(1)


def follow_link_and_set_password(client, path, password=NEW_PASSWORD):
    """Open the link (Django moves the token into the session and redirects), then choose."""
    opened = client.get(path)
    assert opened.status_code == 302, opened.content[:300]
    form_url = opened["Location"]
    assert form_url.endswith("/set-password/")
    page = client.get(form_url)
    assert page.status_code == 200 and 'id="set-password-form"' in page.content.decode()
    return client.post(form_url, {"new_password1": password, "new_password2": password})


@pytest.fixture
def registry_person():
    """Someone CCEE's registry created: an e-mail, no password yet, nothing confirmed."""
    user = UserFactory(username="carla", email="carla@agente.example", email_confirmed=False)
    user.set_unusable_password()
    user.save()
    return user


def test_the_login_screen_is_laid_out_as_the_seeds(client):
    page = client.get(LOGIN).content.decode()
    for text in (
        "Já tenho acesso",
        "Entre com seus dados para acesso ao ambiente CCEE",
        "Entre com seu usuário de acesso",
        "Digite sua senha",
        "Entrar",
        "Esqueceu a senha?",
        "Esqueceu o login de acesso?",
        "Criar / Redefinir Acesso",
        "Digite seu email para criar / redefinir sua conta",
        "Insira um e-mail",
        "Criação da conta de acesso ao ambiente CCEE",
        "Criar / Redefinir minha conta",
    ):
        assert text in page, text
    assert page.index("Já tenho acesso") < page.index("Criar / Redefinir Acesso")


def test_the_login_screen_in_english(client):
    client.post("/i18n/setlang/", {"language": "en", "next": LOGIN})
    page = client.get(LOGIN).content.decode()
    assert "I already have access" in page
    assert "Create / Reset Access" in page


def test_sign_in_and_out(client):
    user = UserFactory()
    response = client.post(LOGIN, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/accounts/"
    assert client.get("/accounts/").status_code == 200
    assert client.post("/accounts/logout/")["Location"] == LOGIN
    assert client.get("/accounts/")["Location"].startswith(LOGIN)


def test_a_wrong_password_says_so(client):
    user = UserFactory()
    page = client.post(LOGIN, {"username": user.username, "password": "errada"})
    assert page.status_code == 200
    assert "Login ou senha incorretos." in page.content.decode()


def test_create_access_by_email(client, registry_person):
    used = []

    def on_used(sender, user, purpose, **kwargs):
        used.append((user, purpose))

    signals.link_used.connect(on_used)
    try:
        response = client.post("/accounts/access/", {"email": "Carla@Agente.example"})
        assert response["Location"] == LOGIN + "?sent=access"
        assert len(mail.outbox) == 1
        message = mail.outbox[0]
        assert message.to == ["carla@agente.example"]
        assert message.subject == "Crie seu acesso à Plataforma de Monitoramento Prudencial"
        assert "Seu login de acesso: carla" in message.body
        done = follow_link_and_set_password(client, link_in(message))
    finally:
        signals.link_used.disconnect(on_used)
    assert done["Location"] == LOGIN + "?sent=password"
    registry_person.refresh_from_db()
    assert registry_person.check_password(NEW_PASSWORD)
    assert used == [(registry_person, "access")]
    # The link confirmed the address it went to.
    assert AccountState.objects.get(user=registry_person).confirmed_email == "carla@agente.example"
    assert services.email_is_confirmed(registry_person)
    login = client.post(LOGIN, {"username": "carla", "password": NEW_PASSWORD})
    assert login["Location"] == "/accounts/"
    assert client.get("/api/v1/agents/").status_code == 200


def test_reset_access_by_email(client):
    user = UserFactory(email="joao@agente.example")
    client.post("/accounts/access/", {"email": "joao@agente.example"})
    (message,) = mail.outbox
    assert message.subject == "Redefina seu acesso à Plataforma de Monitoramento Prudencial"
    follow_link_and_set_password(client, link_in(message))
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)


def test_an_unknown_email_is_answered_the_same_way(client):
    UserFactory(email="conhecido@agente.example")
    known = client.post("/accounts/access/", {"email": "conhecido@agente.example"})
    unknown = client.post("/accounts/access/", {"email": "ninguem@agente.example"})
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["conhecido@agente.example"]
    page_known = client.get(known["Location"]).content.decode()
    page_unknown = client.get(unknown["Location"]).content.decode()
    assert SAME_ANSWER in page_known
    strip = lambda html: re.sub(r'value="[^"]{20,}"', "", html)  # noqa: E731 (the CSRF token)
    assert strip(page_known) == strip(page_unknown)


def test_the_forgotten_login_goes_to_the_confirmed_email(client):
    user = UserFactory(username="pedro.souza", email="pedro@agente.example")
    response = client.post("/accounts/forgot-login/", {"email": "pedro@agente.example"})
    assert response["Location"] == LOGIN + "?sent=login"
    (message,) = mail.outbox
    assert message.to == ["pedro@agente.example"]
    assert "pedro.souza" in message.body
    assert PASSWORD not in message.body and "http://testserver/accounts/login/" in message.body
    # An unconfirmed address or an unknown one: nothing is sent, the same answer is given.
    UserFactory(username="nao.confirmado", email="nc@agente.example", email_confirmed=False)
    for email in ("nc@agente.example", "ninguem@agente.example"):
        answer = client.post("/accounts/forgot-login/", {"email": email})
        assert answer["Location"] == LOGIN + "?sent=login"
    assert len(mail.outbox) == 1
    assert user.username in mail.outbox[0].body


def test_a_used_link_is_refused(client):
    UserFactory(email="uma.vez@agente.example")
    client.post("/accounts/access/", {"email": "uma.vez@agente.example"})
    path = link_in(mail.outbox[0])
    follow_link_and_set_password(client, path)
    again = client.get(path)
    assert again.status_code == 410
    assert "Este link já foi usado ou não é válido." in again.content.decode()


def test_an_expired_link_is_refused(client, settings):
    user = UserFactory(email="atrasado@agente.example")
    refused = []

    def on_refused(sender, user, purpose, reason, **kwargs):
        refused.append((user, purpose, reason))

    sent_at = PasswordResetTokenGenerator()._now() - timedelta(
        seconds=settings.PASSWORD_RESET_TIMEOUT + 60
    )
    with mock.patch.object(PasswordResetTokenGenerator, "_now", return_value=sent_at):
        client.post("/accounts/access/", {"email": "atrasado@agente.example"})
    signals.link_refused.connect(on_refused)
    try:
        page = client.get(link_in(mail.outbox[0]))
    finally:
        signals.link_refused.disconnect(on_refused)
    assert page.status_code == 410
    assert "Este link expirou." in page.content.decode()
    assert refused == [(user, "access", "expired")]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_a_tampered_link_is_refused(client):
    UserFactory(email="x@agente.example")
    client.post("/accounts/access/", {"email": "x@agente.example"})
    path = link_in(mail.outbox[0])
    page = client.get(path[:-3] + "zz/")
    assert page.status_code == 410


def test_the_web_login_locks_out_with_the_time_to_wait(client):
    user = UserFactory()
    for _ in range(4):
        page = client.post(LOGIN, {"username": user.username, "password": "errada"})
        assert page.status_code == 200
    locked = client.post(LOGIN, {"username": user.username, "password": "errada"})
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    message = (
        "Acesso bloqueado após 5 tentativas de login malsucedidas: tente de novo daqui a "
        "15 minutos."
    )
    assert message in locked.content.decode()
    # The right password does not get in while locked out.
    right = client.post(LOGIN, {"username": user.username, "password": PASSWORD})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_until_the_email_is_confirmed_only_the_account_page(client, client_for, agent_a):
    user = UserFactory(email="novo@agente.example", email_confirmed=False)
    client.post(LOGIN, {"username": user.username, "password": PASSWORD})
    account = client.get("/accounts/").content.decode()
    assert 'id="email-unconfirmed"' in account and 'id="confirmation-required"' in account
    # Any other page sends them back to the account page.
    assert client.get("/")["Location"] == "/accounts/"
    # The API refuses, with the session and with a token, and says why.
    for api in (client, client_for(user)):
        answer = api.get("/api/v1/agents/")
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "email_not_confirmed"
        assert "e-mail ainda não foi confirmado" in answer.json()["error"]["message"]
    # The account page sends a confirmation link; opening it (GET, then the button) confirms.
    client.post("/accounts/", {"action": "send-confirmation"})
    (message,) = mail.outbox
    assert message.to == ["novo@agente.example"]
    path = link_in(message)
    assert client.get(path).status_code == 200
    assert not services.email_is_confirmed(user)  # a GET (a mail scanner) confirms nothing
    assert client.post(path)["Location"] == "/accounts/"
    assert services.email_is_confirmed(user)
    assert client.get("/api/v1/agents/").status_code == 200
    assert client.post(path).status_code == 410  # spent


def test_a_changed_email_is_unconfirmed_again(client_for):
    user = UserFactory(email="antigo@agente.example")
    assert client_for(user).get("/api/v1/agents/").status_code == 200
    user.email = "novo@agente.example"
    user.save()
    assert client_for(user).get("/api/v1/agents/").json()["error"]["code"] == "email_not_confirmed"


def test_staff_are_not_held_by_the_confirmation(client_for, staff_user):
    staff_user.email = ""
    staff_user.save()
    assert client_for(staff_user).get("/api/v1/agents/").status_code == 200


def test_the_links_expire_after_the_configured_time(settings):
    assert settings.PASSWORD_RESET_TIMEOUT == 3600
    user = UserFactory()
    token = services.access_tokens.make_token(user)
    assert services.access_tokens.check_token(user, token)
    later = timezone.now() + timedelta(hours=2)
    with mock.patch.object(
        PasswordResetTokenGenerator, "_now", return_value=later.replace(tzinfo=None)
    ):
        assert not services.access_tokens.check_token(user, token)
