"""Submissions validated by the REAL enclave process: an agent's envelope encrypted with jwcrypto
to the enclave's published key, received by the API, validated by the task through the gateway,
its signed verdict stored and verified again on every read."""

from __future__ import annotations

import pytest
from django.db import connection

from prudencial.submissions import tasks
from prudencial.submissions.models import Submission, Verdict
from tests.submissions.conftest import WEEK, counterparties, encrypt_for_enclave, portfolio

pytestmark = pytest.mark.django_db


def submit(api, agent, kind: str, payload) -> dict:
    response = api.post(
        f"/api/v1/weeks/{WEEK}/agents/{agent.pk}/{kind}/",
        {"jwe": encrypt_for_enclave(payload)},
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()


def validate(submission_id: int) -> str:
    """The task, run in this process (the worker tests run it in a real worker)."""
    return tasks.validate_submission.apply(args=[submission_id]).get()


def listing(api, agent) -> list[dict]:
    response = api.get(f"/api/v1/weeks/{WEEK}/agents/{agent.pk}/submissions/")
    assert response.status_code == 200
    return response.json()


def test_an_encrypted_portfolio_is_accepted_and_verified_when_read(
    enclave, api, week, trader, generator
):
    received = submit(api, trader, "portfolio", portfolio(trader))
    assert validate(received["id"]) == "accepted"
    verdict = Verdict.objects.get(submission_id=received["id"])
    assert verdict.source == "validate" and verdict.token.count(".") == 2
    assert "envelope" not in verdict.args and len(verdict.args_sha256) == 64
    [row] = listing(api, trader)
    assert (row["status"], row["verdict_verified"], row["is_current"]) == ("accepted", True, True)
    assert row["errors"] == []

    other = submit(api, trader, "counterparties", counterparties(trader, generator))
    assert validate(other["id"]) == "accepted"
    progress = api.get(f"/api/v1/weeks/{WEEK}/progress/").json()
    assert progress["portfolio"]["done"] == 1 and progress["counterparties"]["done"] == 1
    # Running the task again changes nothing (idempotent).
    assert validate(received["id"]) == "accepted"
    assert Verdict.objects.filter(submission_id=received["id"]).count() == 1


def test_an_invalid_portfolio_is_rejected_with_field_and_row(enclave, api, week, trader):
    no_amount = portfolio(trader)
    no_amount["contracts"][0]["amount_brl"] = 0.0  # volume > 0 needs an amount > 0
    bad_side = portfolio(trader)
    bad_side["contracts"].append(dict(bad_side["contracts"][0], side="sideways"))
    for payload in (no_amount, bad_side):
        assert validate(submit(api, trader, "portfolio", payload)["id"]) == "rejected"
    rows = {r["version"]: r for r in listing(api, trader)}
    for row in rows.values():
        assert row["status"] == "rejected" and row["verdict_verified"] is True
        assert row["is_current"] is False
        assert all(e["rule"] for e in row["errors"])
    assert ("contracts[0].amount_brl", 1) in {(e["field"], e["row"]) for e in rows[1]["errors"]}
    assert ("contracts[1].side", 2) in {(e["field"], e["row"]) for e in rows[2]["errors"]}


def test_a_portfolio_for_another_agent_is_rejected_by_the_binding(
    enclave, api, week, trader, generator
):
    received = submit(api, trader, "portfolio", portfolio(generator))
    assert validate(received["id"]) == "rejected"
    assert any(e["field"].startswith("agent") for e in listing(api, trader)[0]["errors"])


def test_the_latest_accepted_version_is_the_current_one(enclave, api, week, trader):
    first = submit(api, trader, "portfolio", portfolio(trader))
    validate(first["id"])
    bad = portfolio(trader)
    bad["contracts"][0]["amount_brl"] = 0.0
    second = submit(api, trader, "portfolio", bad)
    validate(second["id"])
    rows = {r["version"]: r for r in listing(api, trader)}
    assert rows[1]["is_current"] and not rows[2]["is_current"]
    third = submit(api, trader, "portfolio", portfolio(trader))
    validate(third["id"])
    rows = {r["version"]: r for r in listing(api, trader)}
    assert [v for v, r in rows.items() if r["is_current"]] == [3]


def _tamper(sql: str, params) -> None:
    """What someone with write access to the database would do: switch the append-only trigger
    off for the statement and rewrite a row."""
    import pgtrigger

    with pgtrigger.ignore("submissions.Verdict:verdict_append_only"), connection.cursor() as cur:
        cur.execute(sql, params)


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("UPDATE submissions_verdict SET status = 'accepted', errors = '[]' WHERE id = %s", "row"),
        (
            "UPDATE submissions_verdict SET status = 'accepted', errors = '[]', "
            "token = (SELECT token FROM submissions_verdict WHERE id = %s) WHERE id = %s",
            "token",
        ),
    ],
)
def test_a_tampered_verdict_is_never_shown_as_accepted(enclave, api, week, trader, sql, what):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL: the verdict table is append-only by trigger")
    good = submit(api, trader, "portfolio", portfolio(trader))
    validate(good["id"])
    bad = portfolio(trader)
    bad["contracts"][0]["amount_brl"] = 0.0
    rejected = submit(api, trader, "portfolio", bad)
    validate(rejected["id"])
    target = Verdict.objects.get(submission_id=rejected["id"])
    if what == "row":
        _tamper(sql, [target.pk])
    else:  # graft the accepted verdict's JWS onto the rejected submission
        source = Verdict.objects.get(submission_id=good["id"])
        _tamper(sql, [source.pk, target.pk])
    assert Verdict.objects.get(pk=target.pk).status == "accepted"  # the row says so...
    rows = {r["id"]: r for r in listing(api, trader)}
    shown = rows[rejected["id"]]
    assert shown["status"] == "unverified" and shown["verdict_verified"] is False
    assert not shown["is_current"]
    assert rows[good["id"]]["is_current"]  # the genuine one still counts


