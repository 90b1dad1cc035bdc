"""The review's findings on the submissions app, each as a test that failed before its fix.

Reproductions of /tmp/review_repro (a forged signing key, a grafted verdict, a NUL byte in a week
code) and the other items of the review: batch answers bound to their batch, idempotent replays
after the deadline, throttles and the per-week batch cap, a bounded number of dispatch attempts,
formula injection in exports, the envelope header keys the enclave accepts.
"""

from __future__ import annotations

import os

import pytest
from django.utils import timezone
from jwcrypto import jwk

from enclave_bridge.models import EnclaveKey
from enclave_bridge.wire.protocol import answer_body, args_sha256, b64url, sign_answer
from prudencial.submissions.models import Batch, Submission, Verdict
from tests.submissions.conftest import WEEK, encrypt_for_enclave, open_week, portfolio
from tests.submissions.test_enclave import (
    batch_file,
    listing,
    post_batch,
    process,
    submit,
    validate,
)

pytestmark = pytest.mark.django_db


# --- 1. a signing key is trusted only through its attestation ---------------------------------


def _forged_verdict(week, agent, sender, *, kid: str, attestation: bytes = b""):
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)
    now = timezone.now()
    EnclaveKey.objects.create(
        kid=kid,
        use="sig",
        public_jwk=key.export_public(as_dict=True),
        status="retired",
        attestation=attestation,
        attested_at=now,
        verified_at=now,
        expires_at=now + timezone.timedelta(days=365),
    )
    env = encrypt_for_enclave({"anything": "garbage"})  # never validated by the enclave
    sub = Submission.objects.create(
        week=week,
        agent=agent,
        kind="portfolio",
        version=1,
        channel="api",
        submitted_by=sender,
        size_bytes=len(env),
        receipt="0" * 64,
        envelope=env,
    )
    args = {
        "kind": "portfolio",
        "expected": {"agent": {"acronym": agent.acronym, "cnpj": agent.cnpj}, "week": WEEK},
    }
    digest = args_sha256({**args, "envelope": env})
    nonce = os.urandom(16)
    body = answer_body(
        req_id="r1",
        nonce=nonce,
        op="validate",
        result={"status": "accepted", "errors": []},
        args_digest=digest,
    )
    Verdict.objects.create(
        submission=sub,
        status="accepted",
        errors=[],
        source="validate",
        token=sign_answer(body, key, kid),
        args=args,
        args_sha256=digest,
        signing_kid=kid,
        request_id="r1",
        nonce=b64url(nonce),
    )
    return sub


def test_a_signing_key_row_without_a_valid_attestation_is_not_trusted(
    enclave, week, generator, sender, client_for
):
    _forged_verdict(week, generator, sender, kid="attacker")
    [row] = listing(client_for(sender), generator)
    assert (row["status"], row["verdict_verified"], row["is_current"]) == (
        "unverified",
        False,
        False,
    )


def test_a_signing_key_row_with_the_real_attestation_of_another_key_is_not_trusted(
    enclave, week, generator, sender, client_for
):
    """A genuine document (it verifies) that binds the enclave's key, not the forged one."""
    real = EnclaveKey.objects.get(use="sig", status="current")
    _forged_verdict(week, generator, sender, kid="attacker2", attestation=bytes(real.attestation))
    [row] = listing(client_for(sender), generator)
    assert row["status"] == "unverified" and not row["verdict_verified"]


def test_the_enclave_signing_key_is_trusted_and_a_stale_attestation_still_counts(
    enclave, api, week, trader
):
    """The real key verifies at its attestation's time: an old document is no reason to doubt
    a stored verdict."""
    from enclave_bridge import gateway

    validate(submit(api, trader, "portfolio", portfolio(trader))["id"])
    kid = EnclaveKey.objects.get(use="sig", status="current").kid
    assert gateway.trusted_signing_key(kid) is not None
    assert gateway.trusted_signing_key("no-such-kid") is None
    [row] = listing(api, trader)
    assert row["status"] == "accepted" and row["verdict_verified"]


