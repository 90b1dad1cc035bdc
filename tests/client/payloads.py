"""v2 payloads of the client's tests (docs/formats.md), built as an agent's software builds them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from prudencial.domain.identifiers import cnpj_check_digits

WEEK = "202303001"
EXAMPLES = Path(__file__).resolve().parents[2] / "prudencial" / "risk" / "examples"


def make_cnpj(base: str) -> str:
    return base + cnpj_check_digits(base)


def agent(n: int, prefix: str = "CM") -> dict[str, str]:
    return {"acronym": f"{prefix}{n}", "cnpj": make_cnpj(f"{20000000 + n:08d}0001")}


def equity(equity_brl: float = 10_000_000.0) -> dict[str, float]:
    return {
        "equity_brl": equity_brl,
        "goodwill_net_of_deferred_tax_brl": 0.0,
        "intangibles_brl": 0.0,
        "sector_stakes_brl": 0.0,
        "financial_stakes_brl": 0.0,
        "tax_credits_brl": 0.0,
    }


def forecast(bucket: int, generation: float, consumption: float) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "submarket": "SE",
        "energy_type": "conventional",
        "generation_mwm": generation,
        "consumption_mwm": consumption,
    }


def worked_example(who: dict[str, str], week: str = WEEK) -> dict[str, Any]:
    """The worked example of the domain guide as a v2 portfolio: forecasts only, generation 10 /
    consumption 5 / generation 3 MWm in M0–M2 (SE conventional), PLA 10,000,000 → FA 0.0430."""
    return {
        "schema": "prudencial/portfolio/v2",
        "agent": dict(who),
        "week": week,
        "contracts": [],
        "forecasts": [forecast(0, 10.0, 0.0), forecast(1, 0.0, 5.0), forecast(2, 3.0, 0.0)],
        "equity": equity(),
        "regulated_market_revenue_brl": 0.0,
    }


def with_contracts(who: dict[str, str], week: str = WEEK) -> dict[str, Any]:
    doc = worked_example(who, week)
    doc["contracts"] = [
        {
            "bucket": 0,
            "side": "purchase",
            "contract_type": "fixed_price",
            "energy_type": "conventional",
            "submarket": "SE",
            "volume_mwm": 4.0,
            "amount_brl": 446_400.0,
        },
        {
            "bucket": 1,
            "side": "sale",
            "contract_type": "variable_price",
            "energy_type": "conventional",
            "submarket": "SE",
            "volume_mwm": 2.0,
            "amount_brl": 230_400.0,
        },
    ]
    return doc


def invalid(who: dict[str, str], week: str = WEEK) -> dict[str, Any]:
    """Two errors: a negative generation in the 2nd forecast, a negative deduction."""
    doc = copy.deepcopy(worked_example(who, week))
    doc["forecasts"][1]["generation_mwm"] = -1.0
    doc["equity"]["intangibles_brl"] = -5.0
    return doc


def counterparties(who: dict[str, str], other: dict[str, str], week: str = WEEK) -> dict[str, Any]:
    return {
        "schema": "prudencial/counterparties/v2",
        "agent": dict(who),
        "week": week,
        "counterparties": [
            {
                "rank": 1,
                "cnpj": other["cnpj"],
                "acronym": other["acronym"],
                "mtm_m0_brl": 400_000.0,
                "mtm_m1_brl": 350_000.0,
                "mtm_m2_brl": 300_000.0,
                "mitigation_brl": 200_000.0,
                "mitigants": "Fiança bancária",
                "volume_mwm": [5.0, 5.0, 5.0],
            }
        ],
    }


def parameters(week: str = WEEK) -> dict[str, Any]:
    """The worked example's week parameters (the engine payload)."""
    doc = json.loads((EXAMPLES / "worked_example_parameters.json").read_text())
    doc["week"] = week
    return doc


def workbook(
    kind_or_all: str, docs: list[dict[str, Any]], week_parameters: dict | None = None
) -> bytes:
    """The docs as a filled XLSX template (the domain's rows, written with openpyxl)."""
    import io

    from openpyxl import Workbook

    from prudencial.domain import sheets

    labels = sheets.labels_of(week_parameters or parameters())
    grid = sheets.payloads_to_rows(kind_or_all, docs, bucket_labels=labels)
    book = Workbook()
    book.remove(book.active)
    for name, rows in grid.items():
        ws = book.create_sheet(name)
        for row in rows:
            ws.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
