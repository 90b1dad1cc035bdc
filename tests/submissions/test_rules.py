"""The rules of a submission, checked on the host before anything is stored, each with the test
that breaks it (issue 9 item 4). No enclave here: the envelopes are well-formed JWE headers
naming a registered key, which is all the host reads of them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from prudencial.domain.calendar import has_cadence_event
from prudencial.domain.errors import DomainError
from prudencial.models import Representation, Week, WeekStatus
from prudencial.submissions.models import Batch, IdempotencyRecord, Submission
from tests.factories import AgentFactory, UserFactory, grant
from tests.submissions.conftest import WEEK, fake_jwe, open_week

pytestmark = pytest.mark.django_db


def url(week: str, agent_id: int, kind: str = "portfolio") -> str:
    return f"/api/v1/weeks/{week}/agents/{agent_id}/{kind}/"


def post(api, path: str, body: dict, **headers):
    return api.post(path, body, format="json", **headers)


def error(response) -> dict:
    return response.json()["error"]


# --- the cadence rule (pure) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cadence", "code", "expected"),
    [
        ("weekly", "202303001", True),
        ("weekly", "202303004", True),
        ("monthly", "202303001", True),
        ("monthly", "202303002", False),
        ("exempt", "202303001", False),
    ],
)
def test_cadence_events(cadence, code, expected):
    assert has_cadence_event(cadence, code) is expected


def test_monthly_event_sequence_is_a_parameter():
    assert has_cadence_event("monthly", "202303002", monthly_sequence=2)
    assert not has_cadence_event("monthly", "202303001", monthly_sequence=2)


def test_an_unknown_cadence_is_an_error_naming_it():
    with pytest.raises(DomainError) as caught:
        has_cadence_event("fortnightly", WEEK)
    assert caught.value.field == "agent.reporting_cadence"
    assert "fortnightly" in str(caught.value)


# --- accepted at the door ----------------------------------------------------------------------


def test_a_submission_is_received_with_its_receipt_and_a_new_version(
    api, week, trader, enc_key, django_capture_on_commit_callbacks
):
    jwe = fake_jwe()
    with django_capture_on_commit_callbacks() as callbacks:
        first = post(api, url(WEEK, trader.pk), {"jwe": jwe})
    assert first.status_code == 202, first.content
    body = first.json()
    import hashlib

    assert body["receipt"] == hashlib.sha256(jwe.encode()).hexdigest()
    assert (body["status"], body["version"]) == ("received", 1)
    assert body["url"] == f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/submissions/"
    assert len(callbacks) == 1  # the validation task, sent on commit

    second = post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()})
    assert second.json()["version"] == 2
    other_kind = post(api, url(WEEK, trader.pk, "counterparties"), {"jwe": fake_jwe()})
    assert other_kind.json()["version"] == 1
    stored = Submission.objects.get(pk=body["id"])
    assert (stored.channel, stored.size_bytes, stored.envelope) == ("api", len(jwe), jwe)
    assert stored.submitted_by.username == "maria.souza"


def test_the_agents_submissions_list_shows_received(api, week, trader, enc_key):
    post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()})
    rows = api.get(f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/submissions/").json()
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "received" and row["verdict_verified"] is False
    assert row["is_current"] is False and row["batch"] is None
    assert set(row) >= {
        "id", "kind", "version", "channel", "submitted_by", "submitted_at", "size_bytes",
        "receipt", "status", "errors", "verdict_verified", "batch", "is_current",
    }  # fmt: skip


# --- 1. size, then the envelope's header ---------------------------------------------------------


def test_an_envelope_over_the_limit_is_413_with_the_limit(api, week, trader, enc_key, settings):
    settings.PRUDENCIAL_SUBMISSION_MAX_BYTES = 1000
    response = post(api, url(WEEK, trader.pk), {"jwe": fake_jwe() + "A" * 1000})
    assert response.status_code == 413
    assert "1000 bytes" in error(response)["message"]
    assert not Submission.objects.exists()


def test_a_body_over_the_api_limit_is_413_except_on_the_batch_route(api, week, trader, settings):
    settings.PRUDENCIAL_API_MAX_BODY_BYTES = 10_000
    settings.PRUDENCIAL_BATCH_MAX_BODY_BYTES = 100_000
    body = json.dumps({"jwe": "x" * 20_000, "agents": [trader.pk]})
    single = api.post(url(WEEK, trader.pk), body, content_type="application/json")
    assert single.status_code == 413 and "10000 bytes" in error(single)["message"]
    batch = api.post(f"/api/v1/weeks/{WEEK}/batch/", body, content_type="application/json")
    assert batch.status_code == 400  # past the edge: the envelope itself is refused
    assert "jwe" in error(batch)["fields"]
    too_big = json.dumps({"jwe": "x" * 200_000, "agents": [trader.pk]})
    batch = api.post(f"/api/v1/weeks/{WEEK}/batch/", too_big, content_type="application/json")
    assert batch.status_code == 413 and "100000 bytes" in error(batch)["message"]


def test_a_batch_over_djangos_default_upload_size_reaches_the_service(api, week, trader, enc_key):
    """A 3 MiB batch is within the batch route's limit: the body is read as a stream, not through
    request.body (which Django refuses past DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MiB)."""
    head, rest = fake_jwe().split(".", 1)
    big = head + "." + "A" * (3 * 1024 * 1024) + rest[rest.index(".") :]
    body = {"jwe": big, "agents": [trader.pk]}
    response = post(api, f"/api/v1/weeks/{WEEK}/batch/", body)
    assert response.status_code == 202, response.content[:300]
    assert Batch.objects.get().size_bytes == len(big)


@pytest.mark.parametrize(
    "jwe",
    [
        "not-a-jwe",
        "a.b.c.d",  # four parts
        "a.b.c.d.e.f",
        "e30.a.b.c.d",  # header {} : no alg
        "@@@.a.b.c.d",
    ],
)
def test_garbage_is_refused_at_once_naming_the_field(api, week, trader, enc_key, jwe):
    response = post(api, url(WEEK, trader.pk), {"jwe": jwe})
    assert response.status_code == 400, response.content
    assert list(error(response)["fields"]) == ["jwe"]
    assert not Submission.objects.exists()


@pytest.mark.parametrize(
    "jwe",
    [
        fake_jwe(alg="RSA1_5"),
        fake_jwe(enc="A128CBC-HS256"),
        fake_jwe(kid="a-kid-the-enclave-never-published"),
    ],
)
def test_another_algorithm_or_an_unknown_kid_is_refused(api, week, trader, enc_key, jwe):
    response = post(api, url(WEEK, trader.pk), {"jwe": jwe})
    assert response.status_code == 400
    assert "jwe" in error(response)["fields"]


def test_a_missing_jwe_is_400(api, week, trader, enc_key):
    response = post(api, url(WEEK, trader.pk), {"envelope": fake_jwe()})
    assert response.status_code == 400 and "jwe" in error(response)["fields"]


# --- 2. the week's window ------------------------------------------------------------------------


def test_after_the_deadline_is_409_with_the_deadline_in_brasilia_time(api, trader, enc_key):
    week = open_week(deadline_in=timedelta(days=1))
    deadline = timezone.now() - timedelta(minutes=5)
    Week.objects.filter(pk=week.pk).update(opens_at=deadline - timedelta(days=2), deadline=deadline)
    response = post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()})
    assert response.status_code == 409
    message = error(response)["message"]
    from zoneinfo import ZoneInfo

    local = deadline.astimezone(ZoneInfo("America/Sao_Paulo"))
    assert local.strftime("%d/%m/%Y %H:%M") in message
    assert "Brasília" in message
    assert not Submission.objects.exists()


def test_a_week_not_open_is_409(api, week, trader, enc_key):
    Week.objects.filter(pk=week.pk).update(status=WeekStatus.SCHEDULED)
    response = post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()})
    assert response.status_code == 409 and error(response)["code"] == "week_not_open"
    Week.objects.filter(pk=week.pk).update(status=WeekStatus.CLOSED)
    assert post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()}).status_code == 409


def test_an_unknown_week_is_404(api, trader, enc_key):
    assert post(api, url("202312001", trader.pk), {"jwe": fake_jwe()}).status_code == 404


# --- 3. the agent: submit_agent_data, or "not found" ------------------------------------------


def test_another_users_agent_is_404_as_a_missing_one(api, week, enc_key):
    foreign = AgentFactory(acronym="CM99")
    grant(UserFactory(), foreign)
    refused = post(api, url(WEEK, foreign.pk), {"jwe": fake_jwe()})
    missing = post(api, url(WEEK, 999_999), {"jwe": fake_jwe()})
    assert refused.status_code == missing.status_code == 404
    assert refused.json() == missing.json()
    assert not Submission.objects.exists()


def test_a_representation_that_ended_loses_the_right_at_once(api, sender, week, trader, enc_key):
    Representation.objects.filter(user=sender, agent=trader).update(
        valid_until=timezone.localdate() - timedelta(days=1)
    )
    assert post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()}).status_code == 404


def test_an_inactive_agent_takes_no_submission(api, week, trader, enc_key):
    type(trader).objects.filter(pk=trader.pk).update(is_active=False)
    assert post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()}).status_code == 404


def test_anonymous_is_401(api_client, week, trader, enc_key):
    assert (
        api_client.post(url(WEEK, trader.pk), {"jwe": fake_jwe()}, format="json").status_code == 401
    )


def test_a_batch_naming_one_foreign_agent_stores_nothing(api, week, trader, generator, enc_key):
    foreign = AgentFactory(acronym="CM98")
    response = post(
        api,
        f"/api/v1/weeks/{WEEK}/batch/",
        {"jwe": fake_jwe(), "agents": [trader.pk, foreign.pk, generator.pk]},
    )
    assert response.status_code == 404
    assert not Batch.objects.exists() and not Submission.objects.exists()
    accepted = post(
        api,
        f"/api/v1/weeks/{WEEK}/batch/",
        {"jwe": fake_jwe(), "agents": [trader.pk, generator.pk]},
    )
    assert accepted.status_code == 202, accepted.content
    batch = Batch.objects.get()
    assert accepted.json()["url"] == f"/api/v1/batches/{batch.pk}/"
    assert set(batch.agents.values_list("pk", flat=True)) == {trader.pk, generator.pk}
    detail = api.get(f"/api/v1/batches/{batch.pk}/").json()
    assert detail["status"] == "received" and len(detail["agents"]) == 2


def test_a_batch_is_seen_by_its_sender_only(api, week, trader, enc_key, client_for):
    post(api, f"/api/v1/weeks/{WEEK}/batch/", {"jwe": fake_jwe(), "agents": [trader.pk]})
    batch = Batch.objects.get()
    other = client_for(UserFactory())
    assert other.get(f"/api/v1/batches/{batch.pk}/").status_code == 404


# --- 4. the cadence -----------------------------------------------------------------------------


def test_a_monthly_reporter_outside_its_week_is_refused_with_the_reason(
    sender, client_for, enc_key
):
    consumer = AgentFactory(acronym="CS10", agent_class="free_consumer")
    assert consumer.reporting_cadence == "monthly"
    grant(sender, consumer)
    api = client_for(sender)
    open_week("202303002")
    response = post(api, url("202303002", consumer.pk), {"jwe": fake_jwe()})
    assert response.status_code == 409
    refusal = error(response)
    assert refusal["code"] == "no_cadence_event"
    assert "CS10 (Mensal)" in refusal["message"] and "001" in refusal["message"]
    assert not Submission.objects.exists()
    # In its month's first event it reports.
    open_week("202303001")
    assert post(api, url("202303001", consumer.pk), {"jwe": fake_jwe()}).status_code == 202


def test_a_distributor_never_reports(sender, client_for, week, enc_key):
    distributor = AgentFactory(acronym="DI01", agent_class="distributor")
    grant(sender, distributor)
    response = post(client_for(sender), url(WEEK, distributor.pk), {"jwe": fake_jwe()})
    assert response.status_code == 409 and "Isento" in error(response)["message"]


def test_a_batch_with_an_agent_without_its_event_stores_nothing(
    sender, trader, client_for, enc_key
):
    consumer = AgentFactory(acronym="CS11", agent_class="free_consumer")
    grant(sender, consumer)
    open_week("202303002")
    response = post(
        client_for(sender),
        "/api/v1/weeks/202303002/batch/",
        {"jwe": fake_jwe(), "agents": [trader.pk, consumer.pk]},
    )
    assert response.status_code == 409 and "CS11" in error(response)["message"]
    assert not Batch.objects.exists()


# --- 5. Idempotency-Key --------------------------------------------------------------------------


def test_a_retried_post_with_the_same_key_makes_one_version(api, week, trader, enc_key):
    jwe = fake_jwe()
    first = post(api, url(WEEK, trader.pk), {"jwe": jwe}, HTTP_IDEMPOTENCY_KEY="envio-0001")
    again = post(api, url(WEEK, trader.pk), {"jwe": jwe}, HTTP_IDEMPOTENCY_KEY="envio-0001")
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert Submission.objects.count() == 1

    other = post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()}, HTTP_IDEMPOTENCY_KEY="envio-0001")
    assert other.status_code == 422
    assert error(other)["code"] == "idempotency_key_reused"
    # The same key on another agent's endpoint is another request too.
    moved = post(
        api, url(WEEK, trader.pk, "counterparties"), {"jwe": jwe}, HTTP_IDEMPOTENCY_KEY="envio-0001"
    )
    assert moved.status_code == 422
    assert Submission.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


def test_keys_are_per_user(api, week, trader, enc_key, client_for):
    jwe = fake_jwe()
    post(api, url(WEEK, trader.pk), {"jwe": jwe}, HTTP_IDEMPOTENCY_KEY="k-1")
    colleague = UserFactory()
    grant(colleague, trader)
    response = post(
        client_for(colleague), url(WEEK, trader.pk), {"jwe": jwe}, HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert response.status_code == 202 and response.json()["version"] == 2


def test_a_bad_idempotency_key_is_400(api, week, trader, enc_key):
    response = post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()}, HTTP_IDEMPOTENCY_KEY="x" * 201)
    assert response.status_code == 400 and "Idempotency-Key" in error(response)["fields"]


def test_a_retried_batch_with_the_same_key_makes_one_batch(api, week, trader, enc_key):
    body = {"jwe": fake_jwe(), "agents": [trader.pk]}
    a = post(api, f"/api/v1/weeks/{WEEK}/batch/", body, HTTP_IDEMPOTENCY_KEY="lote-1")
    b = post(api, f"/api/v1/weeks/{WEEK}/batch/", body, HTTP_IDEMPOTENCY_KEY="lote-1")
    assert a.json() == b.json() and Batch.objects.count() == 1


# --- append-only, in the database ---------------------------------------------------------------


def test_submissions_are_never_edited_or_deleted(api, week, trader, enc_key):
    if connection.vendor != "postgresql":
        pytest.skip("the triggers are PostgreSQL's; on SQLite only the services keep the rule")
    post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()})
    with pytest.raises(DatabaseError, match="Cannot update or delete"):
        from django.db import transaction

        with transaction.atomic():
            Submission.objects.update(size_bytes=1)
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        Submission.objects.all().delete()
    assert Submission.objects.get().size_bytes > 1


# --- progress -----------------------------------------------------------------------------------


def test_progress_counts_the_eligible_agents(api, week, trader, generator, enc_key, sender):
    consumer = AgentFactory(acronym="CS12", agent_class="free_consumer")  # monthly: 001 has it
    grant(sender, consumer)
    distributor = AgentFactory(acronym="DI02", agent_class="distributor")
    grant(sender, distributor)
    AgentFactory(acronym="CM70")  # not the user's
    post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()})
    data = api.get(f"/api/v1/weeks/{WEEK}/progress/").json()
    assert data["week"] == WEEK and data["eligible"] == 3
    assert data["portfolio"] == {"done": 0, "total": 3}
    assert data["counterparties"] == {"done": 0, "total": 3}
    by_acronym = {a["acronym"]: a for a in data["agents"]}
    assert set(by_acronym) == {"CM47", "GE12", "CS12"}
    assert by_acronym["CM47"]["portfolio"]["status"] == "received"
    assert by_acronym["CM47"]["counterparties"] is None


def test_pending_work_is_sent_again_once_stale(api, week, trader, enc_key, monkeypatch):
    from prudencial.submissions import services, tasks

    sent = []
    monkeypatch.setattr(tasks.validate_submission, "delay", lambda pk: sent.append(("v", pk)))
    monkeypatch.setattr(tasks.process_batch, "delay", lambda pk: sent.append(("b", pk)))
    post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()})
    post(api, f"/api/v1/weeks/{WEEK}/batch/", {"jwe": fake_jwe(), "agents": [trader.pk]})
    assert services.pending_dispatch() == {"submissions": 0, "batches": 0}  # not stale yet
    assert services.pending_dispatch(older_than_seconds=-60) == {"submissions": 1, "batches": 1}
    assert sorted(kind for kind, _ in sent) == ["b", "v"]


def test_the_models_refuse_to_edit_or_delete_on_any_database(api, week, trader, enc_key):
    post(api, url(WEEK, trader.pk), {"jwe": fake_jwe()})
    submission = Submission.objects.get()
    submission.size_bytes = 1
    with pytest.raises(PermissionError):
        submission.save()
    with pytest.raises(PermissionError):
        submission.delete()
    assert Submission.objects.get().size_bytes > 1
