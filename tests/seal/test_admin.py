"""The seal's staff console: every page opens, decisions go through the services (with the
log), criteria are added and retired as new catalogue versions, publication waits."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from seal.models import CatalogueVersion, Criterion, DecisionLog, EvaluationItem, Evidence
from tests.seal.conftest import PDF, decide_all, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, seal_staff):
    client.force_login(seal_staff)
    return client


def test_every_seal_admin_page_opens(staff_client, evaluation_a, agent_user, seal_staff):
    from seal import services

    evidence = services.evidence_upload(
        user=agent_user,
        evaluation_id=evaluation_a.pk,
        criterion="fs-annual",
        file_name="df.pdf",
        content=PDF,
    )
    pages = [
        "/admin/seal/criterion/",
        f"/admin/seal/criterion/{Criterion.objects.first().pk}/change/",
        "/admin/seal/criterion/add/",
        "/admin/seal/catalogueversion/",
        f"/admin/seal/catalogueversion/{CatalogueVersion.objects.get().pk}/change/",
        "/admin/seal/cycle/",
        f"/admin/seal/cycle/{evaluation_a.cycle_id}/change/",
        "/admin/seal/evaluation/",
        "/admin/seal/evaluation/?queue=all",
        "/admin/seal/evaluation/add/",
        f"/admin/seal/evaluation/{evaluation_a.pk}/change/",
        "/admin/seal/decisionlog/",
    ]
    for url in pages:
        assert staff_client.get(url).status_code == 200, url
    download = staff_client.get(f"/admin/seal/evaluation/evidence/{evidence.pk}/download/")
    assert download.status_code == 200 and download.content == PDF


def test_an_agents_user_never_enters_the_admin(client, agent_user, evaluation_a):
    client.force_login(agent_user)
    assert client.get(f"/admin/seal/evaluation/{evaluation_a.pk}/change/").status_code == 302


def _inline_post(evaluation, changes: dict[str, dict]) -> dict:
    items = list(
        EvaluationItem.objects.filter(evaluation=evaluation)
        .select_related("criterion")
        .order_by("criterion__position")
    )
    data = {
        "items-TOTAL_FORMS": len(items),
        "items-INITIAL_FORMS": len(items),
        "items-MIN_NUM_FORMS": 0,
        "items-MAX_NUM_FORMS": 1000,
        "log-TOTAL_FORMS": 0,
        "log-INITIAL_FORMS": 0,
        "log-MIN_NUM_FORMS": 0,
        "log-MAX_NUM_FORMS": 1000,
        "_save": "Salvar",
    }
    for n, item in enumerate(items):
        change = changes.get(item.criterion.code, {})
        data.update(
            {
                f"items-{n}-id": item.pk,
                f"items-{n}-evaluation": evaluation.pk,
                f"items-{n}-decision": change.get("decision", item.decision),
                f"items-{n}-units": change.get("units", item.units),
                f"items-{n}-comment": change.get("comment", item.comment),
            }
        )
    return data


def test_staff_decide_criteria_inline_through_the_service(staff_client, evaluation_a, seal_staff):
    url = f"/admin/seal/evaluation/{evaluation_a.pk}/change/"
    data = _inline_post(
        evaluation_a,
        {
            "fs-quarterly": {"decision": "achieved", "units": 2, "comment": "ITR 1T e 2T"},
            "fs-annual": {"decision": "not_evaluated"},  # refused: a mandatory measure
        },
    )
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    quarterly = EvaluationItem.objects.get(evaluation=evaluation_a, criterion__code="fs-quarterly")
    assert (quarterly.decision, quarterly.units, quarterly.decided_by) == (
        "achieved",
        2,
        seal_staff,
    )
    annual = EvaluationItem.objects.get(evaluation=evaluation_a, criterion__code="fs-annual")
    assert annual.decision == "pending"
    log = DecisionLog.objects.get(evaluation=evaluation_a, action="item_decided")
    assert log.details["criterion"] == "fs-quarterly" and log.by == seal_staff


def test_criteria_are_added_and_retired_as_catalogue_versions(staff_client, seal_staff):
    response = staff_client.post(
        "/admin/seal/criterion/add/",
        {
            "code": "esg-report",
            "line_of_action": "Governança",
            "measure": "Relatório ESG",
            "points": 2,
            "evidence_kind": "document",
            "max_units": 1,
            "exclusive_group": "",
            "derivation": "",
            "position": 16,
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert CatalogueVersion.objects.get(number=2).criteria.filter(code="esg-report").exists()
    retire = staff_client.post(
        "/admin/seal/criterion/",
        {"action": "retire", "_selected_action": [Criterion.objects.get(code="risk-area").pk]},
    )
    assert retire.status_code == 302
    assert not CatalogueVersion.objects.get(number=3).criteria.filter(code="risk-area").exists()
    assert Criterion.objects.get(code="risk-area").retired_by == seal_staff


def test_bulk_publish_waits_for_the_response_period(staff_client, evaluation_a, seal_staff):
    from seal import services

    decide_all(evaluation_a, seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="under_review", by=seal_staff)
    staff_client.post(
        "/admin/seal/evaluation/", {"action": "notify", "_selected_action": [evaluation_a.pk]}
    )
    evaluation_a.refresh_from_db()
    assert evaluation_a.state == "notified"
    page = staff_client.post(
        "/admin/seal/evaluation/?queue=all",
        {"action": "publish", "_selected_action": [evaluation_a.pk]},
        follow=True,
    )
    evaluation_a.refresh_from_db()
    assert evaluation_a.state == "notified"
    assert "prazo de resposta" in page.content.decode()


def test_open_evaluations_for_the_cycle(staff_client, cycle, agent_a, agent_b):
    staff_client.post(
        "/admin/seal/cycle/", {"action": "open_evaluations", "_selected_action": [cycle.pk]}
    )
    assert cycle.evaluations.count() == 2
    staff_client.post(
        "/admin/seal/cycle/", {"action": "open_evaluations", "_selected_action": [cycle.pk]}
    )
    assert cycle.evaluations.count() == 2  # idempotent


def test_the_levels_list_costs_the_same_queries_for_one_or_many(api_client, cycle, seal_staff):
    from seal import services
    from tests.factories import AgentFactory

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api_client.get("/api/v1/seal/levels/").status_code == 200
        return len(queries)

    published(
        services.evaluation_create(agent=AgentFactory(), cycle=cycle, by=seal_staff), seal_staff
    )
    one = count()
    for _ in range(4):
        published(
            services.evaluation_create(agent=AgentFactory(), cycle=cycle, by=seal_staff), seal_staff
        )
    assert count() == one
    assert Evidence.objects.count() == 0


# --- issue 13 review: cycle creation, traceable figures, the queue, action permissions ---------


def _notified(evaluation, by, *, now=None):
    """Decided, reviewed and notified (at ``now``: in the past, the response period is over)."""
    from seal import services

    decide_all(evaluation, by)
    services.evaluation_transition(evaluation=evaluation, to="under_review", by=by)
    services.evaluation_transition(evaluation=evaluation, to="notified", by=by, now=now)
    evaluation.refresh_from_db()
    return evaluation


@pytest.fixture
def view_only_staff(db):
    """Staff who may look at everything of the seal and change nothing."""
    from django.contrib.auth.models import Group, Permission

    from tests.factories import UserFactory

    group, _ = Group.objects.get_or_create(name="Equipe CCEE selo leitura (teste)")
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="seal", codename__startswith="view_")
    )
    user = UserFactory(username="selo.leitura", is_staff=True)
    user.groups.add(group)
    return user


def test_the_add_cycle_form_defaults_to_a_week_and_the_creation_is_recorded(
    staff_client, seal_staff
):
    from seal.models import Cycle

    form = staff_client.get("/admin/seal/cycle/add/").content.decode()
    assert 'name="response_days" value="7"' in form
    response = staff_client.post(
        "/admin/seal/cycle/add/",
        {"code": "2028", "starts_on": "2028-01-01", "ends_on": "2028-12-31"},
    )
    assert response.status_code == 302, response.content[:2000]
    cycle = Cycle.objects.get(code="2028")
    assert (cycle.response_days, cycle.created_by) == (7, seal_staff)
    log = DecisionLog.objects.get(action="cycle_created")
    assert log.by == seal_staff and log.evaluation is None
    assert log.details == {
        "cycle": "2028",
        "starts_on": "2028-01-01",
        "ends_on": "2028-12-31",
        "response_days": 7,
    }


def test_a_cycles_response_days_are_read_only_once_an_evaluation_is_notified(
    staff_client, evaluation_a, seal_staff
):
    cycle = evaluation_a.cycle
    url = f"/admin/seal/cycle/{cycle.pk}/change/"
    data = {"code": cycle.code, "starts_on": "2026-01-01", "ends_on": "2026-12-31"}
    assert 'name="response_days"' in staff_client.get(url).content.decode()
    _notified(evaluation_a, seal_staff)
    assert 'name="response_days"' not in staff_client.get(url).content.decode()
    assert staff_client.post(url, {**data, "response_days": 30}).status_code == 302
    cycle.refresh_from_db()
    assert cycle.response_days == 7


def _regularity_records(week_submissions: dict[str, int | None], channels: dict[int, str]):
    """What seal.evidence.Records gives the derivations, built by hand (no enclave here)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        weeks=[SimpleNamespace(code=code) for code in week_submissions],
        counted={
            code: {
                "portfolio": {"submission_id": pk} if pk else None,
                "counterparties": None,
            }
            for code, pk in week_submissions.items()
        },
        channels=channels,
    )


