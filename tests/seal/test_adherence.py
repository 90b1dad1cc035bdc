"""The seal with the REAL enclave process: evidence derived from verified submissions (channel,
regularity, with the record ids) and the risk adherence computed in the enclave on the agent's
latest accepted portfolio, stored signed and verified again on read. A canary R$ value in the
portfolio never reaches the database, the logs or the answer."""

from __future__ import annotations

import base64
import json
import logging
from datetime import date

import pytest

from prudencial.submissions import services as submission_services
from prudencial.submissions import tasks
from prudencial.submissions.models import Submission
from seal import selectors, services
from seal.models import AdherenceResult, DecisionLog, Evaluation, EvaluationItem
from tests.submissions.conftest import counterparties, encrypt_for_enclave, open_week, portfolio

pytestmark = [pytest.mark.django_db, pytest.mark.enclave]

WEEK = "202305001"
CANARY_EQUITY = 12_345_678.91  # equity_brl: PLA = CANARY_EQUITY − 2,000,000 of deductions
CANARY_TEXTS = ("12345678.91", "10345678.91", "372000")
HOURS_MAY = 31 * 24


@pytest.fixture
def market(enclave):
    from tests.factories import (
        PLD_CAP,
        PLD_FLOOR,
        AgentFactory,
        UserFactory,
        correlation_matrix,
        default_buckets,
        grant,
        save_parameters,
    )

    week = open_week(WEEK)
    save_parameters(
        week=week,
        buckets=default_buckets(),
        first_month=date(2023, 5, 1),
        correlation=correlation_matrix(),
        pld_floor=PLD_FLOOR,
        pld_cap=PLD_CAP,
    )
    trader = AgentFactory(acronym="CM47", agent_class="trader")
    generator = AgentFactory(acronym="GE12", agent_class="generator")
    user = UserFactory(username="maria.souza")
    grant(user, trader)
    outsider = UserFactory(username="ana.costa")
    grant(outsider, generator)
    return {
        "week": week,
        "trader": trader,
        "generator": generator,
        "user": user,
        "outsider": outsider,
    }


def _send(user, agent, kind, payload, channel):
    received = submission_services.submit_envelope(
        user=user,
        week=WEEK,
        agent_id=agent.pk,
        kind=kind,
        jwe=encrypt_for_enclave(payload),
        channel=channel,
    )
    submission_id = received.response["id"]
    assert tasks.validate_submission.apply(args=[submission_id]).get() == "accepted"
    return submission_id


@pytest.fixture
def evaluation(market, seal_staff):
    from prudencial.models import Week

    trader, user = market["trader"], market["user"]
    payload = portfolio(trader, week=WEEK)
    payload["equity"]["equity_brl"] = CANARY_EQUITY
    market["portfolio_id"] = _send(user, trader, "portfolio", payload, "api")
    market["counterparties_id"] = _send(
        user,
        trader,
        "counterparties",
        counterparties(trader, market["generator"], week=WEEK),
        "web",
    )
    Week.objects.filter(code=WEEK).update(status="closed")
    cycle = services.cycle_create(
        code="2023", starts_on=date(2023, 1, 1), ends_on=date(2023, 12, 31)
    )
    return services.evaluation_create(agent=trader, cycle=cycle, by=seal_staff)


def test_platform_evidence_comes_from_the_verified_records(evaluation, market):
    items = {i.criterion.code: i for i in evaluation.items.select_related("criterion")}
    regular = items["contracts-daily"]
    assert regular.decision == "achieved" and regular.decision_source == "platform"
    assert regular.derived["records"] == [{"week": WEEK, "submission": market["portfolio_id"]}]
    assert (regular.derived["weeks_expected"], regular.derived["missing"]) == (1, [])
    api = items["channel-api"]
    # One of the two counted submissions came by API: below SEAL_API_MIN_SHARE (1.0).
    assert api.decision == "not_achieved" and api.derived["api_share"] == 0.5
    assert api.derived["by_channel"] == {
        "api": [market["portfolio_id"]],
        "web": [market["counterparties_id"]],
    }
    assert items["channel-spreadsheet"].decision == "achieved"
    assert items["discrepancy"].decision == "not_evaluated"
    assert Submission.objects.get(pk=market["portfolio_id"]).channel == "api"
    # The score traces each derived figure to its records.
    services.evaluation_score(evaluation=evaluation)
    evaluation.refresh_from_db()
    rows = {r["code"]: r for r in evaluation.breakdown["items"]}
    assert rows["contracts-daily"]["derived_from"] == {"submissions": [market["portfolio_id"]]}
    assert rows["contracts-daily"]["awarded"] == 10


def test_a_staff_override_survives_a_new_derivation(evaluation, seal_staff):
    item = evaluation.items.get(criterion__code="channel-api")
    services.item_decide(item=item, decision="achieved", by=seal_staff, comment="API desde abril")
    services.evaluation_derive(evaluation=evaluation, by=seal_staff)
    item.refresh_from_db()
    assert (item.decision, item.decision_source) == ("achieved", "staff")


