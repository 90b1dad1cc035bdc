"""The access audit: every sign-in, failure, lockout, token, e-mail link and admin action, in an
append-only table chained by SHA-256; ``audit_verify`` names the first broken row; on PostgreSQL
the application's role can only INSERT and SELECT it."""

from __future__ import annotations

import threading

import pgtrigger
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from prudencial.access import audit
from prudencial.access.db import restrict_audit_privileges
from prudencial.access.models import AuditEvent, AuditKind
from prudencial.access.signals import email_link_used
from prudencial.models import Agent
from tests.factories import PASSWORD, AgentFactory

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the database's own protection is PostgreSQL's"
)
IGNORE = ("access.AuditEvent:audit_no_update", "access.AuditEvent:audit_no_delete")


def verify() -> str:
    import io

    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def some_events(api_client, client, agent_user, ccee_staff, superuser):
    """A sign-in, failures up to a lockout, a token, an e-mail link and admin actions."""
    api_client.post("/api/v1/auth/token/", {"username": agent_user.username, "password": PASSWORD})
    for _ in range(5):
        api_client.post(
            "/api/v1/auth/token/",
            {"username": "intruso", "password": "x"},
            REMOTE_ADDR="198.51.100.9",
        )
    email_link_used.send(sender="test", user=agent_user, purpose="reset_password", ok=True)
    client.force_login(superuser)
    agent = AgentFactory(acronym="AGZ")
    response = client.post(
        f"/admin/prudencial/agent/{agent.pk}/change/",
        {**_agent_form(agent), "legal_name": "AGZ Energia S.A."},
    )
    assert response.status_code in (200, 302)
    return agent


def _agent_form(agent: Agent) -> dict:
    from django.forms.models import model_to_dict

    data = {k: v for k, v in model_to_dict(agent).items() if v is not None}
    data["cnpj"] = agent.cnpj
    return data


def test_every_kind_of_event_is_recorded_and_the_chain_verifies(
    api_client, client, agent_user, ccee_staff, superuser
):
    some_events(api_client, client, agent_user, ccee_staff, superuser)
    kinds = set(AuditEvent.objects.values_list("kind", flat=True))
    assert {
        AuditKind.TOKEN_CREATED,
        AuditKind.LOGIN_FAILED,
        AuditKind.LOCKOUT,
        AuditKind.EMAIL_LINK,
        AuditKind.LOGIN,
    } <= kinds
    lockout = AuditEvent.objects.filter(kind=AuditKind.LOCKOUT).order_by("seq").first()
    assert (lockout.username, lockout.ip_address) == ("intruso", "198.51.100.9")
    failed = AuditEvent.objects.filter(kind=AuditKind.LOGIN_FAILED).order_by("seq").first()
    assert failed.username == "intruso" and failed.detail["reason"] == "credentials"
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert "Audit chain verified: " in verify()


def test_admin_actions_on_records_are_audited_one_by_one_and_in_bulk(client, superuser):
    client.force_login(superuser)
    agent = AgentFactory(acronym="AGX")
    from django.contrib.admin.models import CHANGE, DELETION, LogEntry
    from django.contrib.contenttypes.models import ContentType

    # One object: LogEntry.save (the admin's change form).
    LogEntry.objects.log_actions(
        superuser.pk, [agent], CHANGE, "Alterado nome.", single_object=True
    )
    one = AuditEvent.objects.get(kind=AuditKind.ADMIN_ACTION)
    assert (one.actor_id, one.object_type, one.object_id) == (
        superuser.pk,
        "prudencial.agent",
        str(agent.pk),
    )
    assert one.detail == {"action": "change"} and one.message == "Alterado nome."
    # Several at once (bulk delete, imports): bulk_create sends no post_save, still audited.
    others = [AgentFactory(acronym=f"AB{i}") for i in range(3)]
    LogEntry.objects.log_actions(superuser.pk, others, DELETION)
    bulk = AuditEvent.objects.filter(kind=AuditKind.ADMIN_ACTION, detail__action="deletion")
    assert sorted(bulk.values_list("object_id", flat=True)) == sorted(str(a.pk) for a in others)
    assert ContentType.objects.get_for_model(Agent)  # the type named is the record's
    assert "verified" in verify()


def test_the_admin_shows_the_audit_read_only_filtered_by_person_and_record(
    client, superuser, agent_user
):
    agent = AgentFactory(acronym="AGR")
    audit.record(AuditKind.LOGIN, actor=agent_user, username=agent_user.username)
    audit.record(AuditKind.ADMIN_ACTION, actor=superuser, obj=agent, message="mudou")
    audit.record(AuditKind.LOGIN_FAILED, username="alguem")
    client.force_login(superuser)  # one more event: the login
    url = "/admin/access/auditevent/"
    page = client.get(url)
    assert page.status_code == 200
    by_person = client.get(url, {"pessoa": agent_user.username}).context["cl"].result_list
    assert [e.kind for e in by_person] == ["login"]
    by_typed_login = client.get(url, {"pessoa": "alguem"}).context["cl"].result_list
    assert [e.kind for e in by_typed_login] == ["login_failed"]
    by_record = (
        client.get(url, {"object_type": "prudencial.agent", "object_id": str(agent.pk)})
        .context["cl"]
        .result_list
    )
    assert [e.message for e in by_record] == ["mudou"]
    event = AuditEvent.objects.first()
    assert client.get(f"{url}{event.seq}/change/").status_code == 200  # view only
    assert client.get(f"{url}add/").status_code == 403
    assert client.post(f"{url}{event.seq}/delete/").status_code == 403
    assert client.post(f"{url}{event.seq}/change/", {"message": "x"}).status_code == 403


