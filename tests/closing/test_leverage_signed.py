"""The leverage API over a real closing (real workers, the enclave process): a stored result is
shown as the enclave's only while its signed answer verifies and equals the row; a tampered row
or network figure is `unverified` and cannot be sent; the history names each closing's
parameters version and the correction notice."""

from __future__ import annotations

import pytest

from prudencial.closing import services
from prudencial.closing.models import Closing, LeverageDecision, LeverageResult
from tests.closing.conftest import past_deadline, wait_done
from tests.factories import UserFactory, grant

pytestmark = pytest.mark.django_db(transaction=True)


def _url(week, agent_id, tail):
    return f"/api/v1/weeks/{week.code}/agents/{agent_id}/{tail}"


def test_signed_results_verify_tampered_rows_do_not_and_the_history_names_corrections(
    market, workers, client_for
):
    group = workers()
    week = market.week
    past_deadline(week)
    first = services.closing_start(week=week, by=market.staff)
    wait_done(first.pk, group)
    row = LeverageResult.objects.filter(closing=first, status="computed").exclude(network={})[0]
    user = UserFactory(username="agente.fa")
    grant(user, row.agent)
    client = client_for(user)

    body = client.get(_url(week, row.agent_id, "leverage/")).json()
    assert body["signature"]["status"] == "verified", body["signature"]
    assert body["signature"]["signing_kid"] and body["figures"]["fa"] == row.fa
    risk = client.get(_url(week, row.agent_id, "network-risk/")).json()
    assert risk["signature"]["status"] == "verified" and risk["source"] == "counterparties"
    assert risk["local"]["community"] == row.network["community"]
    assert len(risk["communities"]) == risk["summary"]["n_communities"]

    # A figure edited in the database no longer matches the signed answer.
    LeverageResult.objects.filter(pk=row.pk).update(fa=row.fa * 0.5)
    body = client.get(_url(week, row.agent_id, "leverage/")).json()
    assert body["signature"]["status"] == "unverified"
    assert "fa" in body["signature"]["reason"]
    refused = client.post(_url(week, row.agent_id, "leverage/send/"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "unverified"
    assert not LeverageDecision.objects.filter(result=row).exists()
    LeverageResult.objects.filter(pk=row.pk).update(fa=row.fa)
    # So does a network figure, or a chunk answer's stored args.
    LeverageResult.objects.filter(pk=row.pk).update(network={**row.network, "cvar_total": 0.0})
    assert client.get(_url(week, row.agent_id, "leverage/")).json()["signature"]["status"] == (
        "unverified"
    )
    LeverageResult.objects.filter(pk=row.pk).update(network=row.network)
    chunk = row.chunk
    chunk.args = {**chunk.args, "chunk": chunk.index + 1}
    chunk.save(update_fields=["args"])
    assert client.get(_url(week, row.agent_id, "leverage/")).json()["signature"]["status"] == (
        "unverified"
    )
    chunk.args = {**chunk.args, "chunk": chunk.index}
    chunk.save(update_fields=["args"])

    sent = client.post(_url(week, row.agent_id, "leverage/send/"))
    assert sent.status_code == 200 and sent.json()["decision"]["state"] == "sent"
    again = client.post(_url(week, row.agent_id, "leverage/send/"))
    assert again.json()["decision"]["at"] == sent.json()["decision"]["at"]
    staff = client_for(market.staff).get(_url(week, row.agent_id, "leverage/")).json()
    assert staff["figures"]["fa"] == row.fa and staff["breakdown_jwe"] is None

    second = services.closing_correct(week=week, by=market.staff, why="PLD corrigido (teste)")
    wait_done(second.pk, group)
    history = client.get(f"/api/v1/agents/{row.agent_id}/leverage/history/").json()
    assert [h["closing"]["sequence"] for h in history] == [2, 1]
    assert [h["closing"]["is_current"] for h in history] == [True, False]
    assert history[0]["closing"]["correction"]["why"] == "PLD corrigido (teste)"
    assert history[0]["closing"]["correction"]["supersedes"] == first.reference
    assert all(h["signature"]["status"] == "verified" for h in history)
    version = Closing.objects.get(pk=second.pk).parameters_version
    assert history[0]["closing"]["parameters_version"] == version is not None
    assert history[1]["decision"]["state"] == "sent" and history[0]["decision"]["state"] == (
        "pending"
    )
