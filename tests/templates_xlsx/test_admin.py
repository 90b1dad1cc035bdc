"""Staff admin of the submissions: metadata only (never the envelope), verified statuses,
filters, a batch's rows and errors, progress per week and class, the missing agents and their
exports; permissions (staff without the model permission: 403; an agent's user: nothing)."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from openpyxl import load_workbook

from prudencial.submissions import selectors as submission_selectors
from prudencial.submissions.models import Batch, Submission, Verdict
from tests.factories import PASSWORD, AgentFactory, UserFactory, grant

CANARY = "eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.CANARY-ENVELOPE-TEXT.iv.ct.tag"
LIST = "/admin/submissions/submission/"
PROGRESS = "/admin/submissions/submission/progress/"


def missing_url(week) -> str:
    return f"/admin/submissions/submission/missing/{week.code}/"


def submission(week, agent, by, *, kind="portfolio", version=1, channel="api", batch=None):
    envelope = CANARY + f".{agent.pk}.{kind}.{version}"
    return Submission.objects.create(
        week=week,
        agent=agent,
        kind=kind,
        version=version,
        channel=channel,
        submitted_by=by,
        size_bytes=len(envelope),
        receipt=hashlib.sha256(envelope.encode()).hexdigest(),
        envelope=envelope,
        batch=batch,
    )


@pytest.fixture
def market(db, week):
    sender = UserFactory(username="envia.dados")
    trader = AgentFactory(acronym="CM47")
    generator = AgentFactory(acronym="GE12", agent_class="generator")
    quiet = AgentFactory(acronym="QT01", legal_name="Quieta Energia S.A.")
    distributor = AgentFactory(acronym="DI01", agent_class="distributor")
    for agent in (trader, generator, quiet):
        grant(sender, agent)
    batch = Batch.objects.create(
        week=week,
        submitted_by=sender,
        size_bytes=len(CANARY),
        receipt=hashlib.sha256(b"batch").hexdigest(),
        envelope=CANARY + ".batch",
        status="rejected",
        errors=[{"field": "sheet PLA column 'Sigla do agente'", "row": 3, "rule": "is required"}],
        file_format="xlsx",
        processed_at=week.opens_at,
    )
    batch.agents.set([trader, generator])
    p1 = submission(week, trader, sender)
    # a row that says "accepted" without a signature that verifies: never shown as accepted
    Verdict.objects.create(submission=p1, status="accepted", source="batch")
    refused = submission(week, trader, sender, kind="counterparties")
    Verdict.objects.create(
        submission=refused,
        status="error",
        source="refusal",
        errors=[{"field": "envelope", "row": None, "rule": "does not open"}],
    )
    g1 = submission(week, generator, sender, channel="spreadsheet", batch=batch)
    return {
        "sender": sender,
        "trader": trader,
        "generator": generator,
        "quiet": quiet,
        "distributor": distributor,
        "batch": batch,
        "p1": p1,
        "refused": refused,
        "g1": g1,
    }


def staff_with(*codenames):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="submissions", codename__in=codenames)
    )
    return user


@pytest.fixture
def staff(db):
    return staff_with("view_submission", "view_batch")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def page(client, url, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, (url, response.status_code)
    text = response.content.decode()
    assert "CANARY" not in text, url  # the envelope is never shown
    return text


def test_list_shows_metadata_and_verified_status(staff_client, market):
    text = page(staff_client, LIST)
    for acronym in ("CM47", "GE12"):
        assert acronym in text
    assert "Não verificado" in text  # the unsigned "accepted" row
    results = text.split('id="result_list"')[1].split("</table>")[0]
    assert "Aceito" not in results
    assert market["p1"].receipt[:12] in text


def test_filters(staff_client, market):
    by_agent = page(staff_client, LIST, agent="ge12")
    assert "GE12" in by_agent and "CM47" not in by_agent.split("result_list")[1]
    by_class = page(staff_client, LIST, agent__agent_class__exact="generator")
    assert "CM47" not in by_class.split("result_list")[1]
    by_channel = page(staff_client, LIST, channel__exact="spreadsheet")
    assert "GE12" in by_channel.split("result_list")[1]
    assert "CM47" not in by_channel.split("result_list")[1]
    received = page(staff_client, LIST, status="received")
    assert "GE12" in received.split("result_list")[1]
    assert "CM47" not in received.split("result_list")[1]
    errors = page(staff_client, LIST, status="error")
    assert "CM47" in errors.split("result_list")[1]
    page(staff_client, LIST, week__id__exact=market["p1"].week_id)
    page(staff_client, LIST, q=market["p1"].receipt)


def test_change_view_has_no_envelope_and_cannot_change(staff_client, market):
    url = f"{LIST}{market['refused'].pk}/change/"
    text = page(staff_client, url)
    assert "does not open" in text  # the verdict's errors, by field and rule
    assert 'name="envelope"' not in text
    assert staff_client.post(url, {}).status_code == 403
    assert staff_client.get(f"{LIST}add/").status_code == 403
    assert staff_client.post(f"{LIST}{market['p1'].pk}/delete/").status_code == 403


def test_batch_rows_and_errors(staff_client, market):
    text = page(staff_client, f"/admin/submissions/batch/{market['batch'].pk}/change/")
    assert "sheet PLA column" in text and "is required" in text  # file-level error
    assert "GE12" in text and "CM47" in text  # declared agents and the row it made
    assert "Recebido" in text
    page(staff_client, "/admin/submissions/batch/")


def test_progress_per_week_and_class(staff_client, market, monkeypatch, week):
    text = page(staff_client, PROGRESS)
    assert week.code in text and "progress-by-class" in text
    # nothing verified yet: every eligible agent is missing
    rows, totals = _progress(week)
    assert totals == {"eligible": 3, "portfolio": 0, "counterparties": 0, "both": 0, "missing": 3}

    real = submission_selectors.VerdictChecker.check
    accepted = {market["p1"].pk, market["g1"].pk}

    def check(self, s):
        if s.pk in accepted:
            return submission_selectors.CheckedVerdict("accepted", True)
        return real(self, s)

    monkeypatch.setattr(submission_selectors.VerdictChecker, "check", check)
    rows, totals = _progress(week)
    assert totals == {"eligible": 3, "portfolio": 2, "counterparties": 0, "both": 0, "missing": 3}
    assert {r["agent_class"]: r["eligible"] for r in rows} == {"generator": 1, "trader": 2}
    text = page(staff_client, PROGRESS, week=week.code)
    assert 'data-class="generator"' in text


def _progress(week):
    from prudencial.submissions.admin import progress_by_class

    return progress_by_class(week)


def test_missing_page_and_exports(staff_client, market, week):
    text = page(staff_client, missing_url(week))
    assert "QT01" in text and "Quieta Energia" in text
    assert "DI01" not in text  # distributors are never eligible
    response = staff_client.get(missing_url(week), {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = response.content.decode("utf-8-sig")
    assert "CANARY" not in body
    rows = list(csv.reader(io.StringIO(body), delimiter=";"))
    assert rows[0][0] == "Sigla"
    assert [r[0] for r in rows[1:]] == ["CM47", "GE12", "QT01"]
    assert rows[3][1] == market["quiet"].cnpj_display

    response = staff_client.get(missing_url(week), {"format": "xlsx", "kind": "portfolio"})
    assert response.status_code == 200
    wb = load_workbook(io.BytesIO(response.content))
    ws = wb.active
    assert [r[0] for r in ws.iter_rows(min_row=2, values_only=True)] == ["CM47", "GE12", "QT01"]


def test_export_missing_command(market, week, tmp_path):
    target = tmp_path / "faltantes.xlsx"
    call_command("export_missing", "--week", week.code, "--format", "xlsx", "--output", str(target))
    ws = load_workbook(target).active
    assert [r[0] for r in ws.iter_rows(min_row=2, values_only=True)] == ["CM47", "GE12", "QT01"]
    csv_target = tmp_path / "faltantes.csv"
    call_command(
        "export_missing",
        "--week",
        week.code,
        "--format",
        "csv",
        "--kind",
        "counterparties",
        "--output",
        str(csv_target),
    )
    text = csv_target.read_text("utf-8-sig")
    assert "QT01" in text and "CANARY" not in text
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("export_missing", "--week", "209901001", "--format", "csv")


@pytest.mark.parametrize(
    "url",
    [
        LIST,
        PROGRESS,
        "/admin/submissions/batch/",
        "MISSING",
        "CHANGE",
        "BATCH",
    ],
)
def test_staff_without_the_model_permission_gets_403(client, market, week, url):
    url = {
        "MISSING": missing_url(week),
        "CHANGE": f"{LIST}{market['p1'].pk}/change/",
        "BATCH": f"/admin/submissions/batch/{market['batch'].pk}/change/",
    }.get(url, url)
    client.force_login(staff_with())  # staff, no submissions permission
    assert client.get(url).status_code == 403
    if url == missing_url(week):
        assert client.get(url, {"format": "csv"}).status_code == 403


@pytest.mark.parametrize("url", [LIST, PROGRESS, "/admin/submissions/batch/"])
def test_an_agent_user_gets_nothing(client, market, week, url):
    user = market["sender"]  # represents agents, not staff
    assert client.login(username=user.username, password=PASSWORD)
    for target in (url, missing_url(week) + "?format=csv"):
        response = client.get(target)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    index = client.get("/admin/")
    assert index.status_code == 302


def test_batch_permission_alone_does_not_open_submissions(client, market, week):
    client.force_login(staff_with("view_batch"))
    assert client.get("/admin/submissions/batch/").status_code == 200
    assert client.get(LIST).status_code == 403
    assert client.get(PROGRESS).status_code == 403


def test_list_queries_do_not_grow_with_the_rows(staff_client, market, week):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            page(staff_client, LIST)
        return len(ctx.captured_queries)

    before = count()
    sender = market["sender"]
    for _ in range(20):
        agent = AgentFactory()
        s = submission(week, agent, sender)
        Verdict.objects.create(submission=s, status="accepted", source="batch")
        submission(week, agent, sender, kind="counterparties", version=1)
    assert count() <= before + 2  # the envelopes are read in chunks, not one query a row


def test_what_is_no_week_or_acronym_is_a_404_or_nothing(staff_client, market):
    assert staff_client.get(PROGRESS, {"week": "2023\x0003001"}).status_code == 404
    assert staff_client.get(PROGRESS, {"week": "209901001"}).status_code == 404
    assert (
        staff_client.get("/admin/submissions/submission/missing/2023%0003001/").status_code == 404
    )
    results = page(staff_client, LIST, agent="CM\x0047").split('id="result_list"')
    assert len(results) == 1 or "CM47" not in results[1]  # no agent has a NUL in its acronym
