"""The week's trade network upload (issue 11 item 2): a CCEE staff client posts the encrypted
``prudencial/contracts/v1`` file; the host checks what it can see (permission, size, the JWE
header, the kid, the week's state, the Idempotency-Key) and stores the ciphertext; the enclave
validates it and its signed verdict is stored and verified whenever it is read.

Host-side rules use a registered key without the enclave (``enc_key``); the verdicts come from
the real enclave process (``enclave``)."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.db import DatabaseError, IntegrityError, connection, transaction

from prudencial.closing import trade_network
from prudencial.closing.models import TradeNetworkUpload
from prudencial.models import Week, WeekStatus
from tests.submissions import conftest as submission_fixtures
from tests.submissions.conftest import WEEK, encrypt_for_enclave, fake_jwe, open_week

# The submissions tests' fixtures: the enclave process, its keys, a registered key without it.
stack = submission_fixtures.stack
enclave_settings = submission_fixtures.enclave_settings
enclave = submission_fixtures.enclave
enc_key = submission_fixtures.enc_key

URL = f"/api/v1/weeks/{WEEK}/trade-network/"


def _grant(user) -> None:
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="closing", codename="submit_trade_network")
    )


@pytest.fixture
def uploader(db):
    """A CCEE staff member holding closing.submit_trade_network."""
    from tests.factories import UserFactory

    user = UserFactory(username="rede.ccee", is_staff=True)
    _grant(user)
    return user


@pytest.fixture
def api(client_for, uploader):
    return client_for(uploader)


@pytest.fixture
def week(db):
    return open_week()


def _set_status(week: Week, status: str) -> None:
    Week.objects.filter(pk=week.pk).update(status=status)


def _body(jwe: str, **extra):
    return {"jwe": jwe, **extra}


# --- who may upload ------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_agents_user_and_staff_without_the_permission_are_refused(
    client_for, week, enc_key, staff_user
):
    from tests.factories import UserFactory

    agent_user = UserFactory(username="agente.qualquer")
    for user in (agent_user, staff_user):
        response = client_for(user).post(URL, _body(fake_jwe()), format="json")
        assert response.status_code == 403, response.content
        assert client_for(user).get(URL).status_code == 403
    assert not TradeNetworkUpload.objects.exists()


@pytest.mark.django_db
def test_anonymous_is_refused(api_client, week, enc_key):
    assert api_client.post(URL, _body(fake_jwe()), format="json").status_code in (401, 403)
    assert api_client.get(URL).status_code in (401, 403)


@pytest.mark.django_db
def test_the_service_refuses_a_user_without_the_permission(week, enc_key, staff_user):
    with pytest.raises(trade_network.Forbidden) as caught:
        trade_network.trade_network_submit(user=staff_user, week=WEEK, jwe=fake_jwe())
    assert trade_network.PERMISSION in caught.value.message


# --- hostile uploads -------------------------------------------------------------------------


@pytest.mark.django_db
def test_oversize_is_413_naming_the_limit(api, week, enc_key, settings):
    settings.CLOSING_TRADE_NETWORK_MAX_BYTES = 1000
    jwe = fake_jwe()
    jwe = jwe + "A" * (1001 - len(jwe))
    response = api.post(URL, _body(jwe), format="json")
    assert response.status_code == 413, response.content
    assert "1000" in json.dumps(response.json(), ensure_ascii=False)
    assert not TradeNetworkUpload.objects.exists()


@pytest.mark.django_db
def test_a_body_over_the_apis_default_limit_reaches_the_service(api, week, enc_key, settings):
    """A large network is larger than an agent's envelope: the route's own body limit applies
    at the API's edge (2.5 MiB by default elsewhere); past it, 413 before any view runs."""
    jwe = fake_jwe()
    head, rest = jwe.split(".", 1)
    big = head + "." + "A" * (3 * 1024 * 1024) + rest[rest.index(".") :]
    assert len(big) > settings.PRUDENCIAL_API_MAX_BODY_BYTES
    response = api.post(URL, _body(big), format="json")
    assert response.status_code == 202, response.content[:300]
    settings.CLOSING_TRADE_NETWORK_MAX_BYTES = 2 * 1024 * 1024
    response = api.post(URL, _body(big), format="json")
    assert response.status_code == 413
    assert TradeNetworkUpload.objects.count() == 1


