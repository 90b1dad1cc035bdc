"""The admin asks CCEE staff for a TOTP code (django-otp): a staff login without its second
factor is refused; enrolment by an e-mailed, single-use link plus the password; the page of who
holds staff access."""

from __future__ import annotations

import io
import re

import pytest
from django.core import mail
from django.core.management import call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

from prudencial.access.models import AuditEvent, AuditKind
from tests.access.helpers import current_code, totp_code
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _no_otp_throttle(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


@pytest.fixture
def device(ccee_staff):
    return TOTPDevice.objects.create(user=ccee_staff, name="app", confirmed=True)


def admin_login(client, user, code=None, password=PASSWORD):
    data = {"username": user.username, "password": password, "next": "/admin/"}
    if code is not None:
        data["otp_token"] = code
    return client.post(LOGIN, data)


def in_admin(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_a_staff_login_without_its_code_is_refused(client, ccee_staff, device):
    response = admin_login(client, ccee_staff)
    assert response.status_code == 200
    assert "Digite o código de 6 dígitos" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not in_admin(client)


def test_a_staff_login_with_a_wrong_code_is_refused(client, ccee_staff, device):
    wrong = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    response = admin_login(client, ccee_staff, wrong)
    assert "Código do autenticador inválido" in response.content.decode()
    assert not in_admin(client)


def test_a_staff_account_without_a_device_cannot_enter_and_is_told_why(client, ccee_staff):
    response = admin_login(client, ccee_staff, "123456")
    assert "ainda não tem segundo fator cadastrado" in response.content.decode()
    assert not in_admin(client)


def test_a_superuser_needs_the_second_factor_too(client, superuser):
    assert "ainda não tem segundo fator" in admin_login(client, superuser).content.decode()
    assert not in_admin(client)


def test_password_and_current_code_open_the_admin(client, ccee_staff, device):
    response = admin_login(client, ccee_staff, current_code(device))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert in_admin(client)
    login = AuditEvent.objects.get(kind=AuditKind.LOGIN)
    assert login.actor_id == ccee_staff.pk and login.detail["path"] == LOGIN


def test_a_password_session_from_elsewhere_does_not_open_the_admin(client, ccee_staff, device):
    """Signed in with the password only (the web login, Client.login): the admin still asks for
    the code."""
    assert client.login(username=ccee_staff.username, password=PASSWORD)
    assert not in_admin(client)
    assert client.get("/admin/prudencial/agent/").status_code == 302


def test_second_factor_failures_count_for_the_lockout_and_the_audit(client, ccee_staff, device):
    for _ in range(4):
        assert admin_login(client, ccee_staff, "000000").status_code == 200
    response = admin_login(client, ccee_staff, "000000")
    assert response.status_code == 429
    assert "tente de novo daqui a 15 minutos" in response.content.decode()
    # The right code does not get through while locked out.
    assert admin_login(client, ccee_staff, current_code(device)).status_code == 429
    failures = AuditEvent.objects.filter(kind=AuditKind.LOGIN_FAILED).order_by("seq")
    assert [f.detail["reason"] for f in failures[:5]] == ["second_factor"] * 5
    assert failures[0].username == ccee_staff.username
    assert AuditEvent.objects.filter(kind=AuditKind.LOCKOUT, username=ccee_staff.username).exists()


def test_an_agent_s_user_is_still_refused(client, agent_user):
    response = admin_login(client, agent_user, "123456")
    assert response.status_code == 200 and not in_admin(client)


# --- enrolment ---------------------------------------------------------------------------------


def invite(client, superuser, staff):
    client.force_login(superuser)
    response = client.post(
        "/admin/access/staffaccess/",
        {"action": "send_second_factor_enrolment", "_selected_action": [staff.pk]},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    client.logout()
    (message,) = mail.outbox
    assert message.to == [staff.email]
    return re.search(r"http://testserver(/acesso/segundo-fator/\S+/)", message.body).group(1)


def test_enrolment_by_link_and_password_then_the_admin(client, superuser, ccee_staff):
    link = invite(client, superuser, ccee_staff)
    page = client.get(link).content.decode()
    assert "Confirme sua senha" in page and "otpauth" not in page
    # A wrong password shows no secret.
    page = client.post(link, {"step": "password", "password": "errada"}).content.decode()
    assert "Senha incorreta" in page and "totp-qr" not in page
    page = client.post(link, {"step": "password", "password": PASSWORD}).content.decode()
    assert "totp-qr" in page
    key = re.search(r"<code>([A-Z2-7]+)</code>", page).group(1)
    page = client.post(link, {"step": "code", "code": "000000"}).content.decode()
    assert "Código inválido" in page
    page = client.post(link, {"step": "code", "code": totp_code(key)}).content.decode()
    assert "Segundo fator cadastrado" in page
    assert TOTPDevice.objects.get(user=ccee_staff).confirmed
    # Single use.
    assert client.get(link).status_code == 400
    assert "já foi usado" in client.get(link).content.decode()
    # And the admin opens with password and code (a code works once: wait for the next one).
    TOTPDevice.objects.filter(user=ccee_staff).update(last_t=-1)
    assert admin_login(client, ccee_staff, totp_code(key)).status_code == 302
    assert in_admin(client)
    kinds = list(AuditEvent.objects.order_by("seq").values_list("kind", "detail"))
    assert (
        "second_factor_invited",
        {"device": TOTPDevice.objects.get(user=ccee_staff).pk, "email": ccee_staff.email},
    ) in kinds
    assert ("email_link_used", {"purpose": "totp_enrolment", "ok": True}) in kinds
    assert ("email_link_used", {"purpose": "totp_enrolment", "ok": False}) in kinds
    assert AuditEvent.objects.filter(kind="second_factor_enrolled", actor=ccee_staff).exists()


def test_the_code_step_needs_the_password_step_first(client, superuser, ccee_staff):
    link = invite(client, superuser, ccee_staff)
    device = TOTPDevice.objects.get(user=ccee_staff)
    client.post(link, {"step": "code", "code": current_code(device)})
    device.refresh_from_db()
    assert not device.confirmed


def test_a_tampered_or_expired_link_is_refused(client, superuser, ccee_staff, settings):
    link = invite(client, superuser, ccee_staff)
    assert client.get(link[:-3] + "xx/").status_code == 400
    from datetime import timedelta

    settings.ACCESS_TOTP_ENROLMENT_MAX_AGE = timedelta(seconds=-1)
    response = client.get(link)
    assert response.status_code == 400 and "expirou" in response.content.decode()


def test_only_superusers_send_enrolments(client, ccee_staff):
    other = UserFactory(is_staff=True, email="outro@ccee.org.br")
    client.force_login(ccee_staff)
    client.post(
        "/admin/access/staffaccess/",
        {"action": "send_second_factor_enrolment", "_selected_action": [other.pk]},
    )
    assert mail.outbox == []


def test_the_totp_enrol_command_for_demos(ccee_staff):
    out = io.StringIO()
    call_command("totp_enrol", ccee_staff.username, stdout=out)
    key = re.search(r"key \(base32\): (\S+)", out.getvalue()).group(1)
    device = TOTPDevice.objects.get(user=ccee_staff, confirmed=True)
    assert device.verify_token(totp_code(key))


# --- who holds staff access ---------------------------------------------------------------------


def test_the_staff_access_page_lists_staff_and_superusers_only(
    client, superuser, ccee_staff, agent_user
):
    TOTPDevice.objects.create(user=ccee_staff, name="app", confirmed=True)
    client.force_login(superuser)
    response = client.get("/admin/access/staffaccess/")
    assert response.status_code == 200
    rows = {r.username: r for r in response.context["cl"].result_list}
    assert set(rows) == {superuser.username, ccee_staff.username}
    assert rows[ccee_staff.username].has_device
    page = response.content.decode()
    assert "Quem tem acesso de equipe: 2 ativos, 1 superusuários" in page
    assert agent_user.username not in page


def test_the_staff_access_page_is_read_only(client, superuser, ccee_staff):
    client.force_login(superuser)
    assert client.get(f"/admin/access/staffaccess/{ccee_staff.pk}/change/").status_code == 200
    assert client.post(f"/admin/access/staffaccess/{ccee_staff.pk}/delete/").status_code == 403
    assert client.get("/admin/access/staffaccess/add/").status_code == 403