def test_the_change_page_links_each_derived_figure_to_its_records(
    staff_client, evaluation_a, seal_staff
):
    from seal import evidence, services

    records = _regularity_records({"202601001": 4242, "202601002": None}, {4242: "api"})
    decision, regular = evidence.regularity(records)
    assert decision == "not_achieved" and regular["missing"] == ["202601002"]
    regular["note"] = "<b>sem escape</b>"
    EvaluationItem.objects.filter(
        evaluation=evaluation_a, criterion__code="contracts-daily"
    ).update(derived=regular, decision="not_achieved", decision_source="platform")
    _, channel = evidence.channel_api(records)
    EvaluationItem.objects.filter(evaluation=evaluation_a, criterion__code="channel-api").update(
        derived=channel
    )
    services.evaluation_score(evaluation=evaluation_a, by=seal_staff)

    page = staff_client.get(f"/admin/seal/evaluation/{evaluation_a.pk}/change/").content.decode()

    link = reverse("admin:submissions_submission_change", args=[4242])
    assert f'<td>202601001</td><td><a href="{link}">#4242</a></td>' in page
    assert '<td>202601002</td><td><strong class="seal-missing">faltante</strong></td>' in page
    assert f'<td>api</td><td><a href="{link}">#4242</a></td><td>1</td>' in page  # channels
    assert "&lt;b&gt;sem escape&lt;/b&gt;" in page and "<b>sem escape</b>" not in page
    # The breakdown: one row per criterion, the regularity row with its record link.
    assert page.count(f'<a href="{link}">#4242</a>') >= 4
    assert "obrigatória não cumprida (-10)" in page
    assert "{&#x27;" not in page and "{'" not in page  # no raw dict shown