@pytest.mark.django_db
def test_the_body_is_read_as_strictly_as_every_api_body(api, week, enc_key):
    jwe = fake_jwe()
    duplicate = f'{{"jwe": "{jwe}", "jwe": "{jwe}"}}'
    response = api.post(URL, duplicate, content_type="application/json")
    assert response.status_code == 400 and "repetida" in response.content.decode()
    assert api.post(URL, "[", content_type="application/json").status_code == 400
    assert api.post(URL, "jwe=x", content_type="text/plain").status_code == 415
    assert not TradeNetworkUpload.objects.exists()


@pytest.mark.parametrize(
    "jwe, words",
    [
        ("not-a-jwe", "cinco partes"),
        ("a.b.c.d", "cinco partes"),
        ("e30.YQ.YQ.YQ.YQ", "alg"),
    ],
)
@pytest.mark.django_db
def test_a_bad_header_is_400_on_the_field_jwe(api, week, enc_key, jwe, words):
    response = api.post(URL, _body(jwe), format="json")
    assert response.status_code == 400, response.content
    text = json.dumps(response.json(), ensure_ascii=False)
    assert "jwe" in text and words in text
    assert not TradeNetworkUpload.objects.exists()


@pytest.mark.django_db
def test_a_wrong_algorithm_is_400_naming_the_rule(api, week, enc_key):
    response = api.post(URL, _body(fake_jwe(alg="RSA1_5")), format="json")
    assert response.status_code == 400
    assert "RSA-OAEP-256" in json.dumps(response.json(), ensure_ascii=False)


@pytest.mark.django_db
def test_an_unknown_kid_is_400_naming_the_kid_rule(api, week, enc_key):
    response = api.post(URL, _body(fake_jwe(kid="nobody-published-this")), format="json")
    assert response.status_code == 400
    assert "kid" in json.dumps(response.json(), ensure_ascii=False)
    assert not TradeNetworkUpload.objects.exists()


@pytest.mark.django_db
def test_an_unknown_week_is_404(api, enc_key):
    assert (
        api.post(
            "/api/v1/weeks/209912001/trade-network/", _body(fake_jwe()), format="json"
        ).status_code
        == 404
    )
    assert (
        api.post("/api/v1/weeks/nada/trade-network/", _body(fake_jwe()), format="json").status_code
        == 404
    )
    assert api.get("/api/v1/weeks/209912001/trade-network/").status_code == 404


