"""Spreadsheet import and export (prudencial/resources.py): a file is imported whole or not at
all, row errors name the row and the column, imported representations grant permissions at once,
parameters follow the same rules as in the admin, and exports read back as they were written."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import tablib
from django.urls import reverse
from import_export.formats.base_formats import CSV, XLSX

from prudencial.models import Agent, ParameterBucket, Representation, RiskParameters, Week
from prudencial.resources import (
    CORRELATION_COLUMNS,
    AgentResource,
    ParameterBucketResource,
    RepresentationResource,
)
from prudencial.selectors import agent_list
from prudencial.validators import format_cnpj
from tests.factories import (
    AgentFactory,
    UserFactory,
    correlation_matrix,
    grant,
    make_cnpj,
    today,
    week_with_parameters,
)

pytestmark = pytest.mark.django_db

AGENT_HEADERS = ["sigla", "cnpj", "razao_social", "classe", "periodicidade", "ativo"]


def run_import(resource, dataset, *, user=None, dry_run=False):
    """As the admin imports: in a transaction, rolled back when any row is invalid."""
    return resource.import_data(
        dataset,
        dry_run=dry_run,
        raise_errors=False,
        use_transactions=True,
        rollback_on_validation_errors=True,
        user=user,
    )


def agents_file(*rows) -> tablib.Dataset:
    return tablib.Dataset(*rows, headers=AGENT_HEADERS)


# --- agents -----------------------------------------------------------------------------------


def test_agents_one_bad_cnpj_names_row_and_column_and_imports_nothing():
    bad = make_cnpj(2)[:-1] + str((int(make_cnpj(2)[-1]) + 1) % 10)
    dataset = agents_file(
        ["GOOD1", format_cnpj(make_cnpj(1)), "Good One S.A.", "Comercializador", "", "sim"],
        ["BAD", bad, "Bad S.A.", "trader", "", "sim"],
        ["GOOD3", make_cnpj(3), "Good Three S.A.", "Gerador", "", "sim"],
    )

    result = run_import(AgentResource(), dataset)

    assert result.has_validation_errors()
    assert [row.number for row in result.invalid_rows] == [2]
    assert list(result.invalid_rows[0].error.message_dict) == ["cnpj"]
    assert not Agent.objects.exists()


def test_agents_good_file_is_imported_with_labels_and_masks():
    dataset = agents_file(
        ["ag1", format_cnpj(make_cnpj(1)), "Um S.A.", "Comercializador", "", "sim"],
        ["AG2", make_cnpj(2), "Dois S.A.", "distributor", "", "não"],
    )

    result = run_import(AgentResource(), dataset)

    assert not result.has_errors() and not result.has_validation_errors()
    assert dict(Agent.objects.values_list("acronym", "reporting_cadence")) == {
        "AG1": "weekly",
        "AG2": "exempt",
    }


def test_agents_admin_import_dry_run_then_confirm(client, superuser):
    client.force_login(superuser)
    content = CSV().export_data(
        agents_file(["NEW1", make_cnpj(11), "Novo S.A.", "trader", "", "sim"])
    )
    url = reverse("admin:prudencial_agent_import")
    formats = [f.__name__ if isinstance(f, type) else type(f).__name__ for f in [XLSX, CSV]]
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        url,
        {
            "resource": "0",
            "format": str(formats.index("CSV")),
            "import_file": SimpleUploadedFile("agentes.csv", content.encode()),
        },
    )
    assert response.status_code == 200
    assert "confirm_form" in response.context, response.content.decode()[:2000]
    assert not Agent.objects.exists()  # the dry run wrote nothing

    confirm = response.context["confirm_form"].initial
    response = client.post(reverse("admin:prudencial_agent_process_import"), confirm)
    assert response.status_code == 302
    assert Agent.objects.get(acronym="NEW1").cnpj == make_cnpj(11)


# --- representations --------------------------------------------------------------------------


def reps_file(*rows) -> tablib.Dataset:
    return tablib.Dataset(
        *rows, headers=["agente", "usuario", "papel", "valida_desde", "valida_ate"]
    )


def test_representations_good_file_grants_permissions_at_once(superuser, agent_a, agent_b):
    maria = UserFactory(username="maria")
    since = (today() - timedelta(days=1)).strftime("%d/%m/%Y")
    dataset = reps_file(
        ["AGA", maria.cpf, "Controla", since, ""],
        ["agb", "maria", "represents", since, ""],
    )

    result = run_import(RepresentationResource(), dataset, user=superuser)

    assert not result.has_errors() and not result.has_validation_errors()
    assert set(agent_list(user=maria)) == {agent_a, agent_b}
    assert not maria.has_perm("send_leverage_result", agent_b)
    assert maria.has_perm("send_leverage_result", agent_a)
    assert set(Representation.objects.values_list("granted_by", flat=True)) == {superuser.pk}


def test_representations_overlap_imports_nothing(superuser, agent_a, agent_b):
    maria = UserFactory(username="maria")
    grant(maria, agent_a, valid_from=date(2023, 1, 1))
    dataset = reps_file(
        ["AGB", "maria", "controls", "01/01/2023", ""],  # fine on its own
        ["AGA", "maria", "controls", "01/06/2023", ""],  # overlaps the one in force
    )

    result = run_import(RepresentationResource(), dataset, user=superuser)

    assert result.has_errors() or result.has_validation_errors()
    assert Representation.objects.count() == 1
    assert list(agent_list(user=maria)) == [agent_a]


def test_representations_unknown_user_names_the_column(superuser, agent_a):
    result = run_import(
        RepresentationResource(),
        reps_file(["AGA", "ninguem", "controls", "01/01/2023", ""]),
        user=superuser,
    )
    assert [row.number for row in result.invalid_rows] == [1]
    assert "usuario" in result.invalid_rows[0].error.message_dict
    assert not Representation.objects.exists()


# --- CCEE parameters ---------------------------------------------------------------------------


def parameters_file(week: Week, *, matrix=None, volatility=None) -> tablib.Dataset:
    """The week's sheet as exported, with the volatility of M+0 and the correlation changed."""
    dataset = ParameterBucketResource().export(
        queryset=ParameterBucket.objects.filter(parameters__week=week)
    )
    headers = list(dataset.headers)
    rows = [list(r) for r in dataset]
    vol = headers.index("volatilidade")
    if volatility is not None:
        rows[0][vol] = volatility
    if matrix is not None:
        for i, row in enumerate(rows):
            for j, column in enumerate(CORRELATION_COLUMNS):
                row[headers.index(column)] = matrix[i][j]
    return tablib.Dataset(*rows, headers=headers)