# --- 2. a verdict counts only for the submission its args name --------------------------------


def _graft(src: Submission, **overrides) -> Submission:
    fields = {
        "week": src.week,
        "agent": src.agent,
        "kind": src.kind,
        "version": 1,
        "channel": src.channel,
        "submitted_by": src.submitted_by,
        "size_bytes": src.size_bytes,
        "receipt": src.receipt,
        "envelope": src.envelope,
        "batch": src.batch,
        **overrides,
    }
    forged = Submission.objects.create(**fields)
    v = src.verdict
    Verdict.objects.create(
        submission=forged,
        status=v.status,
        errors=v.errors,
        summary=v.summary,
        source=v.source,
        token=v.token,
        args=v.args,
        args_sha256=v.args_sha256,
        signing_kid=v.signing_kid,
        request_id=v.request_id,
        nonce=v.nonce,
    )
    return forged


def test_a_verdict_grafted_onto_another_agent_is_unverified(enclave, api, week, trader, generator):
    good = submit(api, trader, "portfolio", portfolio(trader))
    assert validate(good["id"]) == "accepted"
    _graft(Submission.objects.get(pk=good["id"]), agent=generator)
    [row] = listing(api, generator)
    assert row["status"] == "unverified" and row["verdict_verified"] is False
    progress = api.get(f"/api/v1/weeks/{WEEK}/progress/").json()
    assert progress["portfolio"]["done"] == 1  # the trader's only


def test_a_verdict_grafted_onto_another_week_or_kind_is_unverified(enclave, api, week, trader):
    good = submit(api, trader, "portfolio", portfolio(trader))
    assert validate(good["id"]) == "accepted"
    src = Submission.objects.get(pk=good["id"])
    other_week = open_week("202303002")
    _graft(src, week=other_week)
    _graft(src, kind="counterparties")
    response = api.get(f"/api/v1/weeks/202303002/agents/{trader.pk}/submissions/")
    [row] = response.json()
    assert row["status"] == "unverified"
    rows = {r["kind"]: r for r in listing(api, trader)}
    assert rows["counterparties"]["status"] == "unverified"
    assert rows["portfolio"]["status"] == "accepted"


# --- 3. a batch answer is bound to its batch's envelope, week and agents ----------------------


def _graft_batch(batch: Batch, *, week, agents) -> Batch:
    forged = Batch.objects.create(
        week=week,
        submitted_by=batch.submitted_by,
        size_bytes=batch.size_bytes,
        receipt=batch.receipt,
        envelope=batch.envelope,
        status="accepted",
        processed_at=timezone.now(),
        answer_token=batch.answer_token,
        args=batch.args,
        args_sha256=batch.args_sha256,
        request_id=batch.request_id,
        nonce=batch.nonce,
        signing_kid=batch.signing_kid,
    )
    forged.agents.set(agents)
    return forged


def test_a_batch_stores_its_split_args_without_the_envelope(enclave, api, week, trader):
    received = post_batch(api, [trader], batch_file(portfolios=[portfolio(trader)]))
    assert process(received["id"]) == "accepted"
    batch = Batch.objects.get(pk=received["id"])
    assert "envelope" not in batch.args and batch.args["week"] == WEEK
    assert args_sha256({**batch.args, "envelope": batch.envelope}) == batch.args_sha256
    [row] = listing(api, trader)
    assert row["status"] == "accepted" and row["verdict_verified"]


def test_a_batch_answer_grafted_onto_another_week_is_unverified(enclave, api, week, trader):
    received = post_batch(api, [trader], batch_file(portfolios=[portfolio(trader)]))
    assert process(received["id"]) == "accepted"
    batch = Batch.objects.get(pk=received["id"])
    other_week = open_week("202303002")
    forged_batch = _graft_batch(batch, week=other_week, agents=[trader])
    src = Submission.objects.get(batch=batch)
    _graft(src, week=other_week, batch=forged_batch)
    [row] = api.get(f"/api/v1/weeks/202303002/agents/{trader.pk}/submissions/").json()
    assert row["status"] == "unverified" and not row["verdict_verified"]


