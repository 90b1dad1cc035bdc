"""Every door that takes a password is locked per account with the time to wait in its answer
(django-axes, one count for all doors), and every sign-in, failure, lockout and e-mail link of
the account pages reaches the access audit."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from prudencial.access.models import AuditEvent, AuditKind
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

MESSAGE = (
    "Acesso bloqueado após 5 tentativas de login malsucedidas: tente de novo daqui a 15 minutos."
)


def token_door(client, username, password):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password})


def admin_door(client, username, password):
    return client.post(
        "/admin/login/", {"username": username, "password": password, "otp_token": "123456"}
    )


def web_door(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


DOORS = {"token": token_door, "admin": admin_door, "web": web_door}


@pytest.mark.parametrize("door", DOORS)
def test_each_door_locks_the_account_with_the_time_to_wait(client, door):
    user = UserFactory(is_staff=door == "admin")
    for _ in range(4):
        assert DOORS[door](client, user.username, "errada").status_code in (200, 400)
    locked = DOORS[door](client, user.username, "errada")
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    assert MESSAGE in locked.content.decode()
    assert DOORS[door](client, user.username, PASSWORD).status_code == 429
    lockouts = AuditEvent.objects.filter(kind=AuditKind.LOCKOUT, username=user.username)
    assert lockouts.exists()
    assert lockouts.order_by("seq").first().detail["cool_off_seconds"] == 900


def test_the_doors_share_one_count_per_account(client):
    user = UserFactory()
    token_door(client, user.username, "errada")
    web_door(client, user.username, "errada")
    admin_door(client, user.username, "errada")
    web_door(client, user.username, "errada")
    assert token_door(client, user.username, "errada").status_code == 429


def test_the_enrolment_page_counts_wrong_passwords_too(client, superuser, ccee_staff):
    from prudencial.access.enrolment import enrolment_invite

    enrolment_invite(user=ccee_staff, by=superuser, base_url="http://testserver")
    link = re.search(r"http://testserver(/acesso/\S+/)", mail.outbox[0].body).group(1)
    for _ in range(4):
        client.post(link, {"step": "password", "password": "errada"})
    locked = client.post(link, {"step": "password", "password": "errada"})
    assert locked.status_code == 429 and MESSAGE in locked.content.decode()


def test_web_sign_in_and_failures_are_audited(client):
    user = UserFactory()
    web_door(client, user.username, "errada")
    web_door(client, user.username, PASSWORD)
    failed, signed_in = AuditEvent.objects.filter(
        kind__in=[AuditKind.LOGIN_FAILED, AuditKind.LOGIN]
    ).order_by("seq")
    assert (failed.kind, failed.username, failed.detail["path"]) == (
        "login_failed",
        user.username,
        "/accounts/login/",
    )
    assert (signed_in.kind, signed_in.actor_id) == ("login", user.pk)


def test_the_account_pages_e_mail_links_are_audited(client):
    user = UserFactory(email="pessoa@agente.example")
    client.post("/accounts/access/", {"email": user.email})
    path = re.search(r"https?://[^/\s]+(/accounts/access/\S+/)", mail.outbox[0].body).group(1)
    form_url = client.get(path)["Location"]  # Django moves the token into the session
    new = "Outra-senha-longa-2026"
    client.post(form_url, {"new_password1": new, "new_password2": new})
    client.get(path)  # the same link again: refused
    used = AuditEvent.objects.filter(kind=AuditKind.EMAIL_LINK).order_by("seq")
    assert [(e.actor_id, e.detail["ok"]) for e in used] == [(user.pk, True), (user.pk, False)]
    assert "verified" in _verify()


def _verify() -> str:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()
