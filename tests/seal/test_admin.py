"""The seal's staff console: every page opens, decisions go through the services (with the
log), criteria are added and retired as new catalogue versions, publication waits."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

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