def test_a_batch_answer_for_an_agent_the_batch_did_not_declare_is_unverified(
    enclave, api, week, trader
):
    received = post_batch(api, [trader], batch_file(portfolios=[portfolio(trader)]))
    assert process(received["id"]) == "accepted"
    batch = Batch.objects.get(pk=received["id"])
    forged_batch = _graft_batch(batch, week=week, agents=[])
    _graft(Submission.objects.get(batch=batch), version=2, batch=forged_batch)
    rows = listing(api, trader)
    by_version = {r["version"]: r for r in rows}
    assert by_version[2]["status"] == "unverified"
    assert by_version[1]["status"] == "accepted" and by_version[1]["is_current"]


def test_a_batch_verdict_whose_batch_envelope_was_swapped_is_unverified(enclave, api, week, trader):
    received = post_batch(api, [trader], batch_file(portfolios=[portfolio(trader)]))
    assert process(received["id"]) == "accepted"
    batch = Batch.objects.get(pk=received["id"])
    # A batch row with another envelope but the same answer: inserted, never updated.
    other = Batch.objects.create(
        week=week,
        submitted_by=batch.submitted_by,
        size_bytes=batch.size_bytes,
        receipt=batch.receipt,
        envelope=encrypt_for_enclave(batch_file(portfolios=[portfolio(trader)])),
        status="accepted",
        processed_at=timezone.now(),
        answer_token=batch.answer_token,
        args=batch.args,
        args_sha256=batch.args_sha256,
        request_id=batch.request_id,
        nonce=batch.nonce,
        signing_kid=batch.signing_kid,
    )
    other.agents.set([trader])
    _graft(Submission.objects.get(batch=batch), version=2, batch=other)
    by_version = {r["version"]: r for r in listing(api, trader)}
    assert by_version[2]["status"] == "unverified"


# --- 4. a week code with a NUL byte is not found, not a server error --------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/weeks/2023%0003001/progress/",
        "/api/v1/weeks/2023%0003001/agents/1/submissions/",
        "/api/v1/weeks/2023%0003001/",
    ],
)
def test_a_nul_byte_in_a_week_code_is_not_found(api, week, path):
    api.raise_request_exception = False
    assert api.get(path).status_code == 404


@pytest.mark.parametrize("kind", ["portfolio", "counterparties"])
def test_a_nul_byte_in_a_posted_week_code_is_not_found(api, week, trader, enc_key, kind):
    from tests.submissions.conftest import fake_jwe

    api.raise_request_exception = False
    response = api.post(
        f"/api/v1/weeks/2023%0003001/agents/{trader.pk}/{kind}/",
        {"jwe": fake_jwe()},
        format="json",
    )
    assert response.status_code == 404
    response = api.post(
        "/api/v1/weeks/2023%0003001/batch/",
        {"jwe": fake_jwe(), "agents": [trader.pk]},
        format="json",
    )
    assert response.status_code == 404


# --- 5. an Idempotency-Key replay is answered before the window and permission checks --------


