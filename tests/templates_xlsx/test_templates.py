"""GET /api/v1/weeks/{code}/templates/{portfolio,counterparties}.xlsx.

The decisive test fills a downloaded template the way a person would (pt-BR labels, numbers in
cells), parses it with the parser the enclave runs (``enclave_bridge.enclave.xlsx``), and
compares the canonical JSON with the payload an agent would post through the API: byte for byte.
"""

from __future__ import annotations

import io
from datetime import date

import pytest
from django.test import override_settings
from openpyxl import load_workbook

from enclave_bridge.enclave import xlsx as enclave_xlsx
from prudencial.domain import formats, sheets
from prudencial.submissions import templates_xlsx
from tests.factories import AgentFactory, UserFactory, grant, make_cnpj

MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def url(week, kind: str) -> str:
    return f"/api/v1/weeks/{week.code}/templates/{kind}.xlsx"


def labels_of(week) -> tuple[str, ...]:
    return sheets.bucket_labels(week.parameters.first_month)


def download(client, week, kind: str, **query) -> bytes:
    response = client.get(url(week, kind), query)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == MIME
    assert f"{week.code}_{kind}.xlsx" in response["Content-Disposition"]
    return b"".join(response.streaming_content)


def header_index(ws) -> dict[str, int]:
    return {cell.value: cell.column for cell in ws[1]}


def append_row(ws, values: dict[str, object]) -> None:
    """Write a data row under the last used one, by header (as a person would)."""
    columns = header_index(ws)
    row = ws.max_row + 1
    for header, value in values.items():
        ws.cell(row=row, column=columns[header], value=value)


def pla_row(ws, acronym: str) -> int:
    for row in range(2, ws.max_row + 1):
        if ws.cell(row=row, column=1).value == acronym:
            return row
    raise AssertionError(f"{acronym} has no PLA row")


# --- what the API would receive ------------------------------------------------------------------


def portfolio_payload(week, agent) -> dict:
    return {
        "schema": formats.PORTFOLIO_SCHEMA_ID,
        "agent": {"acronym": agent.acronym, "cnpj": agent.cnpj},
        "week": week.code,
        "contracts": [
            {
                "bucket": 0,
                "side": "purchase",
                "contract_type": "fixed_price",
                "energy_type": "conventional",
                "submarket": "SE",
                "volume_mwm": 10,
                "amount_brl": 1116000,
            },
            {
                "bucket": 0,
                "side": "sale",
                "contract_type": "variable_price",
                "energy_type": "incentivized_50",
                "submarket": "NE",
                "volume_mwm": 2.5,
                "amount_brl": 250000.75,
            },
            {
                "bucket": 6,
                "side": "purchase",
                "contract_type": "derivative",
                "energy_type": "incentivized_100",
                "submarket": "S",
                "volume_mwm": 0,
                "amount_brl": 0,
            },
        ],
        "forecasts": [
            {
                "bucket": 1,
                "submarket": "SE",
                "energy_type": "conventional",
                "generation_mwm": 3.25,
                "consumption_mwm": 5,
            },
            {
                "bucket": 2,
                "submarket": "N",
                "energy_type": "qualified_cogeneration",
                "generation_mwm": 0,
                "consumption_mwm": 1.5,
            },
        ],
        "equity": {
            "equity_brl": 12000000,
            "goodwill_net_of_deferred_tax_brl": 500000,
            "intangibles_brl": 300000.5,
            "sector_stakes_brl": 1000000,
            "financial_stakes_brl": 0,
            "tax_credits_brl": 200000,
        },
        "regulated_market_revenue_brl": 42.0,
    }


