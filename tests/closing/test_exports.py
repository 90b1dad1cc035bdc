"""The week's figures as CSV and XLSX for staff (prudencial.closing.exports): every agent of
the closing with its status and decision; figures only of the results the agent sent; no cell
a spreadsheet would run as a formula; the bands of the week named; the pictures are PNG."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from prudencial.closing import exports
from tests.closing.admin_data import CANARY_FA, CANARY_TEXTS, make_closing

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored():
    closing, results, agents = make_closing()
    return {"closing": closing, "results": results, "agents": agents}


@pytest.fixture
def staff(staff_user):
    return staff_user


def _csv(closing, user) -> list[list[str]]:
    data = exports.export(closing=closing, user=user, file_format="csv")
    assert data.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))


def test_csv_has_every_agent_and_sent_figures_only(stored, staff):
    rows = _csv(stored["closing"], staff)
    header, body = rows[0], rows[1:]
    assert header[:2] == ["Sigla", "CNPJ"] and "FA" in header
    by_acronym = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    assert set(by_acronym) == {"GONE", "HIDDEN", "MISSING", "SENT"}
    assert by_acronym["SENT"]["FA"] == "1,500000"
    assert by_acronym["SENT"]["Posição na rede"] == "1 de 2"
    assert "FA na faixa alert" in by_acronym["SENT"]["Faixas e limites"]
    for hidden in ("HIDDEN", "GONE", "MISSING"):
        assert by_acronym[hidden]["FA"] == "" and by_acronym[hidden]["CVaR propagado"] == ""
    assert by_acronym["HIDDEN"]["Decisão do agente"].startswith("pendente")
    assert by_acronym["GONE"]["Decisão do agente"].startswith("cancelado")
    text = "\n".join(";".join(r) for r in rows)
    assert not any(t in text for t in CANARY_TEXTS)


def test_xlsx_numbers_are_numbers_and_unsent_cells_are_empty(stored, staff):
    data = exports.export(closing=stored["closing"], user=staff, file_format="xlsx")
    book = load_workbook(io.BytesIO(data))
    sheet = book["Resultados 202303001"]
    values = list(sheet.iter_rows(values_only=True))
    header = values[0]
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in values[1:]}
    assert rows["SENT"]["FA"] == pytest.approx(1.5)
    assert rows["HIDDEN"]["FA"] in (None, "")
    flat = [c for r in values for c in r]
    assert CANARY_FA not in flat and not any(
        isinstance(c, str) and any(t in c for t in CANARY_TEXTS) for c in flat
    )
    notes = [r[0] for r in book["Notas"].iter_rows(values_only=True)]
    assert any("202303001" in n for n in notes)
    assert any("só depois que o agente o envia" in n for n in notes)


def test_no_cell_is_a_formula(stored, staff):
    from prudencial.models import Agent

    agent = stored["agents"]["SENT"]
    Agent.objects.filter(pk=agent.pk).update(legal_name='=HYPERLINK("http://x","y")')
    rows = _csv(stored["closing"], staff)
    assert any(r[2].startswith("'=HYPERLINK") for r in rows[1:])
    data = exports.export(closing=stored["closing"], user=staff, file_format="xlsx")
    sheet = load_workbook(io.BytesIO(data))["Resultados 202303001"]
    cell = next(c for c in sheet["C"] if isinstance(c.value, str) and "HYPERLINK" in c.value)
    assert cell.data_type == "s"


def test_pictures_follow_the_language(stored):
    pt = exports.network_png(stored["closing"], kind="ranking", lang="pt")
    en = exports.network_png(stored["closing"], kind="ranking", lang="en")
    assert pt != en  # the titles and the number format differ


def test_an_unknown_format_is_refused(stored, staff):
    with pytest.raises(ValueError):
        exports.export(closing=stored["closing"], user=staff, file_format="pdf")


def test_the_band_rule_is_the_weeks(stored, staff):
    """A week whose alert band starts at 2.0: SENT (1.5) is within it."""
    from prudencial.models import RiskParameters

    week = stored["closing"].week
    parameters = RiskParameters.objects.filter(week=week).first()
    if parameters is None:
        pytest.skip("the test week has no parameters row")
    RiskParameters.objects.filter(pk=parameters.pk).update(
        fa_bands=[{"code": "alert", "from": 2.0}], fa_alert_threshold=2.0
    )
    week.refresh_from_db()
    rows = _csv(stored["closing"], staff)
    sent = next(r for r in rows[1:] if r[0] == "SENT")
    assert sent[-1] == ""


def test_pictures_are_png_in_both_languages(stored):
    for kind in exports.PICTURES:
        for lang in ("pt", "en"):
            png = exports.network_png(stored["closing"], kind=kind, lang=lang)
            assert png.startswith(b"\x89PNG") and len(png) > 2000
    with pytest.raises(ValueError):
        exports.network_png(stored["closing"], kind="nope")


def test_a_closing_without_communities_still_draws(stored):
    from prudencial.closing.models import CommunityResult

    CommunityResult.objects.filter(closing=stored["closing"]).delete()
    assert exports.network_png(stored["closing"], kind="ranking").startswith(b"\x89PNG")