def _post(api, path, body, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post(path, body, format="json", **headers)


def _close_deadline(week):
    from prudencial.models import Week

    Week.objects.filter(pk=week.pk).update(deadline=timezone.now() - timezone.timedelta(minutes=1))


def test_a_retry_after_the_deadline_gets_the_first_answer(api, week, trader, enc_key):
    from tests.submissions.conftest import fake_jwe

    path = f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/"
    jwe = fake_jwe()
    first = _post(api, path, {"jwe": jwe}, key="retry-1")
    assert first.status_code == 202
    _close_deadline(week)
    again = _post(api, path, {"jwe": jwe}, key="retry-1")
    assert again.status_code == 202, again.content
    assert again.json() == first.json()
    assert Submission.objects.count() == 1
    # Another body with the same key: 422; a new key after the deadline: 409.
    assert _post(api, path, {"jwe": fake_jwe()}, key="retry-1").status_code == 422
    assert _post(api, path, {"jwe": fake_jwe()}, key="retry-2").status_code == 409


def test_a_batch_retry_after_the_deadline_gets_the_first_answer(api, week, trader, enc_key):
    from tests.submissions.conftest import fake_jwe

    path = f"/api/v1/weeks/{WEEK}/batch/"
    body = {"jwe": fake_jwe(), "agents": [trader.pk]}
    first = _post(api, path, body, key="batch-retry")
    assert first.status_code == 202
    _close_deadline(week)
    again = _post(api, path, body, key="batch-retry")
    assert again.status_code == 202 and again.json() == first.json()
    assert Batch.objects.count() == 1
    other = {"jwe": fake_jwe(), "agents": [trader.pk]}
    assert _post(api, path, other, key="batch-retry").status_code == 422


def test_another_users_key_is_not_replayed(api, week, trader, enc_key, client_for):
    from tests.factories import UserFactory
    from tests.submissions.conftest import fake_jwe

    path = f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/"
    jwe = fake_jwe()
    assert _post(api, path, {"jwe": jwe}, key="shared").status_code == 202
    stranger = client_for(UserFactory())
    assert _post(stranger, path, {"jwe": jwe}, key="shared").status_code == 404


# --- 6. throttles and the per-week batch cap --------------------------------------------------


def test_submission_and_batch_posts_are_throttled_per_user(api, week, trader, enc_key, settings):
    from tests.isolation import clear_cache
    from tests.submissions.conftest import fake_jwe

    clear_cache()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "submissions": "2/minute",
            "batches": "1/minute",
        },
    }
    path = f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/"
    codes = [_post(api, path, {"jwe": fake_jwe()}).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    batch = f"/api/v1/weeks/{WEEK}/batch/"
    codes = [
        _post(api, batch, {"jwe": fake_jwe(), "agents": [trader.pk]}).status_code for _ in range(2)
    ]
    assert codes == [202, 429]
    clear_cache()


def test_the_default_rates_are_set_and_generous():
    from config.settings import base

    rates = base.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert rates["submissions"] == "6000/minute" and rates["batches"] == "30/minute"
    assert base.PRUDENCIAL_BATCH_MAX_PER_WEEK == 50


def test_batches_beyond_the_weekly_cap_are_429_with_the_limit(api, week, trader, enc_key, settings):
    from tests.submissions.conftest import fake_jwe

    settings.PRUDENCIAL_BATCH_MAX_PER_WEEK = 2
    path = f"/api/v1/weeks/{WEEK}/batch/"
    codes = []
    for _ in range(3):
        response = _post(api, path, {"jwe": fake_jwe(), "agents": [trader.pk]})
        codes.append(response.status_code)
    assert codes == [202, 202, 429]
    assert "2 lotes" in response.json()["error"]["message"]
    assert Batch.objects.count() == 2


# --- 7. an envelope the enclave keeps failing on is given up after a few attempts -------------


def _failing_enclave(monkeypatch, calls):
    from enclave_bridge import gateway

    def fail(**kwargs):
        calls.append(1)
        raise gateway.EnclaveError("internal_error", "validation failed", signed=True)

    monkeypatch.setattr(gateway, "validate_envelope", fail)
    monkeypatch.setattr(gateway, "split_batch", fail)


def test_internal_errors_end_in_a_refusal_after_the_maximum_attempts(
    api, week, trader, enc_key, monkeypatch, settings
):
    from prudencial.submissions import services
    from tests.submissions.conftest import fake_jwe

    settings.PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS = 3
    calls: list[int] = []
    _failing_enclave(monkeypatch, calls)
    received = _post(
        api, f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/", {"jwe": fake_jwe()}
    )
    pk = received.json()["id"]
    for _ in range(2):
        with pytest.raises(services.EnclaveUnavailable):
            services.submission_validate(submission_id=pk)
    verdict = services.submission_validate(submission_id=pk)
    assert len(calls) == 3
    assert (verdict.source, verdict.status) == ("refusal", "error")
    assert "repetidamente" in verdict.errors[0]["rule"]
    assert "envie o envelope novamente" in verdict.errors[0]["rule"]
    # It has left the pending set: beat sends it no more, and it is never accepted.
    assert not Submission.objects.filter(verdict__isnull=True).exists()
    [row] = listing(api, trader)
    assert row["status"] == "error" and not row["verdict_verified"]


def test_an_unreachable_enclave_is_not_counted_as_a_failure(
    api, week, trader, enc_key, monkeypatch, settings
):
    from enclave_bridge import gateway
    from prudencial.submissions import services
    from prudencial.submissions.models import EnclaveAttempt
    from tests.submissions.conftest import fake_jwe

    settings.PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS = 1

    def down(**kwargs):
        raise gateway.EnclaveConnectionError("down")

    monkeypatch.setattr(gateway, "validate_envelope", down)
    received = _post(
        api, f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/", {"jwe": fake_jwe()}
    )
    for _ in range(3):
        with pytest.raises(services.EnclaveUnavailable):
            services.submission_validate(submission_id=received.json()["id"])
    assert not EnclaveAttempt.objects.exists()
    assert not Verdict.objects.exists()


def test_a_batch_the_enclave_keeps_failing_on_is_rejected(
    api, week, trader, enc_key, monkeypatch, settings
):
    from prudencial.submissions import services
    from tests.submissions.conftest import fake_jwe

    settings.PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS = 2
    calls: list[int] = []
    _failing_enclave(monkeypatch, calls)
    received = _post(
        api, f"/api/v1/weeks/{WEEK}/batch/", {"jwe": fake_jwe(), "agents": [trader.pk]}
    )
    pk = received.json()["id"]
    with pytest.raises(services.EnclaveUnavailable):
        services.batch_process(batch_id=pk)
    batch = services.batch_process(batch_id=pk)
    assert batch.status == "rejected" and "repetidamente" in batch.errors[0]["rule"]
    assert not Submission.objects.exists()
    assert services.pending_dispatch(older_than_seconds=-60)["batches"] == 0


def test_the_default_maximum_attempts_is_five():
    from config.settings import base

    assert base.PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS == 5


# --- 8. exports never carry a formula -------------------------------------------------------


def _hostile_rows():
    from prudencial.submissions.exports import MissingRow

    return [
        MissingRow(
            acronym="@SUM(A1)",
            cnpj="12.345.678/0001-90",
            legal_name='=HYPERLINK("http://evil.example","x")',
            agent_class="trader",
            reporting_cadence="weekly",
            portfolio_missing=True,
            counterparties_missing=False,
        ),
        MissingRow("+1", "-2", "\tTAB", "trader", "weekly", False, True),
    ]


def test_the_csv_export_defuses_formulas():
    import csv
    import io

    from prudencial.submissions.exports import csv_lines

    text = "".join(csv_lines(_hostile_rows())).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))[1:]
    assert rows[0][:3] == [
        "'@SUM(A1)",
        "12.345.678/0001-90",
        '\'=HYPERLINK("http://evil.example","x")',
    ]
    assert rows[1][:3] == ["'+1", "'-2", "'\tTAB"]