def test_an_agent_s_user_cannot_read_the_audit(client, agent_user):
    client.force_login(agent_user)
    assert client.get("/admin/access/auditevent/").status_code == 302


# --- tampering -----------------------------------------------------------------------------


def three_events():
    return [audit.record(AuditKind.LOGIN_FAILED, username=f"u{i}") for i in range(3)]


def test_an_empty_chain_verifies():
    assert "empty" in verify()


@postgres_only
def test_a_row_altered_by_hand_is_named_by_audit_verify():
    events = three_events()
    assert "3 events" in verify()
    # A superuser bypasses the trigger (pgtrigger.ignore) and rewrites the middle row.
    with pgtrigger.ignore(*IGNORE):
        AuditEvent.objects.filter(seq=events[1].seq).update(username="outra-pessoa")
    with pytest.raises(CommandError, match=rf"broken at event #{events[1].seq}: .*altered"):
        verify()


@postgres_only
def test_a_rehashed_row_breaks_the_link_of_the_next_one():
    events = three_events()
    middle = AuditEvent.objects.values(*audit.HASHED_FIELDS).get(seq=events[1].seq)
    middle["username"] = "outra-pessoa"
    with pgtrigger.ignore(*IGNORE):
        AuditEvent.objects.filter(seq=events[1].seq).update(
            username="outra-pessoa", hash=audit.event_hash(middle)
        )
    with pytest.raises(CommandError, match=rf"#{events[2].seq}: prev_hash"):
        verify()


@postgres_only
def test_a_deleted_row_is_named():
    events = three_events()
    with pgtrigger.ignore(*IGNORE):
        AuditEvent.objects.filter(seq=events[1].seq).delete()
    with pytest.raises(CommandError, match=rf"#{events[1].seq}: missing"):
        verify()


@postgres_only
def test_the_triggers_refuse_update_and_delete_even_to_the_table_s_owner():
    event = audit.record(AuditKind.LOGIN_FAILED, username="u")
    for attempt in (
        lambda: AuditEvent.objects.filter(pk=event.pk).update(username="x"),
        lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="Cannot"), transaction.atomic():
            attempt()
    assert AuditEvent.objects.get(pk=event.pk).username == "u"


@postgres_only
def test_the_application_role_can_only_insert_and_read_the_audit():
    """A role granted everything on every table (as an application role often is) keeps only
    INSERT and SELECT on the audit after the migration's revoke; the trigger's session bypass
    (pgtrigger.ignore) does not help it, nor can it disable the trigger."""
    event = audit.record(AuditKind.LOGIN_FAILED, username="u")
    role = "access_app_test_role"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        cursor.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    assert restrict_audit_privileges(connection, [role]) == [role]

    def as_app(statement: str, params=()):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {role}")
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else None

    assert as_app("SELECT username FROM access_auditevent WHERE seq = %s", [event.pk]) == [("u",)]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        created = audit.record(AuditKind.LOGIN_FAILED, username="by-app")  # INSERT: allowed
        cursor.execute("RESET ROLE")
    assert created.seq == event.seq + 1
    refused = [
        "UPDATE access_auditevent SET username = 'x'",
        "DELETE FROM access_auditevent",
        "TRUNCATE access_auditevent",
        "ALTER TABLE access_auditevent DISABLE TRIGGER ALL",
    ]
    for statement in refused:
        with pytest.raises(DatabaseError, match="permission denied|must be owner"):
            as_app(statement)
    with pytest.raises(DatabaseError, match="permission denied"):
        as_app(
            "SET LOCAL pgtrigger.ignore = '{pgtrigger_audit_no_update_00000}'; "
            "UPDATE access_auditevent SET username = 'x'"
        )
    assert AuditEvent.objects.get(pk=event.pk).username == "u"
    assert "verified" in verify()


@postgres_only
def test_the_migration_revoked_writing_privileges_from_public():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege('public', 'access_auditevent', 'UPDATE'),"
            " has_table_privilege('public', 'access_auditevent', 'DELETE')"
        )
        assert cursor.fetchone() == (False, False)


# --- concurrency -----------------------------------------------------------------------------


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_unbroken_chain():
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        from django.db import connections

        try:
            for i in range(10):
                audit.record(AuditKind.LOGIN_FAILED, username=f"w{n}-{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert AuditEvent.objects.count() == 60
    assert "60 events" in verify()