def counterparties_payload(week, agent, registered) -> dict:
    return {
        "schema": formats.COUNTERPARTIES_SCHEMA_ID,
        "agent": {"acronym": agent.acronym, "cnpj": agent.cnpj},
        "week": week.code,
        "counterparties": [
            {
                "rank": 1,
                "cnpj": registered.cnpj,
                "acronym": registered.acronym,
                "mtm_m0_brl": 400000,
                "mtm_m1_brl": 350000,
                "mtm_m2_brl": 300000,
                "mitigation_brl": 200000,
                "mitigants": "Fiança bancária de R$ 200 mil",
                "volume_mwm": [5, -2.5, 0],
            },
            {
                "rank": 2,
                "cnpj": make_cnpj(9999),
                "acronym": None,
                "mtm_m0_brl": -10000.5,
                "mtm_m1_brl": 20000,
                "mtm_m2_brl": 30000,
                "mitigation_brl": 0,
                "mitigants": "",
            },
        ],
    }


# --- filling the template like a person ------------------------------------------------------------


def fill_portfolio(data: bytes, week, agent) -> bytes:
    m = labels_of(week)
    wb = load_workbook(io.BytesIO(data))
    rows = [
        (m[0], "Compra", "Preço fixo", "Convencional", "SE/CO", 10, 1116000),
        (m[0], "Venda", "Preço variável", "Incentivada 50%", "NE", 2.5, 250000.75),
        (m[6], "Compra", "Derivativo", "Incentivada 100%", "S", 0, 0),
    ]
    for month, side, ctype, etype, sub, volume, amount in rows:
        append_row(
            wb["Contratos"],
            {
                "Sigla do agente": agent.acronym,
                "Mês": month,
                "Operação": side,
                "Tipo de contrato": ctype,
                "Tipo de energia": etype,
                "Submercado": sub,
                "Volume (MWm)": volume,
                "Valor (R$)": amount,
            },
        )
    for month, sub, etype, gen, con in (
        (m[1], "SE/CO", "Convencional", 3.25, 5),
        (m[2], "N", "Cogeração qualificada", 0, 1.5),
    ):
        append_row(
            wb["Previsões"],
            {
                "Sigla do agente": agent.acronym,
                "Mês": month,
                "Submercado": sub,
                "Tipo de energia": etype,
                "Geração (MWm)": gen,
                "Consumo (MWm)": con,
            },
        )
    ws = wb["PLA"]
    row = pla_row(ws, agent.acronym)
    cols = header_index(ws)
    for header, value in {
        "Patrimônio líquido (R$)": 12000000,
        "Ágio líquido de impostos diferidos (R$)": 500000,
        "Ativos intangíveis (R$)": 300000.5,
        "Participações em empresas do setor monitoradas (R$)": 1000000,
        "Participações em entidades financeiras supervisionadas (R$)": 0,
        "Créditos tributários (R$)": 200000,
        "Receita do mercado regulado (R$)": 42,
    }.items():
        ws.cell(row=row, column=cols[header], value=value)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def fill_counterparties(data: bytes, agent, registered) -> bytes:
    wb = load_workbook(io.BytesIO(data))
    ws = wb["Contrapartes"]
    append_row(
        ws,
        {
            "Sigla do agente": agent.acronym,
            "Posição": 1,
            "CNPJ": registered.cnpj_display,
            "Sigla": registered.acronym,
            "MtM M0 (R$)": 400000,
            "MtM M1 (R$)": 350000,
            "MtM M2 (R$)": 300000,
            "Valor mitigado (R$)": 200000,
            "Mitigadores": "Fiança bancária de R$ 200 mil",
            "Volume M0 (MWm)": 5,
            "Volume M1 (MWm)": -2.5,
            "Volume M2 (MWm)": 0,
        },
    )
    append_row(
        ws,
        {
            "Sigla do agente": agent.acronym,
            "Posição": 2,
            "CNPJ": make_cnpj(9999),
            "MtM M0 (R$)": -10000.5,
            "MtM M1 (R$)": 20000,
            "MtM M2 (R$)": 30000,
            "Valor mitigado (R$)": 0,
        },
    )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def parse(data: bytes, kind: str, week, agent):
    """The enclave's own parser, with the arguments the host ships to it."""
    return enclave_xlsx.parse_workbook(
        data,
        kind,
        agent={"acronym": agent.acronym, "cnpj": agent.cnpj},
        week=week.code,
        bucket_labels=labels_of(week),
        energy_types=week.parameters.energy_types,
    )


