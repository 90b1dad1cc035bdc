"""The registry at market scale in the admin (issue 10 items 3 and 6): large imports run as a
Celery task with their progress on a job page, resolve foreign keys once per file and write in
bulk; the user page's representations are bounded and linked to the filtered list; the
representation search asks one subquery per table; the demo market builds past 2,730 agents;
the expiry task is bulk."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import tablib
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from import_export.formats.base_formats import CSV

from prudencial.admin.agents import AgentAdmin
from prudencial.domain.identifiers import format_cpf
from prudencial.models import Agent, AgentUserObjectPermission, Representation
from prudencial.resources import AgentResource, RepresentationResource
from prudencial.services.representations import expire_representations
from tests.factories import AgentFactory, UserFactory, grant, make_cnpj, today

pytestmark = pytest.mark.django_db

AGENT_HEADERS = ["sigla", "cnpj", "razao_social", "classe", "periodicidade", "ativo"]


def agents_csv(n: int, *, bad_row: int | None = None) -> bytes:
    rows = []
    for i in range(n):
        cnpj = make_cnpj(500 + i)
        if i + 1 == bad_row:
            cnpj = cnpj[:-1] + str((int(cnpj[-1]) + 1) % 10)
        rows.append([f"imp{i}", cnpj, f"Importada {i} S.A.", "trader", "", "sim"])
    return CSV().export_data(tablib.Dataset(*rows, headers=AGENT_HEADERS)).encode()


def upload(client, content: bytes):
    return client.post(
        reverse("admin:prudencial_agent_import"),
        {"resource": "0", "format": "1", "import_file": SimpleUploadedFile("a.csv", content)},
    )


def test_a_large_import_runs_in_a_task_with_progress_then_confirm(
    client, superuser, eager, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(AgentAdmin, "background_import_rows", 5)
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, agents_csv(12))
    assert response.status_code == 302 and "/import/job/" in response["Location"]
    assert not Agent.objects.exists()  # the preview wrote nothing

    page = client.get(response["Location"])
    assert page.context["job"]["state"] == "done" and page.context["job"]["totals"] == {"new": 12}
    assert page.context["can_confirm"]
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(page.context["confirm_url"])
    assert confirmed.status_code == 302
    done = client.get(confirmed["Location"])
    assert done.context["job"]["phase"] == "import" and done.context["job"]["state"] == "done"
    assert Agent.objects.count() == 12
    record = Agent.history.get(acronym="IMP3")
    assert record.history_user == superuser

    # Another staff member cannot read the job.
    other = UserFactory(username="outra.equipe", is_staff=True, is_superuser=True)
    client.force_login(other)
    assert client.get(response["Location"]).status_code == 403


def test_a_large_import_with_a_bad_row_shows_it_and_writes_nothing(
    client, superuser, eager, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(AgentAdmin, "background_import_rows", 5)
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, agents_csv(12, bad_row=7))
    page = client.get(response["Location"])
    job = page.context["job"]
    assert [number for number, _ in job["errors"]] == [7]
    assert "cnpj" in job["errors"][0][1][0]
    assert not page.context["can_confirm"]
    assert client.post(page.context["confirm_url"]).status_code == 302
    assert not Agent.objects.exists()


def test_small_files_keep_the_librarys_pages(client, superuser):
    client.force_login(superuser)
    response = upload(client, agents_csv(3))
    assert response.status_code == 200 and "confirm_form" in response.context


def test_imports_cost_a_bounded_number_of_queries(superuser, django_assert_max_num_queries):
    dataset = tablib.Dataset(*[[f"Q{i}", make_cnpj(700 + i), f"Q {i} S.A.", "trader", "", "sim"]
                               for i in range(300)], headers=AGENT_HEADERS)  # fmt: skip
    with django_assert_max_num_queries(25):
        result = AgentResource().import_data(
            dataset, dry_run=False, raise_errors=False, use_transactions=True,
            rollback_on_validation_errors=True, user=superuser,
        )  # fmt: skip
    assert not result.has_errors() and not result.has_validation_errors()
    assert Agent.objects.count() == 300 and Agent.history.count() == 300

    person = UserFactory(username="consultora")
    since = (today() - timedelta(days=3)).strftime("%d/%m/%Y")
    reps = tablib.Dataset(*[[f"Q{i}", person.cpf, "represents", since, ""] for i in range(300)],
                          headers=["agente", "usuario", "papel", "valida_desde", "valida_ate"])  # fmt: skip
    with django_assert_max_num_queries(30):
        result = RepresentationResource().import_data(
            reps, dry_run=False, raise_errors=False, use_transactions=True,
            rollback_on_validation_errors=True, user=superuser,
        )  # fmt: skip
    assert not result.has_errors() and not result.has_validation_errors()
    assert AgentUserObjectPermission.objects.filter(user=person).count() == 600
    assert set(Representation.objects.values_list("granted_by", flat=True)) == {superuser.pk}


# --- item 6 -----------------------------------------------------------------------------------


def test_user_page_of_a_firm_is_bounded_and_links_the_filtered_list(
    client, superuser, django_assert_max_num_queries
):
    firm = UserFactory(username="representante.firma")
    for agent in [AgentFactory() for _ in range(60)]:
        grant(firm, agent)
    client.force_login(superuser)
    url = reverse("admin:prudencial_user_change", args=[firm.pk])
    with django_assert_max_num_queries(20):
        page = client.get(url)
    assert page.status_code == 200
    formset = next(f for f in page.context["inline_admin_formsets"])
    assert len(list(formset)) == 20
    link = reverse("admin:prudencial_representation_changelist") + f"?user__id__exact={firm.pk}"
    assert link in page.content.decode() and "60 representações" in page.content.decode()
    listed = client.get(link)
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 60


def test_representation_search_is_one_subquery_per_table(client, superuser):
    ana = UserFactory(username="ana.lima", first_name="Ana", last_name="Lima")
    bruno = UserFactory(username="bruno.costa", first_name="Bruno", last_name="Costa")
    solar = AgentFactory(acronym="SOLAR1", legal_name="Solar Geração S.A.")
    vento = AgentFactory(acronym="VENTO1", legal_name="Ventos do Sul Ltda.")
    grant(ana, solar)
    grant(bruno, vento)
    client.force_login(superuser)
    url = reverse("admin:prudencial_representation_changelist")
    for term, expected in [("solar", {solar}), ("costa", {vento}), ("ana sol", {solar}),
                           (format_cpf(ana.cpf), {solar}), ("ninguém", set())]:  # fmt: skip
        page = client.get(url, {"q": term})
        assert {r.agent for r in page.context["cl"].result_list} == expected, term
    sql = str(page.context["cl"].queryset.query)
    assert sql.count("SELECT") >= 3 and "DISTINCT" not in sql
    assert page.context["cl"].model_admin.show_full_result_count is False


def test_demo_market_builds_past_the_acronym_limit():
    call_command("load_demo_market", agents=3000, verbosity=0, stdout=io.StringIO())
    assert Agent.objects.count() == 3000
    assert Agent.objects.values("acronym").distinct().count() == 3000
    assert Agent.objects.filter(acronym__startswith="CL").count() > 999
    assert Representation.objects.count() > 6000
    assert AgentUserObjectPermission.objects.exists()


def test_expiry_is_bulk(django_assert_max_num_queries):
    people = [UserFactory() for _ in range(3)]
    agents = [AgentFactory() for _ in range(30)]
    last_day = today() + timedelta(days=2)
    for i, agent in enumerate(agents):
        grant(people[i % 3], agent, valid_until=last_day)
    with django_assert_max_num_queries(12):
        assert expire_representations(today=last_day + timedelta(days=1)) == 30
    assert not AgentUserObjectPermission.objects.exists()