@pytest.mark.parametrize("status", [WeekStatus.OPEN, WeekStatus.CLOSED])
@pytest.mark.django_db
def test_open_and_closed_weeks_take_an_upload(
    api, week, enc_key, status, django_capture_on_commit_callbacks
):
    _set_status(week, status)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(URL, _body(fake_jwe()), format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "received" and body["correction"] is False
    upload = TradeNetworkUpload.objects.get(pk=body["id"])
    assert upload.receipt == body["receipt"] and upload.week_id == week.pk
    assert len(callbacks) == 1  # the validation task, sent after commit


@pytest.mark.django_db
def test_the_task_gets_only_the_uploads_id(
    api, week, enc_key, monkeypatch, django_capture_on_commit_callbacks
):
    from prudencial.closing import tasks_trade_network

    sent = []
    monkeypatch.setattr(
        tasks_trade_network.validate_trade_network, "delay", lambda *a, **k: sent.append((a, k))
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(URL, _body(fake_jwe()), format="json")
    assert sent == [((response.json()["id"],), {})]


@pytest.mark.parametrize("status", [WeekStatus.COMPUTED, WeekStatus.PUBLISHED])
@pytest.mark.django_db
def test_a_computed_week_takes_only_a_correction(api, week, enc_key, status):
    _set_status(week, status)
    refused = api.post(URL, _body(fake_jwe()), format="json")
    assert refused.status_code == 409
    text = json.dumps(refused.json(), ensure_ascii=False)
    assert WEEK in text and "correction" in text
    taken = api.post(URL, _body(fake_jwe(), correction=True), format="json")
    assert taken.status_code == 202, taken.content
    assert taken.json()["correction"] is True
    assert TradeNetworkUpload.objects.filter(correction=True).count() == 1


@pytest.mark.django_db
def test_a_scheduled_week_is_409_naming_its_state(api, week, enc_key):
    _set_status(week, WeekStatus.SCHEDULED)
    response = api.post(URL, _body(fake_jwe(), correction=True), format="json")
    assert response.status_code == 409
    assert str(WeekStatus.SCHEDULED.label) in json.dumps(response.json(), ensure_ascii=False)


@pytest.mark.django_db
def test_idempotency_key_replays_and_refuses_another_body(api, week, enc_key):
    jwe = fake_jwe()
    first = api.post(URL, _body(jwe), format="json", HTTP_IDEMPOTENCY_KEY="rede-1")
    again = api.post(URL, _body(jwe), format="json", HTTP_IDEMPOTENCY_KEY="rede-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert TradeNetworkUpload.objects.count() == 1
    other = api.post(URL, _body(fake_jwe()), format="json", HTTP_IDEMPOTENCY_KEY="rede-1")
    assert other.status_code == 422
    assert "Idempotency-Key" in json.dumps(other.json(), ensure_ascii=False)
    assert TradeNetworkUpload.objects.count() == 1
    # A retry of what was stored in time is answered even once the week is computed.
    _set_status(week, WeekStatus.COMPUTED)
    late = api.post(URL, _body(jwe), format="json", HTTP_IDEMPOTENCY_KEY="rede-1")
    assert late.status_code == 202 and late.json()["id"] == first.json()["id"]


@pytest.mark.django_db
def test_the_list_has_status_receipt_counts_and_no_contents(api, week, enc_key):
    jwe = fake_jwe()
    posted = api.post(URL, _body(jwe), format="json").json()
    [row] = api.get(URL).json()
    assert row["id"] == posted["id"] and row["receipt"] == posted["receipt"]
    assert row["status"] == "pending" and row["verdict_verified"] is False
    assert row["counts"] == {"contracts": None}
    assert jwe not in json.dumps(row) and "envelope" not in row and "jwe" not in row


@pytest.mark.django_db
def test_uploads_are_append_only(api, week, enc_key):
    api.post(URL, _body(fake_jwe()), format="json")
    upload = TradeNetworkUpload.objects.get()
    with pytest.raises(PermissionError):
        upload.delete()
    table = TradeNetworkUpload._meta.db_table
    for sql in (f"UPDATE {table} SET size_bytes = 1", f"DELETE FROM {table}"):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert TradeNetworkUpload.objects.get().size_bytes == upload.size_bytes


# --- through the real enclave -------------------------------------------------------------------


def contracts_file(sellers, buyers, *, price: float = 150.0, week: str = WEEK):
    return {
        "schema": "prudencial/contracts/v1",
        "week": week,
        "contracts": [
            {
                "seller_cnpj": s.cnpj,
                "buyer_cnpj": b.cnpj,
                "bucket": i % 7,
                "volume_mwm": 10.0 + i,
                "price_brl_mwh": price,
            }
            for i, (s, b) in enumerate(zip(sellers, buyers, strict=True))
        ],
    }


@pytest.fixture
def market(db):
    """Four traders; the real-enclave tests wait for the enclave op (enclave-closing helper)."""
    import inspect

    from enclave_bridge.enclave import service

    if '"validate_trade_network"' not in inspect.getsource(service):
        pytest.skip("the enclave program does not register validate_trade_network yet")
    from tests.factories import AgentFactory

    return [AgentFactory(acronym=f"TN{i:02d}", agent_class="trader") for i in range(4)]


def _upload_and_validate(api, payload, **extra):
    response = api.post(URL, _body(encrypt_for_enclave(payload), **extra), format="json")
    assert response.status_code == 202, response.content
    verdict = trade_network.trade_network_validate(upload_id=response.json()["id"])
    return response.json(), verdict


@pytest.mark.django_db(transaction=True)
def test_an_upload_gets_the_enclaves_signed_verdict(api, week, enclave, market):
    payload = contracts_file(market[:3], market[1:])
    posted, verdict = _upload_and_validate(api, payload)
    assert verdict.status == "accepted", verdict.errors
    [row] = api.get(URL).json()
    assert row["status"] == "accepted" and row["verdict_verified"] is True
    assert row["counts"] == {"contracts": 3}
    # Validating again (a redelivered task) keeps the one stored verdict.
    assert trade_network.trade_network_validate(upload_id=posted["id"]).pk == verdict.pk
    assert trade_network.latest_accepted(week=week).pk == posted["id"]


@pytest.mark.django_db(transaction=True)
def test_a_bad_contract_is_rejected_by_field_and_row(api, week, enclave, market):
    payload = contracts_file(market[:2], market[1:3])
    payload["contracts"][1]["volume_mwm"] = -5.0
    _posted, verdict = _upload_and_validate(api, payload)
    assert verdict.status == "rejected"
    [row] = api.get(URL).json()
    assert row["status"] == "rejected" and row["verdict_verified"]
    assert any("volume_mwm" in (e["field"] or "") for e in row["errors"]), row["errors"]
    assert trade_network.latest_accepted(week=week) is None


@pytest.mark.django_db(transaction=True)
def test_a_tampered_verdict_is_unverified_never_accepted(api, week, enclave, market):
    from prudencial.closing.models import TradeNetworkVerdict

    posted, verdict = _upload_and_validate(api, contracts_file(market[:2], market[2:]))
    assert verdict.status == "accepted"
    with connection.cursor() as cursor:  # what an attacker with the database could do
        table = TradeNetworkVerdict._meta.db_table
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(
            f"UPDATE {table} SET contracts = 999,"
            " args = jsonb_set(args::jsonb, '{week}', '\"202303002\"') WHERE id = %s",
            [verdict.pk],
        )
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    [row] = api.get(URL).json()
    assert row["status"] == "unverified" and not row["verdict_verified"]
    assert trade_network.latest_accepted(week=week) is None


@pytest.mark.django_db(transaction=True)
def test_a_canary_never_reaches_the_database_nor_the_logs(api, week, enclave, market, caplog):
    """A contract's price is the canary: not in any table, log record or task argument."""
    caplog.set_level(logging.DEBUG)
    canary = 87_654.321  # within the schema's price range (MAX_PRICE_BRL_MWH), so it is accepted
    payload = contracts_file(market[:2], market[2:], price=canary)
    bad = contracts_file(market[:2], market[2:], price=canary)
    bad["contracts"][0]["bucket"] = f"CANARIO-{uuid.uuid4().hex[:8]}"
    _posted, good_verdict = _upload_and_validate(api, payload)
    _posted, bad_verdict = _upload_and_validate(api, bad)
    assert good_verdict.status == "accepted" and bad_verdict.status == "rejected"
    api.get(URL)
    needles = ("87654.321", "87654,321", "87.654,321", bad["contracts"][0]["bucket"])
    with connection.cursor() as cursor:
        for model in (TradeNetworkUpload, good_verdict.__class__):
            cursor.execute(f"SELECT row_to_json(t)::text FROM {model._meta.db_table} t")
            dump = "\n".join(r[0] for r in cursor.fetchall())
            assert dump and not any(n in dump for n in needles), model
    log = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records and not any(n in log for n in needles)


# --- the staff client's file ----------------------------------------------------------------------


def _cnpjs():
    from tests.factories import make_cnpj

    return make_cnpj(901), make_cnpj(902)


def test_the_client_reads_csv_xlsx_and_json_as_the_same_payload(tmp_path):
    from openpyxl import Workbook

    from prudencial.client.cli import trade_network_payload

    seller, buyer = _cnpjs()
    header = ["seller_cnpj", "buyer_cnpj", "bucket", "month", "volume_mwm", "price_brl_mwh"]
    row = [seller, buyer, "2", "", "10,5", "150"]
    csv_file = tmp_path / "rede.csv"
    csv_file.write_text(";".join(header) + "\n" + ";".join(row) + "\n", encoding="utf-8-sig")
    book = Workbook()
    book.active.append(header)
    book.active.append([seller, buyer, 2, None, 10.5, 150])
    xlsx_file = tmp_path / "rede.xlsx"
    book.save(xlsx_file)
    from_csv = trade_network_payload(csv_file, week=WEEK)
    from_xlsx = trade_network_payload(xlsx_file, week=WEEK)
    json_file = tmp_path / "rede.json"
    json_file.write_text(json.dumps(from_csv))
    assert from_csv == from_xlsx == trade_network_payload(json_file, week=WEEK)
    assert from_csv["schema"] == "prudencial/contracts/v1" and from_csv["week"] == WEEK
    assert from_csv["contracts"] == [
        {"seller_cnpj": seller, "buyer_cnpj": buyer, "bucket": 2, "volume_mwm": 10.5,
         "price_brl_mwh": 150.0}
    ]  # fmt: skip


def test_the_client_refuses_a_bad_file_by_field_and_row_sending_nothing(tmp_path):
    from prudencial.client.cli import main, trade_network_payload
    from prudencial.client.errors import PayloadError

    seller, _buyer = _cnpjs()
    bad = tmp_path / "rede.csv"
    bad.write_text(
        f"seller_cnpj,buyer_cnpj,bucket,volume_mwm,price_brl_mwh\n{seller},{seller},1,-3,abc\n",
        encoding="utf-8",
    )
    with pytest.raises(PayloadError) as caught:
        trade_network_payload(bad, week=WEEK)
    fields = {e["field"] for e in caught.value.errors}
    assert "contracts[0].price_brl_mwh" in fields and all(
        e["row"] in (1, None) for e in caught.value.errors
    )
    assert "abc" not in json.dumps(caught.value.errors)
    # The command stops before any request (no platform is configured here).
    err = io.StringIO()
    code = main(
        ["trade-network", "send", "--week", WEEK, str(bad)], stdout=io.StringIO(), stderr=err
    )
    assert code == 1 and "price_brl_mwh" in err.getvalue()


def test_the_hosts_limit_is_within_what_the_enclave_opens():
    """A larger limit on the host would only move the refusal from the API to the enclave."""
    from django.conf import settings

    from enclave_bridge.enclave.envelope import MAX_ENVELOPE_CHARS

    assert settings.CLOSING_TRADE_NETWORK_MAX_BYTES <= MAX_ENVELOPE_CHARS
    assert settings.CLOSING_TRADE_NETWORK_MAX_BODY_BYTES > settings.CLOSING_TRADE_NETWORK_MAX_BYTES


# --- a trade network sent in parts (issue 11: 200,000 contracts) ----------------------------------


def _part_body(jwe: str, set_id: str, index: int, count: int, **extra):
    return _body(jwe, part_set=set_id, part_index=index, part_count=count, **extra)


@pytest.mark.django_db
def test_parts_are_stored_with_their_set_index_and_count(api, week, enc_key):
    response = api.post(URL, _part_body(fake_jwe(), "set-1", 2, 3), format="json")
    assert response.status_code == 202, response.content
    assert response.json()["part"] == {"set": "set-1", "index": 2, "count": 3}
    upload = TradeNetworkUpload.objects.get(pk=response.json()["id"])
    assert (upload.part_set, upload.part_index, upload.part_count) == ("set-1", 2, 3)
    [row] = api.get(URL).json()
    assert row["part"] == {"set": "set-1", "index": 2, "count": 3}
    whole = api.post(URL, _body(fake_jwe()), format="json")
    assert whole.status_code == 202 and whole.json()["part"] is None


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"part_set": "s", "part_index": 1}, "part_count"),
        ({"part_index": 1, "part_count": 2}, "part_set"),
        ({"part_set": "s", "part_index": 3, "part_count": 2}, "part_index"),
        ({"part_set": "s", "part_index": 1, "part_count": 33}, "part_count"),
        ({"part_set": "a b", "part_index": 1, "part_count": 2}, "part_set"),
        ({"part_set": "s" * 65, "part_index": 1, "part_count": 2}, "part_set"),
    ],
)
@pytest.mark.django_db
def test_a_bad_part_is_400_naming_the_field(api, week, enc_key, fields, named):
    response = api.post(URL, _body(fake_jwe(), **fields), format="json")
    assert response.status_code == 400, response.content
    assert named in response.json()["error"]["fields"], response.json()
    assert not TradeNetworkUpload.objects.exists()