# --- tests ----------------------------------------------------------------------------------------


def test_filled_portfolio_parses_to_the_api_json_byte_for_byte(
    client_for, agent_user, agent_a, week
):
    data = download(client_for(agent_user), week, "portfolio")
    parsed = parse(fill_portfolio(data, week, agent_a), "portfolio", week, agent_a)
    assert parsed.errors == []
    api = portfolio_payload(week, agent_a)
    assert formats.canonical_json(parsed.payload) == formats.canonical_json(
        formats.normalize("portfolio", api)
    )
    agent = {"acronym": agent_a.acronym, "cnpj": agent_a.cnpj}
    assert formats.validate("portfolio", api, agent=agent, week=week.code) == []
    assert (
        formats.validate("portfolio", parsed.payload, agent=agent, week=week.code, rows=parsed.rows)
        == []
    )


def test_filled_counterparties_parse_to_the_api_json_byte_for_byte(
    client_for, agent_user, agent_a, agent_b, week
):
    data = download(client_for(agent_user), week, "counterparties")
    parsed = parse(fill_counterparties(data, agent_a, agent_b), "counterparties", week, agent_a)
    assert parsed.errors == []
    api = counterparties_payload(week, agent_a, agent_b)
    assert formats.canonical_json(parsed.payload) == formats.canonical_json(
        formats.normalize("counterparties", api)
    )
    registry = {agent_a.cnpj: agent_a.acronym, agent_b.cnpj: agent_b.acronym}
    agent = {"acronym": agent_a.acronym, "cnpj": agent_a.cnpj}
    assert (
        formats.validate("counterparties", api, agent=agent, week=week.code, registry=registry)
        == []
    )


def test_blank_template_parses_as_the_enclave_expects(client_for, agent_user, agent_a, week):
    """Downloaded and sent unfilled: no rows for the agent, refused by the enclave's parser with
    a rule, never a crash (the template's extra sheets and protection are accepted)."""
    data = download(client_for(agent_user), week, "portfolio")
    enclave_xlsx.check_archive(data)
    parsed = parse(data, "portfolio", week, agent_a)
    assert parsed.payload == {} or parsed.errors


def test_layout_validation_and_locks(client_for, agent_user, agent_a, week_two_types):
    week = week_two_types
    wb = load_workbook(io.BytesIO(download(client_for(agent_user), week, "portfolio")))
    assert wb.sheetnames == ["Instruções", "Contratos", "Previsões", "PLA", "Listas"]
    assert wb["Listas"].sheet_state == "hidden"
    lists = {
        col[0].value: [c.value for c in col if c.value is not None]
        for col in wb["Listas"].iter_cols()
    }
    assert labels_of(week)[0] in lists[labels_of(week)[0]]
    assert any(v == ["Convencional", "Incentivada 50%"] for v in lists.values())
    first = week.parameters.first_month  # the labels come from RiskParameters.first_month
    assert lists[labels_of(week)[0]] == list(sheets.bucket_labels(first))
    assert labels_of(week)[0] == f"{sheets.month_label(first)}"

    for name in ("Contratos", "Previsões", "PLA"):
        ws = wb[name]
        assert ws.protection.sheet
        assert [c.value for c in ws[1]] == [h for _, h in sheets.COLUMNS[name]]
        assert all(c.protection.locked for c in ws[1])
        # empty data cells take their column's style: unlocked
        for index in range(1, len(sheets.COLUMNS[name]) + 1):
            letter = ws.cell(row=1, column=index).column_letter
            assert ws.column_dimensions[letter].protection.locked is False
        assert ws.freeze_panes == "A2"

    contracts = wb["Contratos"]
    by_column = {}
    for dv in contracts.data_validations.dataValidation:
        for rng in dv.sqref.ranges:
            by_column[rng.min_col] = dv
    month, side, _, energy, submarket, volume, amount = (by_column[i] for i in range(2, 9))
    assert month.type == side.type == energy.type == submarket.type == "list"
    assert month.formula1 == "'Listas'!$A$1:$A$7"
    assert energy.formula1 == "'Listas'!$D$1:$D$2"
    assert volume.type == amount.type == "decimal" and volume.formula1 == "0"
    assert by_column[1].formula1 == "'PLA'!$A$2:$A$2"  # the agents' acronyms
    assert all(dv.showErrorMessage for dv in by_column.values())

    pla = wb["PLA"]
    assert [pla.cell(row=2, column=c).value for c in (1, 2)] == [agent_a.acronym, agent_a.cnpj]
    assert pla.cell(row=2, column=1).protection.locked
    assert pla.cell(row=2, column=2).protection.locked

    text = "\n".join(str(r[0].value or "") for r in wb["Instruções"].iter_rows())
    deadline = week.deadline.astimezone(templates_xlsx.BRASILIA).strftime("%d/%m/%Y %H:%M")
    assert f"até {deadline} (horário de Brasília)" in text
    assert "MWm" in text and "R$" in text and "Incentivada 50%" in text
    assert "Patrimônio líquido (R$)" in text