def test_a_swapped_envelope_unbinds_its_verdict(enclave, api, week, trader):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL: the submission table is append-only by trigger")
    import pgtrigger

    received = submit(api, trader, "portfolio", portfolio(trader))
    validate(received["id"])
    with pgtrigger.ignore("submissions.Submission:submission_append_only"):
        Submission.objects.filter(pk=received["id"]).update(
            envelope=encrypt_for_enclave(portfolio(trader))
        )
    [row] = listing(api, trader)
    assert row["status"] == "unverified" and not row["is_current"]


def test_a_verdict_row_cannot_be_changed(enclave, api, week, trader):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL triggers")
    from django.db import DatabaseError, transaction

    received = submit(api, trader, "portfolio", portfolio(trader))
    validate(received["id"])
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        Verdict.objects.update(status="rejected")


def test_an_envelope_the_enclave_cannot_open_is_an_error_never_accepted(enclave, api, week, trader):
    jwe = encrypt_for_enclave(portfolio(trader))
    header, key, iv, ciphertext, tag = jwe.split(".")
    broken = ".".join([header, key, iv, ciphertext[:-4] + "AAAA", tag])
    response = api.post(
        f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/portfolio/", {"jwe": broken}, format="json"
    )
    assert response.status_code == 202  # the host reads only the header
    assert validate(response.json()["id"]) == "error"
    [row] = listing(api, trader)
    assert row["status"] == "error" and row["errors"][0]["field"] == "jwe"