@pytest.mark.django_db
def test_each_index_of_a_set_is_taken_once_per_week(api, week, enc_key, uploader):
    first = api.post(URL, _part_body(fake_jwe(), "set-1", 1, 2), format="json")
    assert first.status_code == 202
    again = api.post(URL, _part_body(fake_jwe(), "set-1", 1, 2), format="json")
    assert again.status_code == 409, again.content
    assert "set-1" in json.dumps(again.json(), ensure_ascii=False)
    assert api.post(URL, _part_body(fake_jwe(), "set-1", 2, 2), format="json").status_code == 202
    assert api.post(URL, _part_body(fake_jwe(), "set-2", 1, 2), format="json").status_code == 202
    assert TradeNetworkUpload.objects.count() == 3
    # The database holds the rule too.
    stored = TradeNetworkUpload.objects.get(pk=first.json()["id"])
    with pytest.raises(IntegrityError), transaction.atomic():
        TradeNetworkUpload.objects.create(
            week=week,
            submitted_by=uploader,
            envelope="x",
            receipt="0" * 64,
            size_bytes=1,
            part_set="set-1",
            part_index=1,
            part_count=2,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        TradeNetworkUpload.objects.create(
            week=week, submitted_by=uploader, envelope="x", receipt="0" * 64, size_bytes=1,
            part_set="set-9", part_index=3, part_count=2,
        )  # fmt: skip
    assert stored.part_index == 1


def _closing_in_network_state(week):
    """A closing at its network step, its one chunk's network part sealed by the real enclave
    for six agents (tests/enclave's batch), and those agents' CNPJs for contracts."""
    from django.utils import timezone

    from enclave_bridge import gateway
    from enclave_bridge.models import EnclaveKey
    from prudencial.closing.models import ChunkState, Closing, ClosingChunk, ClosingState
    from tests.enclave.payloads import network_options, parameters
    from tests.enclave.test_enclave_process import _batch

    closing = Closing.objects.create(
        week=week,
        sequence=1,
        state=ClosingState.NETWORK,
        parameters=parameters(),
        network_options=network_options(scenarios=50, seed=1),
    )
    key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
    items, _docs = _batch(6, key)
    client = gateway.gateway().client
    staged = client.stage_batch(parameters(), items)
    signed = client.closing_chunk_signed(staged, closing=closing.reference, chunk=0)
    ClosingChunk.objects.create(
        closing=closing,
        index=0,
        state=ChunkState.DONE,
        token=signed.token,
        args_sha256=signed.args_sha256,
        done_at=timezone.now(),
        network_part=signed.result["network_part"],
    )
    return closing, [item["agent"]["cnpj"] for item in items]


def _contracts(cnpjs, n, *, part=None, start=0):
    doc = {
        "schema": "prudencial/contracts/v1",
        "week": WEEK,
        "contracts": [
            {
                "seller_cnpj": cnpjs[(start + i) % len(cnpjs)],
                "buyer_cnpj": cnpjs[(start + i + 1) % len(cnpjs)],
                "bucket": 0,
                "volume_mwm": 1.0 + i,
                "price_brl_mwh": 150.0,
            }
            for i in range(n)
        ],
    }
    if part is not None:
        doc["part"] = part
    return doc


def _send_part(api, cnpjs, n, set_id, index, count, *, doc_part=None):
    part = {"set": set_id, "index": index, "count": count}
    payload = _contracts(cnpjs, n, part=doc_part or part, start=index)
    return _upload_and_validate(api, payload, part_set=set_id, part_index=index, part_count=count)


@pytest.mark.django_db(transaction=True)
def test_the_closing_uses_the_complete_set_and_reports_a_newer_incomplete_one(
    api, week, enclave, market, monkeypatch
):
    from prudencial.closing import services
    from prudencial.closing.models import Closing

    monkeypatch.setattr(services, "_dispatch_finish", lambda closing_id: None)
    closing, cnpjs = _closing_in_network_state(week)
    sizes = {1: 2, 2: 3, 3: 1}
    for index in (3, 1, 2):  # any order of arrival
        _posted, verdict = _send_part(api, cnpjs, sizes[index], "set-A", index, 3)
        assert verdict.status == "accepted", verdict.errors
    # A newer set: its part 1 accepted, part 2 never sent; a part whose document says
    # otherwise than its fields is rejected by the enclave, naming part.
    _posted, verdict = _send_part(api, cnpjs, 2, "set-B", 1, 2)
    assert verdict.status == "accepted"
    _posted, lying = _send_part(
        api, cnpjs, 2, "set-C", 1, 1, doc_part={"set": "set-C", "index": 1, "count": 2}
    )
    assert lying.status == "rejected" and [e["field"] for e in lying.errors] == ["part"]
    chosen = services.latest_trade_network(week)
    assert [(u.part_set, u.part_index) for u in chosen.uploads] == [
        ("set-A", 1),
        ("set-A", 2),
        ("set-A", 3),
    ]
    assert chosen.incomplete_sets == ["set-C", "set-B"]
    assert services.closing_network_step(closing_id=closing.pk) == "done"
    closing = Closing.objects.get(pk=closing.pk)
    assert closing.network_source == "trade_network"
    assert closing.network["source"] == "trade_network"
    assert closing.network["trade_network"]["contracts"] == sum(sizes.values()) == 6
    assert closing.network["trade_network"]["parts"] == 3
    assert closing.network["trade_network"]["receipts"] == [u.receipt for u in chosen.uploads]
    assert closing.network["trade_network_incomplete_sets"] == ["set-C", "set-B"]
    # A whole upload sent later is newer than every set: it is the network.
    _posted, whole = _upload_and_validate(api, _contracts(cnpjs, 4))
    assert whole.status == "accepted"
    newest = services.latest_trade_network(week)
    assert [u.pk for u in newest.uploads] == [whole.upload_id] and newest.incomplete_sets == []
    assert isinstance(newest.envelope, str)