def _queue(client, value: str | None) -> set[str]:
    url = "/admin/seal/evaluation/" + (f"?queue={value}" if value else "")
    response = client.get(url)
    assert response.status_code == 200
    return {e.agent.acronym for e in response.context["cl"].result_list}


def test_the_queue_shows_what_is_ready_to_publish_and_what_the_agent_answered(
    staff_client, cycle, agent_a, agent_b, agent_user, other_user, seal_staff
):
    from datetime import timedelta

    from django.utils import timezone

    from seal import services
    from tests.factories import AgentFactory, UserFactory, grant

    ready = services.evaluation_create(agent=agent_a, cycle=cycle, by=seal_staff)
    _notified(ready, seal_staff, now=timezone.now() - timedelta(days=8))
    answered = _notified(
        services.evaluation_create(agent=agent_b, cycle=cycle, by=seal_staff), seal_staff
    )
    services.response_create(user=other_user, evaluation_id=answered.pk, text="Segue a DF")
    uploader_agent, early_agent = AgentFactory(acronym="AGD"), AgentFactory(acronym="AGE")
    uploader, early = UserFactory(username="up.loader"), UserFactory(username="early.bird")
    grant(uploader, uploader_agent)
    grant(early, early_agent)
    uploaded = _notified(
        services.evaluation_create(agent=uploader_agent, cycle=cycle, by=seal_staff), seal_staff
    )
    services.evidence_upload(
        user=uploader,
        evaluation_id=uploaded.pk,
        criterion="fs-annual",
        file_name="df.pdf",
        content=PDF,
    )
    waiting = services.evaluation_create(agent=early_agent, cycle=cycle, by=seal_staff)
    services.evidence_upload(  # while a draft: older than the notification, not an answer
        user=early, evaluation_id=waiting.pk, criterion="fs-annual", file_name="df.pdf", content=PDF
    )
    _notified(waiting, seal_staff)
    services.evaluation_create(agent=AgentFactory(acronym="AGF"), cycle=cycle, by=seal_staff)

    assert _queue(staff_client, "ready") == {"AGA"}
    assert _queue(staff_client, "answered") == {"AGB", "AGD"}
    assert _queue(staff_client, "review") == {"AGF"}
    assert _queue(staff_client, None) == {"AGA", "AGB", "AGD", "AGF"}  # the default queue
    assert _queue(staff_client, "all") == {"AGA", "AGB", "AGD", "AGE", "AGF"}
    page = staff_client.get("/admin/seal/evaluation/?queue=all").content.decode()
    assert "Respostas / arquivos" in page
    counts = {
        e.agent.acronym: (e.n_responses, e.n_uploads)
        for e in staff_client.get("/admin/seal/evaluation/?queue=all").context["cl"].result_list
    }
    assert counts == {
        "AGA": (0, 0),
        "AGB": (1, 0),
        "AGD": (0, 1),
        "AGE": (0, 1),
        "AGF": (0, 0),
    }
    assert '<td class="field-answers_count">1 / 0</td>' in page