def test_the_attestation_by_get(enclave, api):
    from enclave_bridge.wire.protocol import b64url

    nonce = b64url(bytes(range(32)))
    response = api.get(f"/api/v1/enclave/attestation/?nonce={nonce}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["nonce"] == nonce and body["kid"] in body["kids"]
    assert set(body) == {"document", "nonce", "kid", "kids", "signing_kid", "jwks"}
    assert api.get("/api/v1/enclave/attestation/?nonce=abc").status_code == 400


# --- batches, split by the enclave --------------------------------------------------------------


def batch_file(week: str = WEEK, portfolios=(), counterparties_=()) -> dict:
    return {
        "schema": "prudencial/batch/v1",
        "week": week,
        "portfolios": list(portfolios),
        "counterparties": list(counterparties_),
    }


def post_batch(api, agents, payload) -> dict:
    response = api.post(
        f"/api/v1/weeks/{WEEK}/batch/",
        {"jwe": encrypt_for_enclave(payload), "agents": [a.pk for a in agents]},
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()


def process(batch_id: int) -> str:
    return tasks.process_batch.apply(args=[batch_id]).get()


def test_a_json_batch_becomes_one_submission_per_agent_and_kind(
    enclave, api, week, trader, generator
):
    bad = portfolio(generator)
    bad["contracts"][0]["amount_brl"] = 0.0
    received = post_batch(
        api,
        [trader, generator],
        batch_file(
            portfolios=[portfolio(trader), bad],
            counterparties_=[counterparties(trader, generator)],
        ),
    )
    assert process(received["id"]) == "accepted"
    assert process(received["id"]) == "accepted"  # a second run does nothing
    made = Submission.objects.filter(batch_id=received["id"])
    assert made.count() == 3
    assert set(made.values_list("channel", flat=True)) == {"api"}
    detail = api.get(f"/api/v1/batches/{received['id']}/").json()
    assert detail["status"] == "accepted"
    assert detail["counts"] == {"submissions": 3, "accepted": 2, "rejected": 1}
    assert {r["agent"] for r in detail["submissions"]} == {trader.pk, generator.pk}
    trader_rows = {r["kind"]: r for r in listing(api, trader)}
    assert trader_rows["portfolio"]["status"] == "accepted"
    assert trader_rows["portfolio"]["verdict_verified"] and trader_rows["portfolio"]["is_current"]
    assert trader_rows["portfolio"]["batch"] == received["id"]
    [generator_row] = listing(api, generator)
    assert generator_row["status"] == "rejected"
    assert generator_row["errors"][0]["field"] == "contracts[0].amount_brl"
    # The re-encrypted envelope is a submission like any other: the enclave opens it.
    envelope = made.get(agent=trader, kind="portfolio").envelope
    assert envelope.count(".") == 4


def test_a_batch_file_that_does_not_cover_the_declared_agents_stores_nothing(
    enclave, api, week, trader, generator
):
    received = post_batch(api, [trader, generator], batch_file(portfolios=[portfolio(trader)]))
    assert process(received["id"]) == "rejected"
    assert not Submission.objects.exists()
    detail = api.get(f"/api/v1/batches/{received['id']}/").json()
    assert detail["status"] == "rejected" and detail["errors"]
    assert detail["errors"][0]["field"].startswith("agents")


def test_a_tampered_batch_verdict_is_not_accepted(enclave, api, week, trader):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL triggers")
    bad = portfolio(trader)
    bad["contracts"][0]["amount_brl"] = 0.0
    received = post_batch(api, [trader], batch_file(portfolios=[bad]))
    process(received["id"])
    target = Verdict.objects.get(submission__batch_id=received["id"])
    _tamper(
        "UPDATE submissions_verdict SET status = 'accepted', errors = '[]' WHERE id = %s",
        [target.pk],
    )
    [row] = listing(api, trader)
    assert row["status"] == "unverified" and not row["is_current"]


def test_an_xlsx_batch_is_split_like_a_json_one(enclave, api, week, trader, generator):
    from enclave_bridge.enclave.xlsx import build_template

    book = build_template(
        [portfolio(trader), portfolio(generator), counterparties(trader, generator)],
        kind="all",
        week=WEEK,
    )
    received = post_batch(api, [trader, generator], book)
    assert process(received["id"]) == "accepted"
    made = Submission.objects.filter(batch_id=received["id"])
    assert sorted(made.values_list("agent__acronym", "kind")) == [
        ("CM47", "counterparties"),
        ("CM47", "portfolio"),
        ("GE12", "portfolio"),
    ]
    assert {r["status"] for r in listing(api, trader)} == {"accepted"}


def test_an_xlsx_batch_is_the_spreadsheet_channel(enclave, api, week, trader):
    from enclave_bridge.enclave.xlsx import build_template

    received = post_batch(api, [trader], build_template([portfolio(trader)], week=WEEK))
    process(received["id"])
    assert set(
        Submission.objects.filter(batch_id=received["id"]).values_list("channel", flat=True)
    ) == {"spreadsheet"}


def _queries(call) -> int:
    count = [0]

    def counting(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counting):
        call()
    return count[0]


def test_reading_submissions_costs_the_same_queries_for_one_or_many(enclave, api, week, trader):
    """No query per row: the verdicts come joined and the signing key is read once."""
    validate(submit(api, trader, "portfolio", portfolio(trader))["id"])
    path = f"/api/v1/weeks/{WEEK}/agents/{trader.pk}/submissions/"
    one = _queries(lambda: api.get(path))
    for _ in range(5):
        validate(submit(api, trader, "portfolio", portfolio(trader))["id"])
    assert _queries(lambda: api.get(path)) == one
    rows = api.get(path).json()
    assert len(rows) == 6 and all(r["verdict_verified"] for r in rows)
