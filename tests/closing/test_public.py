"""The publication (prudencial.closing.public): with no login, only the results the agents sent,
of the week's current closing, once the week is published; the CNPJ lookup says what was sent
and never a figure of an unsent result; hostile input is a 400 naming the parameter; the
throttle counts the client's address, not a header it writes."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from prudencial.closing.models import Closing, LeverageDecision, LeverageResult
from prudencial.domain.identifiers import cnpj_check_digits, format_cnpj
from prudencial.models import Week, WeekStatus
from tests.closing.admin_data import CANARY_FA, CANARY_TEXTS, make_closing
from tests.isolation import clear_cache

pytestmark = pytest.mark.django_db

LIST = "/api/v1/public/leverage/"
CORRECTED_FA = 2.25
OTHER_WEEK_FA = 3.875


@pytest.fixture(autouse=True)
def _fresh_throttle():
    clear_cache()  # this run's keys only: the throttle's counters start at zero
    yield
    clear_cache()


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def stored():
    closing, results, agents = make_closing()
    return {"closing": closing, "results": results, "agents": agents, "week": closing.week}


def publish(week) -> None:
    Week.objects.filter(pk=week.pk).update(status=WeekStatus.PUBLISHED)
    week.refresh_from_db()


def body_text(response) -> str:
    return response.content.decode("utf-8")


def fields(response) -> dict:
    """The fields a 400 names (prudencial.api.errors' envelope)."""
    return response.json()["error"]["fields"]


def assert_no_canary(response) -> None:
    text = body_text(response)
    assert not any(t in text for t in CANARY_TEXTS), text


def test_only_sent_results_of_a_published_week(client, stored):
    publish(stored["week"])
    response = client.get(LIST, {"week": stored["week"].code})
    assert response.status_code == 200
    data = response.json()
    assert data["week"] == "202303001" and data["count"] == 1
    (row,) = data["results"]
    agent = stored["agents"]["SENT"]
    assert row == {
        "acronym": "SENT",
        "legal_name": agent.legal_name,
        "cnpj": format_cnpj(agent.cnpj),
        "agent_class": "trader",
        "fa": 1.5,
    }
    assert_no_canary(response)
    text = body_text(response)
    for hidden in ("HIDDEN", "GONE", "MISSING"):
        assert hidden not in text
    # Nothing but what CCEE publishes: no network figure, no concentration, no fa_risk.
    for private in ("fa_risk", "cvar", "concentration", "0.75", "0.3"):
        assert private not in text
    assert response["Cache-Control"].startswith("public")
    assert response["ETag"]


def test_without_week_the_latest_published(client, stored):
    assert client.get(LIST).status_code == 404  # nothing published yet
    publish(stored["week"])
    response = client.get(LIST)
    assert response.status_code == 200 and response.json()["week"] == "202303001"


def test_an_unpublished_week_is_not_listed(client, stored):
    # computed, deadline 3 days ago: the closing ran, the week is not published yet
    response = client.get(LIST, {"week": stored["week"].code})
    assert response.status_code == 404
    assert_no_canary(response)
    assert "SENT" not in body_text(response)
    assert client.get(LIST, {"week": "209912001"}).status_code == 404  # unknown


def test_a_cancelled_result_leaves_the_list(client, stored):
    publish(stored["week"])
    sent = stored["results"]["SENT"]
    LeverageDecision.objects.create(
        result=sent, action="cancelled", reason="erro no portfólio", by=sent.decisions.first().by
    )
    response = client.get(LIST, {"week": stored["week"].code})
    assert response.status_code == 200 and response.json()["count"] == 0


def test_the_correction_replaces_the_superseded_closing(client, stored):
    first, week = stored["closing"], stored["week"]
    Closing.objects.filter(pk=first.pk).update(is_current=False)
    correction = Closing.objects.create(
        week=week,
        sequence=2,
        supersedes=first,
        reason="correção de parâmetros",
        state="done",
        is_current=True,
        agents_total=2,
        agents_done=2,
        network_source="counterparties",
    )
    by = stored["results"]["SENT"].decisions.first().by
    hidden_now = LeverageResult.objects.create(
        closing=correction, agent=stored["agents"]["HIDDEN"], status="computed", fa=CORRECTED_FA
    )
    LeverageDecision.objects.create(result=hidden_now, action="sent", by=by)
    LeverageResult.objects.create(  # SENT's new result is pending: its old one is gone too
        closing=correction, agent=stored["agents"]["SENT"], status="computed", fa=CANARY_FA
    )
    publish(week)
    response = client.get(LIST, {"week": week.code})
    rows = response.json()["results"]
    assert [(r["acronym"], r["fa"]) for r in rows] == [("HIDDEN", CORRECTED_FA)]
    assert_no_canary(response)
    assert "1.5" not in body_text(response)


def test_no_figure_of_another_week(client, stored):
    from tests.submissions.conftest import open_week

    other = open_week("202303002", deadline_in=timedelta(hours=1))
    closing = Closing.objects.create(
        week=other, state="done", is_current=True, network_source="counterparties"
    )
    result = LeverageResult.objects.create(
        closing=closing, agent=stored["agents"]["SENT"], status="computed", fa=OTHER_WEEK_FA
    )
    LeverageDecision.objects.create(
        result=result, action="sent", by=stored["results"]["SENT"].decisions.first().by
    )
    publish(stored["week"])
    publish(other)
    first = client.get(LIST, {"week": "202303001"}).json()
    assert [r["fa"] for r in first["results"]] == [1.5]
    second = client.get(LIST, {"week": "202303002"}).json()
    assert [r["fa"] for r in second["results"]] == [OTHER_WEEK_FA]


def test_etag_gives_304(client, stored):
    publish(stored["week"])
    first = client.get(LIST, {"week": stored["week"].code})
    again = client.get(LIST, {"week": stored["week"].code}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "week",
    ["x" * 100_000, "2023\x0003001", "２０２３０３００１", "202303001'--", "", "20230300"],
)
def test_malformed_week_is_400_naming_week(client, stored, week):
    publish(stored["week"])
    response = client.get(LIST, {"week": week})
    assert response.status_code == 400
    assert "week" in fields(response)
    assert_no_canary(response)


def test_week_given_twice_is_400(client, stored):
    publish(stored["week"])
    response = client.get(f"{LIST}?week=202303001&week=202303002")
    assert response.status_code == 400 and "week" in fields(response)


def test_pages_out_of_range(client, stored):
    publish(stored["week"])
    beyond = client.get(LIST, {"week": "202303001", "offset": 10_000})
    assert beyond.status_code == 200 and beyond.json()["results"] == []
    for params in ({"offset": 2**40}, {"limit": 0}, {"limit": "1e3"}, {"offset": "-1"}):
        response = client.get(LIST, {"week": "202303001", **params})
        assert response.status_code == 400, params
        assert set(fields(response)) & {"offset", "limit"}


def test_a_session_is_not_needed_nor_used(client, stored, staff_user):
    publish(stored["week"])
    client.force_login(staff_user)  # a signed-in staff member sees the same public list
    response = client.get(LIST, {"week": "202303001"})
    assert response.status_code == 200 and response.json()["count"] == 1
    assert_no_canary(response)


# --- the CNPJ lookup -----------------------------------------------------------------------------


def agent_url(cnpj: str) -> str:
    return f"/api/v1/public/agents/{cnpj}/"


def test_lookup_says_sent_and_shows_fa_only_once_published(client, stored):
    agent = stored["agents"]["SENT"]
    before = client.get(agent_url(agent.cnpj)).json()
    assert before["events"] == [{"week": "202303001", "published": False, "sent": True, "fa": None}]
    publish(stored["week"])
    after = client.get(agent_url(format_cnpj(agent.cnpj))).json()  # masked works too
    assert after["events"] == [{"week": "202303001", "published": True, "sent": True, "fa": 1.5}]
    assert after["acronym"] == "SENT"


@pytest.mark.parametrize("name", ["HIDDEN", "GONE", "MISSING"])
def test_lookup_never_shows_figures_of_unsent_results(client, stored, name):
    publish(stored["week"])
    response = client.get(agent_url(stored["agents"][name].cnpj))
    assert response.status_code == 200
    (event,) = response.json()["events"]
    assert event == {"week": "202303001", "published": True, "sent": False, "fa": None}
    assert_no_canary(response)
    for private in ("cvar", "alert", "case", "seal", "reason", "revisão"):
        assert private not in body_text(response)


def test_lookup_unknown_cnpj_is_404(client, stored):
    base = "112223330001"
    cnpj = base + cnpj_check_digits(base)
    assert not any(a.cnpj == cnpj for a in stored["agents"].values())
    assert client.get(agent_url(cnpj)).status_code == 404


@pytest.mark.parametrize(
    "cnpj",
    [
        "11222333000100",  # wrong check digits
        "00000000000000",  # repeated
        "1" * 5000,
        "1122233300\x0081",
        "１１２２２３３３０００１８１",
        "11.222.333/0001-8",
        "%F0%9F%92%A5",
    ],
)
def test_lookup_invalid_cnpj_is_400_naming_cnpj(client, stored, cnpj):
    response = client.get(agent_url(cnpj))
    assert response.status_code == 400
    assert "cnpj" in fields(response)


def test_lookup_throttle_counts_the_address_not_a_forged_header(client, stored):
    cnpj = stored["agents"]["SENT"].cnpj
    with override_settings(PUBLIC_LOOKUP_THROTTLE="3/minute"):
        codes = [
            client.get(agent_url(cnpj), HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
            for i in range(6)
        ]
        assert codes == [200, 200, 200, 429, 429, 429]
        # another client address is counted apart (REMOTE_ADDR is what the server saw)
        other = client.get(agent_url(cnpj), REMOTE_ADDR="203.0.113.9")
        assert other.status_code == 200


def test_lookup_throttle_counts_invalid_and_unknown_too(client, stored):
    with override_settings(PUBLIC_LOOKUP_THROTTLE="2/minute"):
        assert client.get(agent_url("11222333000100")).status_code == 400
        assert client.get(agent_url("11222333000181")).status_code in (200, 404)
        assert client.get(agent_url(stored["agents"]["SENT"].cnpj)).status_code == 429


# --- the calendar --------------------------------------------------------------------------------


def test_calendar_has_opening_deadline_and_publication(client, stored, settings):
    settings.CLOSING_PUBLICATION_DELAY_HOURS = 48
    week = stored["week"]
    response = client.get("/api/v1/public/calendar/", {"year": 2023})
    assert response.status_code == 200
    data = response.json()
    assert data["year"] == 2023
    (row,) = data["weeks"]
    assert row["week"] == "202303001"
    assert row["deadline"] == week.deadline.isoformat()
    assert row["publication"] == (week.deadline + timedelta(hours=48)).isoformat()
    assert row["opens_at"] == week.opens_at.isoformat()
    assert_no_canary(response)
    assert client.get("/api/v1/public/calendar/", {"year": 2024}).json()["weeks"] == []


def test_calendar_as_icalendar(client, stored):
    response = client.get("/api/v1/public/calendar.ics", {"year": 2023})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    text = body_text(response)
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert text.count("BEGIN:VEVENT") == 3
    assert "UID:202303001-publication@" in text
    deadline = stored["week"].deadline.astimezone(UTC)
    assert deadline.strftime("DTSTART:%Y%m%dT%H%M%SZ") in text


@pytest.mark.parametrize("year", ["abc", "1999", "2101", "20233", "２０２３", "2023\x00", ""])
def test_calendar_bad_year_is_400_naming_year(client, year):
    response = client.get("/api/v1/public/calendar/", {"year": year})
    assert response.status_code == 400 and "year" in fields(response)
    response = client.get("/api/v1/public/calendar.ics", {"year": year})
    assert response.status_code == 400


def test_the_schema_describes_the_public_operations():
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("spectacular", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    schema = json.loads(out.getvalue())
    for path in (
        "/api/v1/public/leverage/",
        "/api/v1/public/agents/{cnpj}/",
        "/api/v1/public/calendar/",
        "/api/v1/public/calendar.ics",
    ):
        operation = schema["paths"][path]["get"]
        assert operation["security"] == [], path  # no credentials, like the token endpoint
        assert operation["responses"]["400"] == {"$ref": "#/components/responses/Error400"}
        assert operation["responses"]["429"] == {"$ref": "#/components/responses/Error429"}


# --- the pages -----------------------------------------------------------------------------------


@pytest.fixture
def web():
    from django.test import Client

    return Client()


def test_the_list_page_shows_only_sent_results_with_no_login(web, stored):
    publish(stored["week"])
    response = web.get("/publicacao/", {"week": "202303001"})
    assert response.status_code == 200
    html = body_text(response)
    assert '<html lang="pt-br">' in html
    assert "Fator de alavancagem publicado" in html and "SENT" in html
    assert format_cnpj(stored["agents"]["SENT"].cnpj) in html
    for hidden in ("HIDDEN", "GONE", "MISSING"):
        assert hidden not in html
    assert_no_canary(response)


def test_the_list_page_hides_an_unpublished_week(web, stored):
    assert web.get("/publicacao/", {"week": "202303001"}).status_code == 404
    latest = web.get("/publicacao/")
    assert latest.status_code == 200 and "SENT" not in body_text(latest)
    assert_no_canary(latest)
    for week in ("x" * 10_000, "2023\x0003001", "２０２３０３００１"):
        assert web.get("/publicacao/", {"week": week}).status_code == 404


def test_the_pages_render_in_english(web, stored):
    publish(stored["week"])
    web.cookies["django_language"] = "en"
    for url in ("/publicacao/", "/publicacao/consulta/", "/publicacao/calendario/?year=2023"):
        response = web.get(url)
        assert response.status_code == 200, url
        html = body_text(response)
        assert '<html lang="en">' in html and "Electric Energy Trading Chamber" in html
        assert "Published leverage factor" in html and "Lookup by CNPJ" in html  # the nav
        assert "Fator de alavancagem publicado" not in html


def test_the_lookup_page(web, stored):
    publish(stored["week"])
    hidden = web.get("/publicacao/consulta/", {"cnpj": stored["agents"]["HIDDEN"].cnpj})
    assert hidden.status_code == 200 and "HIDDEN" in body_text(hidden)
    assert_no_canary(hidden)
    sent = web.get("/publicacao/consulta/", {"cnpj": format_cnpj(stored["agents"]["SENT"].cnpj)})
    assert "1,5000" in body_text(sent) or "1.5000" in body_text(sent)
    for bad in ("11222333000100", "1" * 5000, "1122233300\x0081"):
        response = web.get("/publicacao/consulta/", {"cnpj": bad})
        assert response.status_code == 400 and "CNPJ inválido" in body_text(response)


def test_the_calendar_page(web, stored):
    response = web.get("/publicacao/calendario/", {"year": "2023"})
    assert response.status_code == 200 and "202303001" in body_text(response)
    assert web.get("/publicacao/calendario/", {"year": "99999"}).status_code == 404


def test_the_lookup_page_shares_the_api_throttle(web, client, stored):
    cnpj = stored["agents"]["SENT"].cnpj
    with override_settings(PUBLIC_LOOKUP_THROTTLE="3/minute"):
        assert client.get(agent_url(cnpj)).status_code == 200
        pages = [
            web.get(
                "/publicacao/consulta/", {"cnpj": cnpj}, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}"
            ).status_code
            for i in range(3)
        ]
        assert pages == [200, 200, 429]
        assert client.get(agent_url(cnpj)).status_code == 429
        assert web.get("/publicacao/consulta/").status_code == 200  # the empty form is free


def test_the_list_and_the_lookup_read_in_a_few_queries(
    client, stored, django_assert_max_num_queries
):
    publish(stored["week"])
    with django_assert_max_num_queries(3):  # the week, the count, the page
        assert client.get(LIST, {"week": "202303001"}).status_code == 200
    with django_assert_max_num_queries(2):  # the agent, its events
        assert client.get(agent_url(stored["agents"]["SENT"].cnpj)).status_code == 200