def test_counterparties_template_layout(client_for, agent_user, week):
    wb = load_workbook(io.BytesIO(download(client_for(agent_user), week, "counterparties")))
    assert wb.sheetnames == ["Instruções", "Contrapartes", "PLA", "Listas"]
    ws = wb["Contrapartes"]
    types = {next(iter(dv.sqref.ranges)).min_col: dv for dv in ws.data_validations.dataValidation}
    assert types[2].type == "whole" and (types[2].formula1, types[2].formula2) == ("1", "5")
    assert types[5].type == "decimal" and types[5].formula1.startswith("-")  # MtM may be < 0
    assert types[8].formula1 == "0"  # mitigation ≥ 0
    assert types[9].type == "textLength"


def test_only_the_agents_the_user_may_submit_for(client_for, week):
    mine, other, viewer_only = (AgentFactory() for _ in range(3))
    inactive = AgentFactory(is_active=False)
    distributor = AgentFactory(agent_class="distributor")
    user = UserFactory()
    for agent in (mine, inactive, distributor):
        grant(user, agent)
    grant(user, viewer_only, role="represents")  # represents: view + submit
    client = client_for(user)
    wb = load_workbook(io.BytesIO(download(client, week, "portfolio")))
    listed = [r[0].value for r in wb["PLA"].iter_rows(min_row=2)]
    assert listed == sorted([mine.acronym, viewer_only.acronym])
    assert other.acronym not in listed

    chosen = load_workbook(io.BytesIO(download(client, week, "portfolio", agent=[mine.pk])))
    assert [r[0].value for r in chosen["PLA"].iter_rows(min_row=2)] == [mine.acronym]
    # an agent the user may not submit for: 404, as if it did not exist
    assert client.get(url(week, "portfolio"), {"agent": [mine.pk, other.pk]}).status_code == 404
    assert client.get(url(week, "portfolio"), {"agent": "x"}).status_code == 400


def test_errors(api_client, client_for, agent_user, db):
    from tests.factories import WeekFactory

    bare = WeekFactory()  # no parameters yet
    client = client_for(agent_user)
    assert api_client.get(f"/api/v1/weeks/{bare.code}/templates/portfolio.xlsx").status_code == 401
    assert client.get("/api/v1/weeks/209901001/templates/portfolio.xlsx").status_code == 404
    response = client.get(f"/api/v1/weeks/{bare.code}/templates/portfolio.xlsx")
    assert response.status_code == 409
    assert bare.code in response.json()["error"]["message"]
    assert client.get(f"/api/v1/weeks/{bare.code}/templates/other.xlsx").status_code == 404


@override_settings(PRUDENCIAL_TEMPLATE_MAX_AGENTS=2)
def test_more_agents_than_a_file_covers_is_refused_with_the_limit(client_for, week):
    user = UserFactory()
    agents = [AgentFactory() for _ in range(3)]
    for agent in agents:
        grant(user, agent)
    client = client_for(user)
    response = client.get(url(week, "portfolio"))
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "3" in message and "2" in message and "agent=" in message
    assert download(client, week, "portfolio", agent=[a.pk for a in agents[:2]])