def test_export_of_two_cycles_gives_one_sheet_per_cycle(
    staff_client, evaluation_a, agent_b, seal_staff
):
    import io
    from datetime import date

    from openpyxl import load_workbook

    from seal import services

    later = services.cycle_create(
        code="2027", starts_on=date(2027, 1, 1), ends_on=date(2027, 12, 31)
    )
    services.evaluation_create(agent=agent_b, cycle=later, by=seal_staff)
    response = staff_client.post(
        "/admin/seal/cycle/",
        {"action": "export_results", "_selected_action": [evaluation_a.cycle_id, later.pk]},
    )
    assert response.status_code == 200
    assert 'filename="selo_2027_2026.xlsx"' in response["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    assert workbook.sheetnames == ["Selo 2027", "Selo 2026"]
    agents = {
        name: [row[0] for row in workbook[name].iter_rows(min_row=2, values_only=True)]
        for name in workbook.sheetnames
    }
    assert agents == {"Selo 2027": ["AGB"], "Selo 2026": ["AGA"]}


STATE_CHANGING_ACTIONS = [
    ("evaluation", "derive", "evaluation_derive"),
    ("evaluation", "score", "evaluation_score"),
    ("evaluation", "move_to_review", "evaluation_transition"),
    ("evaluation", "notify", "evaluation_transition"),
    ("evaluation", "publish", "evaluation_transition"),
    ("evaluation", "compute_adherence", "adherence_compute"),
    ("cycle", "open_evaluations", "evaluation_create"),
    ("criterion", "retire", "criterion_retire"),
]


@pytest.mark.parametrize(("model", "action", "service"), STATE_CHANGING_ACTIONS)
def test_a_view_only_staff_member_runs_no_state_changing_action(
    client, monkeypatch, view_only_staff, seal_staff, evaluation_a, agent_b, model, action, service
):
    from types import SimpleNamespace

    from seal import services

    calls = []
    monkeypatch.setattr(
        services, service, lambda **kwargs: calls.append(kwargs) or SimpleNamespace(number=0)
    )
    selected = {
        "evaluation": evaluation_a.pk,
        "cycle": evaluation_a.cycle_id,
        "criterion": Criterion.objects.get(code="risk-area").pk,
    }[model]
    url = f"/admin/seal/{model}/?queue=all" if model == "evaluation" else f"/admin/seal/{model}/"
    data = {"action": action, "_selected_action": [selected]}
    logs = DecisionLog.objects.count()

    client.force_login(view_only_staff)
    assert client.get(url).status_code == 200  # they see the list
    client.post(url, data)
    assert calls == [] and DecisionLog.objects.count() == logs

    client.force_login(seal_staff)  # the same request by staff who may change: it runs
    client.post(url, data)
    assert len(calls) == 1 and calls[0]["by"] == seal_staff


def test_publishing_needs_its_own_permission(client, seal_staff, evaluation_a):
    from datetime import timedelta

    from django.contrib.auth.models import Group, Permission
    from django.utils import timezone

    from tests.factories import UserFactory

    _notified(evaluation_a, seal_staff, now=timezone.now() - timedelta(days=8))
    reviewer = UserFactory(username="selo.revisor", is_staff=True)
    group = Group.objects.create(name="Revisores do selo (teste)")
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="seal").exclude(
            codename__in=["publish_evaluation"]
        )
    )
    reviewer.groups.add(group)
    client.force_login(reviewer)
    post = {"action": "publish", "_selected_action": [evaluation_a.pk]}
    client.post("/admin/seal/evaluation/?queue=all", post)
    evaluation_a.refresh_from_db()
    assert evaluation_a.state == "notified"
    assert seal_staff.has_perm("seal.publish_evaluation")
    client.force_login(seal_staff)
    client.post("/admin/seal/evaluation/?queue=all", post)
    evaluation_a.refresh_from_db()
    assert evaluation_a.state == "published"


def test_the_staff_group_may_publish(ccee_staff):
    """setup_roles grants the seal's publication to the staff group."""
    assert ccee_staff.has_perm("seal.publish_evaluation")
    assert ccee_staff.has_perm("seal.change_evaluation")