def snapshot(week: Week) -> tuple:
    parameters = RiskParameters.objects.get(week=week)
    buckets = list(ParameterBucket.objects.filter(parameters=parameters).values())
    return parameters.correlation, buckets


def test_parameters_import_updates_in_place_with_the_importing_user(superuser):
    week = week_with_parameters()
    dataset = parameters_file(week, matrix=correlation_matrix(0.5), volatility="0,25")

    result = run_import(ParameterBucketResource(), dataset, user=superuser)

    assert not result.has_errors(), [e.error for e in result.base_errors]
    assert not result.has_validation_errors()
    parameters = RiskParameters.objects.get(week=week)
    assert parameters.correlation == correlation_matrix(0.5)
    changed = ParameterBucket.history.filter(parameters_id=parameters.pk, history_type="~")
    assert list(changed.values_list("index", "volatility", "history_user")) == [
        (0, Decimal("0.250000"), superuser.pk)
    ]


@pytest.mark.parametrize("status", ["computed", "published"])
def test_parameters_of_a_frozen_week_import_nothing(superuser, status):
    week = week_with_parameters()
    dataset = parameters_file(week, volatility="0,25")
    Week.objects.filter(pk=week.pk).update(status=status)
    before = snapshot(week)

    result = run_import(ParameterBucketResource(), dataset, user=superuser)

    assert result.has_validation_errors()
    assert "semana" in result.invalid_rows[0].error.message_dict
    assert snapshot(week) == before


def test_parameters_with_a_bad_correlation_import_nothing(superuser):
    week = week_with_parameters()
    before = snapshot(week)
    matrix = correlation_matrix()
    matrix[0][1] = 0.1  # no longer symmetric
    dataset = parameters_file(week, matrix=matrix, volatility="0,25")

    result = run_import(ParameterBucketResource(), dataset, user=superuser)

    assert result.has_errors()
    assert week.code in str(result.base_errors[0].error)
    assert snapshot(week) == before


def test_parameters_negative_volatility_names_the_row_and_column(superuser):
    week = week_with_parameters()
    before = snapshot(week)

    result = run_import(ParameterBucketResource(), parameters_file(week, volatility="-1"))

    assert [row.number for row in result.invalid_rows] == [1]
    assert "volatilidade" in result.invalid_rows[0].error.message_dict
    assert snapshot(week) == before


# --- export round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [XLSX, CSV], ids=["xlsx", "csv"])
def test_agents_export_round_trip(fmt):
    AgentFactory(acronym="AGX", agent_class="generator")
    AgentFactory(acronym="AGY", agent_class="distributor", is_active=False)
    fields = ("acronym", "cnpj", "legal_name", "agent_class", "reporting_cadence", "is_active")
    before = list(Agent.objects.order_by("acronym").values(*fields))

    exported = fmt().export_data(AgentResource().export())
    Agent.objects.all().delete()
    read_back = fmt().create_dataset(exported)
    result = run_import(AgentResource(), read_back)

    assert not result.has_errors() and not result.has_validation_errors()
    assert list(Agent.objects.order_by("acronym").values(*fields)) == before


@pytest.mark.parametrize("fmt", [XLSX, CSV], ids=["xlsx", "csv"])
def test_parameters_export_round_trip_changes_nothing(fmt, superuser):
    week = week_with_parameters()
    before = snapshot(week)

    exported = fmt().export_data(ParameterBucketResource().export())
    result = run_import(ParameterBucketResource(), fmt().create_dataset(exported), user=superuser)

    assert not result.has_errors() and not result.has_validation_errors()
    assert snapshot(week) == before
    assert not ParameterBucket.history.filter(history_type="~").exists()


def test_representations_user_without_cpf_names_the_column_and_imports_nothing(
    superuser, agent_a, agent_b
):
    UserFactory(username="maria")
    UserFactory(username="sem.cpf", cpf=None)
    dataset = reps_file(
        ["AGA", "maria", "controls", "01/01/2023", ""],
        ["AGB", "sem.cpf", "controls", "01/01/2023", ""],
    )

    result = run_import(RepresentationResource(), dataset, user=superuser)

    assert [row.number for row in result.invalid_rows] == [2]
    errors = result.invalid_rows[0].error.message_dict
    assert list(errors) == ["usuario"]
    assert "não tem CPF cadastrado" in errors["usuario"][0]
    assert not Representation.objects.exists()