def test_large_template_streams_within_bounds():
    """20,000 agents are refused (documented limit); the limit itself is written in write-only
    mode, quickly and small."""
    import time
    from datetime import UTC, datetime

    week = templates_xlsx.TemplateWeek(
        code="202303001",
        deadline=datetime(2023, 3, 8, 23, tzinfo=UTC),
        bucket_labels=sheets.bucket_labels(date(2023, 3, 1)),
        energy_types=formats.DEFAULT_ENERGY_TYPES,
    )
    many = [{"acronym": f"AG{i:05d}", "cnpj": make_cnpj(i)} for i in range(20_000)]
    with pytest.raises(templates_xlsx.TooManyAgents) as refused:
        templates_xlsx.write_template("portfolio", week=week, agents=many, out=io.BytesIO())
    assert (refused.value.count, refused.value.limit) == (20_000, templates_xlsx.max_agents())

    out = io.BytesIO()
    started = time.perf_counter()
    templates_xlsx.write_template(
        "portfolio", week=week, agents=many[: templates_xlsx.max_agents()], out=out
    )
    assert time.perf_counter() - started < 10
    assert len(out.getvalue()) < 1_000_000
    wb = load_workbook(io.BytesIO(out.getvalue()), read_only=True)
    assert sum(1 for _ in wb["PLA"].iter_rows(min_row=2)) == templates_xlsx.max_agents()


def test_one_template_for_many_agents_splits_as_the_api_json(client_for, agent_a, agent_b, week):
    """The batch path: one workbook filled for two agents, split by the enclave's XLSX reader
    (``split._from_xlsx``, batch limits), gives each agent the API's JSON, byte for byte."""
    from enclave_bridge.enclave import split

    user = UserFactory()
    grant(user, agent_a)
    grant(user, agent_b)
    data = download(client_for(user), week, "portfolio")
    filled = fill_portfolio(fill_portfolio(data, week, agent_a), week, agent_b)
    agents = [{"acronym": a.acronym, "cnpj": a.cnpj} for a in (agent_a, agent_b)]
    found, errors, extra = split._from_xlsx(
        filled, week.code, agents, labels_of(week), week.parameters.energy_types
    )
    assert errors == [] and extra["agent_errors"] == {}
    assert sorted(found) == [agent_a.acronym, agent_b.acronym]
    for agent in (agent_a, agent_b):
        assert found[agent.acronym]["counterparties"] is None
        assert formats.canonical_json(found[agent.acronym]["portfolio"]) == formats.canonical_json(
            formats.normalize("portfolio", portfolio_payload(week, agent))
        )


def test_the_largest_template_is_within_the_enclave_batch_bounds():
    from datetime import UTC, datetime

    week = templates_xlsx.TemplateWeek(
        code="202303001",
        deadline=datetime(2023, 3, 8, 23, tzinfo=UTC),
        bucket_labels=sheets.bucket_labels(date(2023, 3, 1)),
        energy_types=formats.DEFAULT_ENERGY_TYPES,
    )
    agents = [
        {"acronym": f"AG{i:05d}", "cnpj": make_cnpj(i)} for i in range(templates_xlsx.max_agents())
    ]
    for kind in formats.KINDS:
        out = io.BytesIO()
        templates_xlsx.write_template(kind, week=week, agents=agents, out=out)
        grid = enclave_xlsx.read_cells(out.getvalue(), enclave_xlsx.BATCH)
        assert len(grid["PLA"]) == 1 + len(agents)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/weeks/2023%0003001/templates/portfolio.xlsx",
        "/api/v1/weeks/not-a-week/templates/counterparties.xlsx",
        "/api/v1/schemas/portfolio.json?week=2023%0003001",
        "/api/v1/schemas/counterparties.json?week=x",
    ],
)
def test_what_is_no_week_code_is_a_404(client_for, agent_user, path):
    assert client_for(agent_user).get(path).status_code == 404