def test_adherence_is_computed_in_the_enclave_signed_and_verified(
    evaluation, market, client_for, api_client, caplog, settings
):
    caplog.set_level(logging.DEBUG)
    row = services.adherence_compute(evaluation=evaluation)
    # Hand: long 5 MWm in M+0 (buys 10, consumes 5); worst scenario the −100 R$/MWh shift:
    # loss 5 × 100 × 744 h = 372,000 R$; PLA 10,345,678.91; margin 1.0 − loss / PLA.
    expected = round(1.0 - 5 * 100 * HOURS_MAY / (CANARY_EQUITY - 2_000_000), 4)
    assert (row.status, row.margin, row.limit) == ("adherent", expected, 1.0)
    assert row.submission_id == market["portfolio_id"] and row.week.code == WEEK
    assert "envelope" not in row.args

    url = f"/api/v1/seal/evaluations/{evaluation.pk}/adherence/"
    answer = client_for(market["user"]).get(url)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["verified"], body["margin"]) == ("adherent", True, expected)
    assert body["worst_scenario"] == "shift_-100"
    assert client_for(market["outsider"]).get(url).status_code == 404
    assert api_client.get(url).status_code == 401

    # The canary: never in the database rows the seal writes, the logs, the answer or the JWS.
    stored = json.dumps(
        [
            list(AdherenceResult.objects.values()),
            list(DecisionLog.objects.values()),
            list(Evaluation.objects.values()),
            list(EvaluationItem.objects.values()),
        ],
        default=str,
    )
    payload = row.token.split(".")[1]
    signed = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("latin-1")
    assert "margin" in signed and "adherent" in signed  # the decoded answer is readable
    for text in CANARY_TEXTS:
        for where in (stored, caplog.text, answer.content.decode(), signed):
            assert text not in where and text.replace(".", ",") not in where

    # A stricter limit: not adherent, a negative margin (no R$ either).
    settings.SEAL_ADHERENCE_LIMIT = 0.01
    strict = services.adherence_compute(evaluation=evaluation)
    assert strict.status == "not_adherent"
    assert strict.margin == round(0.01 - 5 * 100 * HOURS_MAY / (CANARY_EQUITY - 2_000_000), 4) < 0
    assert selectors.adherence_for(evaluation).status == "not_adherent"


def test_a_forged_adherence_row_is_never_shown_as_adherent(evaluation):
    row = services.adherence_compute(evaluation=evaluation)
    forged = AdherenceResult.objects.create(
        evaluation=evaluation,
        week=row.week,
        submission=row.submission,
        status="adherent",
        margin=0.99,  # not what the enclave signed
        limit=row.limit,
        token=row.token,
        args=row.args,
        args_sha256=row.args_sha256,
        request_id=row.request_id,
        nonce=row.nonce,
        signing_kid=row.signing_kid,
    )
    checked = selectors.adherence_for(evaluation)
    assert forged.pk > row.pk and checked.status == "unverified" and not checked.verified


def test_no_accepted_portfolio_no_adherence(market, seal_staff):
    cycle = services.cycle_create(
        code="2023", starts_on=date(2023, 1, 1), ends_on=date(2023, 12, 31)
    )
    evaluation = services.evaluation_create(agent=market["generator"], cycle=cycle, by=seal_staff)
    with pytest.raises(services.AdherenceUnavailable):
        services.adherence_compute(evaluation=evaluation)


def test_the_enclave_refuses_bad_adherence_requests(evaluation, market):
    from enclave_bridge import gateway
    from prudencial.services.parameters import parameters_payload

    submission = Submission.objects.get(pk=market["portfolio_id"])
    trader = market["trader"]
    agent = {"acronym": trader.acronym, "cnpj": trader.cnpj}
    parameters = parameters_payload(market["week"].parameters)
    for limit in (0, -1.0, 1e9):
        with pytest.raises(gateway.EnclaveError) as exc:
            gateway.risk_adherence(
                envelope=submission.envelope,
                agent=agent,
                week=WEEK,
                parameters=parameters,
                limit=limit,
            )
        assert exc.value.code == "bad_request" and "limit" in str(exc.value)
    with pytest.raises(gateway.EnclaveError) as exc:
        gateway.risk_adherence(
            envelope=submission.envelope,
            agent=agent,
            week="202305002",
            parameters=parameters,
            limit=1.0,
        )
    assert exc.value.code == "bad_request"
    # The envelope bound to another agent: rejected by the same verdict as validate, no margin.
    other = {"acronym": market["generator"].acronym, "cnpj": market["generator"].cnpj}
    signed = gateway.risk_adherence(
        envelope=submission.envelope, agent=other, week=WEEK, parameters=parameters, limit=1.0
    )
    assert signed.result["status"] == "rejected" and signed.result["margin"] is None
    assert signed.result["errors"]