def test_the_xlsx_export_has_string_cells_only():
    import io
    from types import SimpleNamespace

    from openpyxl import load_workbook

    from prudencial.submissions.exports import write_xlsx

    out = io.BytesIO()
    write_xlsx(_hostile_rows(), out, week=SimpleNamespace(code=WEEK))
    ws = load_workbook(io.BytesIO(out.getvalue())).active
    cells = [c for row in ws.iter_rows(min_row=2) for c in row]
    assert cells and all(c.data_type == "s" for c in cells)
    assert ws["C2"].value.startswith("=HYPERLINK")  # shown as the text it is


# --- 9. the admin says which counts are the registered, unverified status -------------------


def test_the_admin_labels_the_registered_status_as_unverified(db, client, week):
    from tests.factories import UserFactory

    staff = UserFactory(username="staff.ccee", is_staff=True, is_superuser=True)
    client.force_login(staff)
    progress = client.get("/admin/submissions/submission/progress/")
    assert progress.status_code == 200
    text = progress.content.decode()
    assert "situação registrada (não verificada)" in text
    assert "sem verificar sua assinatura" in text
    listing_page = client.get("/admin/submissions/submission/").content.decode()
    assert "situação registrada (não verificada)" in listing_page


# --- 10. the host refuses at once the header keys the enclave refuses -------------------------


