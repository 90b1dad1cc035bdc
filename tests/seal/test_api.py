"""The seal over HTTP: the visibility matrix (anonymous, the agent's user, another agent's user,
staff), the public page, answers and uploads that lie about their type."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from seal import api, services
from seal.models import AdherenceResult, AgentResponse, Evidence
from tests.seal.conftest import PDF, decide_all, published

pytestmark = pytest.mark.django_db

HTML = b"<!DOCTYPE html><html><body>not a pdf</body></html>"


def detail(pk):
    return f"/api/v1/seal/evaluations/{pk}/"


@pytest.fixture
def clients(api_client, client_for, agent_user, other_user, seal_staff):
    return {
        "anonymous": api_client,
        "agent": client_for(agent_user),
        "other": client_for(other_user),
        "staff": client_for(seal_staff),
    }


@pytest.fixture
def evidence_a(evaluation_a, agent_user):
    return services.evidence_upload(
        user=agent_user,
        evaluation_id=evaluation_a.pk,
        criterion="fs-annual",
        file_name="df.pdf",
        content=PDF,
    )


# who → expected status for A's evaluation, its adherence and its evidence file
MATRIX = {
    "anonymous": 401,
    "agent": 200,
    "other": 404,
    "staff": 200,
}


@pytest.mark.parametrize("who", list(MATRIX))
def test_visibility_matrix(clients, who, evaluation_a, evaluation_b, evidence_a, seal_staff):
    published(evaluation_b, seal_staff)
    client = clients[who]
    expected = MATRIX[who]
    assert client.get(detail(evaluation_a.pk)).status_code == expected
    assert client.get(f"{detail(evaluation_a.pk)}adherence/").status_code == expected
    assert client.get(f"/api/v1/seal/evidence/{evidence_a.pk}/file/").status_code == expected
    listing = client.get("/api/v1/seal/evaluations/")
    if who == "anonymous":
        assert listing.status_code == 401
    else:
        ids = {row["id"] for row in listing.json()}
        assert (
            ids
            == {
                "agent": {evaluation_a.pk},
                "other": {evaluation_b.pk},
                "staff": {evaluation_a.pk, evaluation_b.pk},
            }[who]
        )
    # Levels are public: only published evaluations, and nothing but agent, level, cycle, date.
    levels = client.get("/api/v1/seal/levels/")
    assert levels.status_code == 200
    rows = levels.json()["results"]
    assert [(r["agent"], r["level"], r["cycle"]) for r in rows] == [("AGB", 1, "2026")]
    assert set(rows[0]) == {"agent", "agent_name", "level", "cycle", "published_at"}


def test_the_agent_sees_decisions_only_once_notified(clients, evaluation_a, seal_staff):
    decide_all(evaluation_a, seal_staff, **{"fs-annual": "achieved", "contracts-daily": "achieved"})
    services.evaluation_score(evaluation=evaluation_a, by=seal_staff)
    agent_view = clients["agent"].get(detail(evaluation_a.pk)).json()
    assert agent_view["total"] is None and agent_view["breakdown"] == {}
    assert {i["decision"] for i in agent_view["items"]} == {None}
    staff_view = clients["staff"].get(detail(evaluation_a.pk)).json()
    assert staff_view["total"] == 10 and staff_view["breakdown"]["total"] == 10
    services.evaluation_transition(evaluation=evaluation_a, to="under_review", by=seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="notified", by=seal_staff)
    agent_view = clients["agent"].get(detail(evaluation_a.pk)).json()
    assert agent_view["total"] == 10 and agent_view["level"] == 1


def test_the_public_page_lists_published_levels(client, evaluation_a, evaluation_b, seal_staff):
    published(evaluation_b, seal_staff)
    page = client.get("/selo/")
    assert page.status_code == 200
    text = page.content.decode()
    # Cells, not bare acronyms: a random CSRF token on the page once contained "AGA".
    assert "<td>AGB</td>" in text and "<td>AGA</td>" not in text and "Nível 1" in text
    # English when chosen (the msgids' English is merged by the lead: /work/briefs/i18n-seal.po).
    client.post("/i18n/setlang/", {"language": "en", "next": "/selo/"})
    english = client.get("/selo/")
    assert english.status_code == 200 and 'lang="en"' in english.content.decode()


def test_the_agent_answers_during_the_response_period(clients, evaluation_a, seal_staff):
    url = f"{detail(evaluation_a.pk)}responses/"
    assert clients["agent"].post(url, {"text": "cedo"}, format="json").status_code == 409
    decide_all(evaluation_a, seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="under_review", by=seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="notified", by=seal_staff)
    ok = clients["agent"].post(
        url, {"text": "Segue a DF anual", "criterion": "fs-annual"}, format="json"
    )
    assert ok.status_code == 201, ok.content
    assert clients["other"].post(url, {"text": "x"}, format="json").status_code == 404
    assert clients["anonymous"].post(url, {"text": "x"}, format="json").status_code == 401
    bad = clients["agent"].post(url, {"text": "x", "criterion": "nope"}, format="json")
    assert bad.status_code == 400 and "criterion" in bad.json()["error"]["fields"]
    assert [
        r["text"] for r in clients["staff"].get(detail(evaluation_a.pk)).json()["responses"]
    ] == ["Segue a DF anual"]


def upload(client, pk, name, content, criterion="fs-annual"):
    return client.post(
        f"{detail(pk)}evidence/",
        {
            "criterion": criterion,
            "file": SimpleUploadedFile(name, content, content_type="application/pdf"),
        },
        format="multipart",
    )


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        )
        z.writestr("xl/workbook.xml", b"<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (20 * 1024 * 1024))
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "content"),
    [("balanco.xlsx", PDF), ("balanco.pdf", HTML), ("dfs.xlsx", zip_bomb())],
    ids=["pdf-named-xlsx", "html-named-pdf", "zip-bomb"],
)
def test_an_upload_that_lies_about_its_type_is_refused(clients, evaluation_a, name, content):
    response = upload(clients["agent"], evaluation_a.pk, name, content)
    assert response.status_code == 415, response.content
    assert "file" in response.json()["error"]["fields"]
    assert Evidence.objects.count() == 0


def test_an_upload_is_stored_and_read_back(clients, evaluation_a, settings):
    response = upload(clients["agent"], evaluation_a.pk, "df.pdf", PDF)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["file_type"] == "pdf" and len(body["sha256"]) == 64
    got = clients["agent"].get(f"/api/v1/seal/evidence/{body['id']}/file/")
    assert (
        got.status_code == 200 and got.content == PDF and got["Content-Type"] == "application/pdf"
    )
    settings.SEAL_EVIDENCE_MAX_BYTES = 10
    assert upload(clients["agent"], evaluation_a.pk, "df.pdf", PDF).status_code == 413
    assert upload(clients["other"], evaluation_a.pk, "df.pdf", PDF).status_code == 404


def test_uploads_close_after_the_response_period(clients, evaluation_a, seal_staff):
    published(evaluation_a, seal_staff)
    assert upload(clients["agent"], evaluation_a.pk, "df.pdf", PDF).status_code == 409


def test_adherence_not_computed_yet(clients, evaluation_a):
    body = clients["agent"].get(f"{detail(evaluation_a.pk)}adherence/").json()
    assert body == {"status": None, "computed": False}
    assert AdherenceResult.objects.count() == 0


def test_admin_review_queue_and_export(client, seal_staff, evaluation_a, evaluation_b):
    client.force_login(seal_staff)
    queue = client.get("/admin/seal/evaluation/")
    assert queue.status_code == 200 and b"AGA" in queue.content
    page = client.get(f"/admin/seal/evaluation/{evaluation_a.pk}/change/")
    assert page.status_code == 200
    moved = client.post(
        "/admin/seal/evaluation/",
        {"action": "move_to_review", "_selected_action": [evaluation_a.pk, evaluation_b.pk]},
    )
    assert moved.status_code == 302
    evaluation_a.refresh_from_db()
    assert evaluation_a.state == "under_review"
    # Notifying refuses (criteria pending) and says so; nothing moves.
    client.post(
        "/admin/seal/evaluation/", {"action": "notify", "_selected_action": [evaluation_a.pk]}
    )
    evaluation_a.refresh_from_db()
    assert evaluation_a.state == "under_review"
    export = client.post(
        "/admin/seal/cycle/",
        {"action": "export_results", "_selected_action": [evaluation_a.cycle_id]},
    )
    assert export.status_code == 200
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(export.content)).active
    rows = list(sheet.values)
    assert rows[0][0] == "Agente" and {r[0] for r in rows[1:]} == {"AGA", "AGB"}


# --- the answers through their serializers (tests/seal/test_api_schema.py: the schema) ----------


def plain(data):
    """A dict answered as it was before the serializers: rendered as it is."""
    from rest_framework.renderers import JSONRenderer

    return json.loads(JSONRenderer().render(data))


def test_the_serializers_keep_every_key_and_value(
    clients, evaluation_a, evidence_a, agent_user, seal_staff
):
    decide_all(
        evaluation_a,
        seal_staff,
        **{"fs-half-yearly": "achieved", "contracts-real-time": "achieved"},
    )
    services.evaluation_score(evaluation=evaluation_a, by=seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="under_review", by=seal_staff)
    url = detail(evaluation_a.pk)
    before = clients["agent"].get(url).json()  # under review: no decisions for the agent
    evaluation_a.refresh_from_db()
    assert before == plain(api.evaluation_data(evaluation_a, agent_user, detail=True))
    assert before["breakdown"] == {} and before["items"][0]["evidence"][0]["id"] == evidence_a.pk

    services.evaluation_transition(evaluation=evaluation_a, to="notified", by=seal_staff)
    answered = clients["agent"].post(f"{url}responses/", {"text": "Segue"}, format="json")
    stored = AgentResponse.objects.get()
    assert answered.json() == plain({"id": stored.pk, "created_at": stored.created_at})
    evaluation_a.refresh_from_db()
    for who, user in (("agent", agent_user), ("staff", seal_staff)):
        body = clients[who].get(url).json()
        assert body == plain(api.evaluation_data(evaluation_a, user, detail=True)), who
        # The stored breakdown as it is, with the implied mandatory measures marked.
        assert body["breakdown"] == plain(evaluation_a.breakdown)
        rows = {r["code"]: r for r in body["breakdown"]["items"]}
        assert rows["fs-annual"]["implied_by"] == "fs-half-yearly"
        assert rows["contracts-daily"]["implied_by"] == "contracts-real-time"
        # Hand: half-yearly 10 + real time 20, both obligations met through them: 30, level 2.
        assert (body["total"], body["level"], body["breakdown"]["penalties"]) == (30, 2, 0)
        listing = clients[who].get("/api/v1/seal/evaluations/").json()
        assert listing == [plain(api.evaluation_data(evaluation_a, user, detail=False))]
        assert set(listing[0]) == {
            "id",
            "agent",
            "cycle",
            "catalogue_version",
            "state",
            "notified_at",
            "response_ends_at",
            "published_at",
            "total",
            "level",
        }


def test_an_upload_answers_the_stored_evidence(clients, evaluation_a):
    response = upload(clients["agent"], evaluation_a.pk, "df.pdf", PDF)
    stored = Evidence.objects.get()
    assert response.json() == {
        "id": stored.pk,
        "file_type": "pdf",
        "size_bytes": len(PDF),
        "sha256": stored.sha256,
    }
