"""The closing's systemic measures and community tracking end to end (real enclave process,
real Celery worker, PostgreSQL, Redis): two consecutive weeks closed, the enclave's signed
systemic figures and the communities' transition stored, checked against the signature on
read, shown in the admin (closing page, network panel, community-evolution page and picture),
the staff API and the agent's own network-risk answer — each with its permission rule."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from prudencial.closing import decisions, services
from prudencial.closing.models import Closing, LeverageResult
from prudencial.closing.signatures import SignatureChecker
from tests.closing.conftest import (
    CANARY_TEXT,
    build_market,
    counterparties_payload,
    make_week,
    past_deadline,
    portfolio_payload,
    submit,
    wait_done,
)
from tests.factories import UserFactory, grant

pytestmark = pytest.mark.django_db(transaction=True)

AGENTS = 60


def _second_week(market):
    """The same agents in the next week; every agent's counterparties shifted by one, so the
    communities move."""
    from django.db import connections

    week = make_week(date(2023, 3, 8))
    agents = market.agents
    jobs = []
    for n, agent in enumerate(agents):
        if agent.pk in market.missing:
            continue
        jobs.append((agent, "portfolio", portfolio_payload(agent, week.code, n)))
        if n % 5 != 4:
            others = [agents[(n + k) % len(agents)] for k in (2, 3, 5)]
            jobs.append((agent, "counterparties", counterparties_payload(agent, others, week.code)))

    def run(job):
        try:
            return submit(week, *job, market.sender)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(run, jobs))
    return week


def _close(week, group, staff):
    past_deadline(week)
    closing = services.closing_start(week=week, by=staff)
    wait_done(closing.pk, group)
    closing.refresh_from_db()
    return closing


@pytest.fixture
def two_weeks(enclave, workers):
    group = workers()
    first_week = make_week(date(2023, 3, 1))
    market = build_market(first_week, agents=AGENTS, missing_every=20)
    first = _close(first_week, group, market.staff)
    second_week = _second_week(market)
    second = _close(second_week, group, market.staff)
    return market, first, second


def _staff(username, *codenames):
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="closing", codename__in=codenames)
    )
    return user


def test_two_closings_store_show_and_guard_the_systemic_measures_and_tracking(
    two_weeks, client, client_for, monkeypatch
):
    market, first, second = two_weeks

    # --- stored: the signed answer's systemic figures and transition, on their own fields ---
    for closing in (first, second):
        systemic = closing.systemic
        assert systemic["schema"] == "prudencial/systemic/v1", systemic
        assert set(systemic["scenarios"]) == {"high", "low"} and "agents" not in systemic
        assert "systemic" not in closing.network and "tracking" not in closing.network
        assert closing.network["timing_s"]["systemic"] >= 0
        rows = LeverageResult.objects.filter(closing=closing).exclude(network={})
        assert rows.exists()
        for row in rows:
            assert set(row.systemic) == {"high", "low"}, row.systemic
            assert {"debtrank_impact", "en_recovery"} <= set(row.systemic["high"])
        assert SignatureChecker().check_closing(closing).verified
        for text in (json.dumps(closing.systemic), json.dumps(closing.tracking)):
            assert CANARY_TEXT not in text
        assert all(CANARY_TEXT not in json.dumps(r.systemic) for r in rows)
    assert first.tracking == {"skipped": "no previous week's communities"}
    transition = second.tracking
    assert (transition["from"], transition["to"]) == (first.week.code, second.week.code)
    assert transition["agents"]["previous"] == sum(
        1 for c in services.community_membership(first).values() if c is not None
    )
    assert sum(transition["counts"].values()) == len(transition["events"])
    # The host sent last week's communities (isolated agents are in none) and their week.
    assert second.network_args["previous_week"] == first.week.code
    assert second.network_args["previous"] == services.previous_communities(second.week)

    # --- the signature covers what is shown ---
    row = LeverageResult.objects.filter(closing=second, status="computed").exclude(systemic={})[0]
    checker = SignatureChecker()
    assert checker.check(row).verified
    edited = {**row.systemic, "high": {**row.systemic["high"], "debtrank_impact": 0.0}}
    LeverageResult.objects.filter(pk=row.pk).update(systemic=edited)
    row.refresh_from_db()
    assert SignatureChecker().check(row).reason == "the systemic figures differ from the signed"
    original = Closing.objects.get(pk=second.pk).systemic
    Closing.objects.filter(pk=second.pk).update(systemic={**original, "n_agents": 1})
    assert not SignatureChecker().check_closing(Closing.objects.get(pk=second.pk)).verified
    Closing.objects.filter(pk=second.pk).update(systemic=original)
    tracked = Closing.objects.get(pk=second.pk).tracking
    Closing.objects.filter(pk=second.pk).update(tracking={**tracked, "counts": {}})
    assert not SignatureChecker().check_closing(Closing.objects.get(pk=second.pk)).verified
    Closing.objects.filter(pk=second.pk).update(tracking=tracked)
    # Restore the row exactly from the signed answer (what the step stored).
    signed = SignatureChecker().network(second)
    LeverageResult.objects.filter(pk=row.pk).update(
        systemic=signed.systemic_agents[row.agent.acronym]
    )
    row.refresh_from_db()
    assert SignatureChecker().check(row).verified

    # --- the agent's own network-risk answer: its own row, the system unnamed ---
    own, other = (
        row,
        (
            LeverageResult.objects.filter(closing=second, status="computed")
            .exclude(systemic={})
            .exclude(pk=row.pk)[0]
        ),
    )
    user = UserFactory(username=f"agente.{uuid.uuid4().hex[:6]}")
    grant(user, own.agent)
    api = client_for(user)
    url = f"/api/v1/weeks/{second.week.code}/agents/{own.agent_id}/network-risk/"
    body = api.get(url).json()
    assert body["signature"]["status"] == "verified"
    assert body["systemic"]["signature"]["status"] == "verified"
    assert body["systemic"]["local"] == own.systemic
    for scenario in body["systemic"]["system"]["scenarios"].values():
        assert "top" not in scenario["debtrank"] and "agents" not in scenario["cover2"]
    text = json.dumps(body)
    assert not [a.acronym for a in market.agents if a.acronym in text and a.pk != own.agent_id]
    refused = api.get(f"/api/v1/weeks/{second.week.code}/agents/{other.agent_id}/network-risk/")
    assert refused.status_code == 404  # another agent's row is not confirmed to exist
    for path in (f"/api/v1/weeks/{second.week.code}/systemic/", "/api/v1/communities/tracking/"):
        assert api.get(path).status_code == 403, path  # staff only
        assert client.get(path).status_code in (401, 403), path  # anonymous

    # --- the staff API: names of unsent results withheld, then shown once sent ---
    viewer = _staff("leitora.sistemica", "view_closing", "view_leverageresult")
    staff_api = client_for(viewer)
    weekly = staff_api.get(f"/api/v1/weeks/{second.week.code}/systemic/").json()
    assert weekly["signature"]["status"] == "verified" and weekly["agents"] == {}
    assert weekly["tracking"] == transition
    named = [
        t["agent"] for s in weekly["systemic"]["scenarios"].values() for t in s["debtrank"]["top"]
    ]
    assert named and all(a is None for a in named)  # nobody sent yet
    assert staff_api.get("/api/v1/weeks/202303009/systemic/").status_code == 404
    tracking = staff_api.get("/api/v1/communities/tracking/?weeks=2").json()
    assert tracking["tracking"]["weeks"] == [first.week.code, second.week.code]
    assert len(tracking["closings"]) == 2 and tracking["unverified"] == []
    assert tracking["closings"][1]["transition"] == transition
    history = tracking["agents"][own.agent.acronym]
    assert [h["sent"] for h in history] == [False, False]
    assert all(h["community"] is None for h in history)
    decisions.leverage_send(own, user)
    weekly = staff_api.get(f"/api/v1/weeks/{second.week.code}/systemic/").json()
    assert weekly["agents"] == {own.agent.acronym: own.systemic}
    tracking = staff_api.get(
        f"/api/v1/communities/tracking/?weeks=2&agent={own.agent.acronym}"
    ).json()
    assert list(tracking["agents"]) == [own.agent.acronym]
    assert tracking["agents"][own.agent.acronym][1] == {
        "week": second.week.code,
        "sent": True,
        "community": own.network["community"] if own.network["community_rank"] else None,
        "lineage": tracking["agents"][own.agent.acronym][1]["lineage"],
    }
    one = staff_api.get(f"/api/v1/communities/tracking/?weeks=1&until={first.week.code}").json()
    assert one["tracking"]["weeks"] == [first.week.code]
    for bad in ("weeks=0", "weeks=53", "until=2023-03", "weeks=x", "agent=", "until="):
        response = staff_api.get(f"/api/v1/communities/tracking/?{bad}")
        assert response.status_code == 400, bad
    # Stored communities edited in the database: the week is left out, named.
    LeverageResult.objects.filter(pk=other.pk).update(
        network={**other.network, "community": other.network["community"] + 1000}
    )
    tracking = staff_api.get("/api/v1/communities/tracking/?weeks=2").json()
    assert tracking["tracking"]["weeks"] == [first.week.code]
    assert [u["week"] for u in tracking["unverified"]] == [second.week.code]
    LeverageResult.objects.filter(pk=other.pk).update(network=other.network)

    # --- the admin: the closing page, the panel, the evolution page and its picture ---
    client.force_login(viewer)
    change = client.get(reverse("admin:closing_closing_change", args=[second.pk]))
    page = change.content.decode()
    assert change.status_code == 200
    assert "Medidas sistêmicas" in page or "medidas sistêmicas" in page
    assert "Assinatura do enclave: confere." in page and "(não enviado)" in page
    assert f"{first.week.code} → {second.week.code}" in page
    panel = client.get(reverse("admin:closing_closing_network", args=[second.pk]))
    assert panel.status_code == 200 and 'id="systemic"' in panel.content.decode()
    debtrank = [
        reverse("admin:closing_closing_debtrank_picture", args=[second.pk, s])
        for s in ("high", "low")
    ]
    assert all(url in panel.content.decode() for url in debtrank)
    from prudencial.risk_tools import plots

    drawn_from = []
    original_plot = plots.plot_debtrank

    def plot_debtrank(systemic, **kwargs):
        drawn_from.append(systemic)
        return original_plot(systemic, **kwargs)

    monkeypatch.setattr(plots, "plot_debtrank", plot_debtrank)
    for url in debtrank:
        drawn = client.get(url)
        assert drawn.status_code == 200 and drawn["Content-Type"] == "image/png", url
        assert drawn.content[:8] == b"\x89PNG\r\n\x1a\n"
    # Only the agent whose result was sent may be named in what the picture is drawn from.
    unsent = {a.acronym for a in market.agents} - {own.agent.acronym}
    text = json.dumps(drawn_from)
    assert len(drawn_from) == 2 and not [a for a in unsent if f'"{a}"' in text]
    missing = reverse("admin:closing_closing_debtrank_picture", args=[second.pk, "middle"])
    assert client.get(missing).status_code == 404
    Closing.objects.filter(pk=second.pk).update(systemic={**original, "n_agents": 1})
    refused = client.get(debtrank[0])  # figures that do not verify are not drawn
    assert refused.status_code == 409 and "NÃO confere" in refused.content.decode()
    Closing.objects.filter(pk=second.pk).update(systemic=original)
    evolution = client.get(reverse("admin:closing_closing_communities") + "?weeks=2")
    html = evolution.content.decode()
    assert evolution.status_code == 200 and 'id="agent-histories"' in html
    assert first.week.code in html and own.agent.acronym in html
    picture = client.get(reverse("admin:closing_closing_communities_picture") + "?weeks=2")
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"
    assert picture.content[:8] == b"\x89PNG\r\n\x1a\n"
    client.cookies["django_language"] = "en"
    english = client.get(reverse("admin:closing_closing_communities_picture") + "?weeks=2")
    assert english.status_code == 200 and english.content != picture.content
    client.cookies.pop("django_language")
    urls = [
        reverse("admin:closing_closing_communities"),
        reverse("admin:closing_closing_communities_picture"),
        debtrank[0],
    ]
    client.force_login(_staff("sem.permissao"))
    for url in urls:
        assert client.get(url).status_code == 403, url
    client.force_login(user)  # an agent's user never enters the admin
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
    client.logout()
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_the_debtrank_picture_numbers_withheld_names_and_guesses_none():
    """Withheld agents (None in the staff summary) become "(não enviado) 1", "2"… in the bars,
    per scenario, so no two share a bar, and "(não enviado)" in the cover-2 pair; shown names
    stay; the summary itself is not changed."""
    from prudencial.closing.exports import debtrank_labels

    summary = {
        "scenarios": {
            "high": {
                "debtrank": {"top": [{"agent": None, "impact": 0.3}, {"agent": "CM01", "impact": 0.2},
                                     {"agent": None, "impact": 0.1}]},
                "cover2": {"agents": [None, "CM01"], "loss": 0.4},
            },
            "low": {"debtrank": {"top": [{"agent": None, "impact": 0.05}]}, "cover2": {}},
        },
        "agents": [{"agent": "GE02"}],
    }  # fmt: skip
    out = debtrank_labels(summary, "(não enviado)")
    high = out["scenarios"]["high"]
    assert [t["agent"] for t in high["debtrank"]["top"]] == [
        "(não enviado) 1",
        "CM01",
        "(não enviado) 2",
    ]
    assert high["cover2"]["agents"] == ["(não enviado)", "CM01"]
    assert out["scenarios"]["low"]["debtrank"]["top"][0]["agent"] == "(não enviado) 1"
    assert "agents" not in out
    assert summary["scenarios"]["high"]["debtrank"]["top"][0]["agent"] is None