def _jwe_with_header(header: dict) -> str:
    import json

    head = b64url(json.dumps(header).encode())
    return f"{head}.{b64url(b'k' * 256)}.{b64url(b'iv' * 6)}.{b64url(os.urandom(64))}.{b64url(b't' * 16)}"


@pytest.mark.parametrize("extra", ["x5u", "jku", "crit", "p2s", "epk"])
def test_a_header_key_the_enclave_refuses_is_refused_on_the_host(api, week, trader, enc_key, extra):
    path = f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/"
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": enc_key.kid, extra: "x"}
    response = _post(api, path, {"jwe": _jwe_with_header(header)})
    assert response.status_code == 400
    assert "jwe" in response.content.decode()
    assert not Submission.objects.exists()


def test_the_header_keys_the_enclave_accepts_are_accepted_on_the_host(api, week, trader, enc_key):
    path = f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/"
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": enc_key.kid, "typ": "JWE", "cty": "x"}
    assert _post(api, path, {"jwe": _jwe_with_header(header)}).status_code == 202
    kid = f'"kid":"{enc_key.kid}"'
    duplicated = '{"alg":"RSA-OAEP-256","enc":"A256GCM",' + kid + "," + kid + "}"
    jwe = f"{b64url(duplicated.encode())}.{b64url(b'k' * 256)}.{b64url(b'iv')}.{b64url(b'c')}.{b64url(b't')}"
    assert _post(api, path, {"jwe": jwe}).status_code == 400


def test_host_and_enclave_share_the_envelope_header_rules():
    from enclave_bridge.enclave import envelope, keys
    from enclave_bridge.wire import protocol
    from prudencial.submissions import services

    assert envelope.ALLOWED_HEADER is protocol.ENVELOPE_HEADER_KEYS
    assert (keys.ENVELOPE_ALG, keys.CONTENT_ENC) == (protocol.ENVELOPE_ALG, protocol.ENVELOPE_ENC)
    assert (services.ENVELOPE_ALG, services.CONTENT_ENC) == (
        protocol.ENVELOPE_ALG,
        protocol.ENVELOPE_ENC,
    )
    assert services.MAX_HEADER_CHARS == envelope.MAX_HEADER_CHARS


# --- 11. one deadline format ----------------------------------------------------------------


def test_one_deadline_format_for_messages_and_templates():
    from datetime import UTC, datetime

    from prudencial.submissions import services, templates_xlsx, timefmt

    assert services.deadline_text is timefmt.deadline_text is templates_xlsx.deadline_text
    assert services.BRASILIA is timefmt.BRASILIA is templates_xlsx.BRASILIA
    assert timefmt.deadline_text(datetime(2023, 3, 8, 23, 0, tzinfo=UTC)) == "08/03/2023 20:00"


def test_checking_the_signed_args_costs_no_query_per_row(enclave, api, week, trader, client):
    """The args' week is compared with the submission's: the admin's page and a batch's detail
    read the week joined, not once per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from prudencial.submissions.admin import checked_verdicts

    ids = [submit(api, trader, "portfolio", portfolio(trader))["id"]]
    validate(ids[0])
    with CaptureQueriesContext(connection) as one:
        assert checked_verdicts(ids)[ids[0]].verified
    for _ in range(3):
        ids.append(submit(api, trader, "portfolio", portfolio(trader))["id"])
        validate(ids[-1])
    with CaptureQueriesContext(connection) as many:
        assert all(v.verified for v in checked_verdicts(ids).values())
    assert len(many) == len(one)
