"""Builders for test payloads, week parameters and envelopes (what an agent's software does)."""

from __future__ import annotations

import json
from typing import Any

from jwcrypto import jwe, jwk

from prudencial.domain import formats
from prudencial.domain.identifiers import cnpj_check_digits
from prudencial.risk.pld import pld_history_2017

WEEK = "202303001"
#: The packaged SE/CO 2017 series: the week's price history the tests send (never a fallback).
PLD_HISTORY = pld_history_2017().tolist()
#: Registry classes by acronym prefix, as the demo names agents (the enclave never guesses).
CLASS_BY_PREFIX = {"GE": "generator", "CS": "free_consumer", "CM": "trader", "AP": "self_producer"}


def make_cnpj(base: str) -> str:
    """Append valid check digits to a 12-character (numeric or alphanumeric) base."""
    return base + cnpj_check_digits(base)


def batch_agent(who: dict[str, str], agent_class: str | None = None) -> dict[str, str]:
    """An agent as the host ships it in a batch item: acronym, CNPJ and the registry class."""
    return dict(who, **{"class": agent_class or CLASS_BY_PREFIX[who["acronym"][:2]]})


def network_options(**options: Any) -> dict[str, Any]:
    """Network options (the price history travels with the week's parameters)."""
    return dict(options)


def agent(n: int, prefix: str = "CM") -> dict[str, str]:
    return {"acronym": f"{prefix}{n}", "cnpj": make_cnpj(f"{10000000 + n:08d}0001")}


def portfolio(who: dict[str, str], week: str = WEEK, **overrides: Any) -> dict[str, Any]:
    """A v2 portfolio (docs/formats.md): purchases 10+b MWm at 150 R$/MWh and sales 4 MWm at
    170 R$/MWh in M+0..M+2 (SE, conventional, fixed price), equity R$ 10 million, no deductions."""
    hours = [720 + 24 * (b % 2) for b in range(7)]
    doc = {
        "schema": formats.PORTFOLIO_SCHEMA_ID,
        "agent": {"acronym": who["acronym"], "cnpj": who["cnpj"]},
        "week": week,
        "contracts": [
            row
            for b in range(3)
            for row in (
                contract(b, "purchase", 10.0 + b, 150.0 * (10.0 + b) * hours[b]),
                contract(b, "sale", 4.0, 170.0 * 4.0 * hours[b]),
            )
        ],
        "forecasts": [],
        "equity": equity(10_000_000.0),
        "regulated_market_revenue_brl": 0.0,
    }
    doc.update(overrides)
    return doc


def contract(
    bucket: int,
    side: str,
    volume: float,
    amount: float,
    *,
    contract_type: str = "fixed_price",
    energy_type: str = "conventional",
    submarket: str = "SE",
) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "side": side,
        "contract_type": contract_type,
        "energy_type": energy_type,
        "submarket": submarket,
        "volume_mwm": volume,
        "amount_brl": amount,
    }


def forecast(
    bucket: int,
    generation: float,
    consumption: float,
    *,
    energy_type: str = "conventional",
    submarket: str = "SE",
) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "submarket": submarket,
        "energy_type": energy_type,
        "generation_mwm": generation,
        "consumption_mwm": consumption,
    }


def equity(equity_brl: float, **deductions: float) -> dict[str, float]:
    """The equity parts: PLA = equity_brl − the deductions (0 unless given)."""
    return {"equity_brl": equity_brl, **dict.fromkeys(formats.DEDUCTION_FIELDS, 0.0), **deductions}


def counterparties(
    who: dict[str, str],
    others: list[dict[str, str]],
    week: str = WEEK,
    volumes: list[list[float]] | None = None,
) -> dict[str, Any]:
    """A v2 counterparties declaration, ranked by MtM M0–M2 (the first of ``others`` largest)."""
    entries = []
    for i, other in enumerate(others):
        entry = {
            "rank": i + 1,
            "cnpj": other["cnpj"],
            "acronym": other["acronym"],
            "mtm_m0_brl": 1_200_000.0 - i,
            "mtm_m1_brl": 800_000.0,
            "mtm_m2_brl": 500_000.0,
            "mitigation_brl": 200_000.0,
            "mitigants": "fiança bancária",
        }
        if volumes is not None:
            entry["volume_mwm"] = volumes[i]
        entries.append(entry)
    return {
        "schema": formats.COUNTERPARTIES_SCHEMA_ID,
        "agent": {"acronym": who["acronym"], "cnpj": who["cnpj"]},
        "week": week,
        "counterparties": entries,
    }


def registry(*agents: dict[str, str]) -> dict[str, str]:
    """The registry mapping (CNPJ → acronym) the host stages for these agents."""
    return {a["cnpj"]: a["acronym"] for a in agents}


def parameters(week: str = WEEK) -> dict[str, Any]:
    return {
        "week": week,
        "confidence": 0.95,
        "liquidation_days": 5,
        "sigma_period": "daily",
        "netting": "absolute_per_source",
        "buckets": [
            {
                "index": i,
                "label": f"M+{i}",
                "hours": 720 + 24 * (i % 2),
                "volatility": 0.05 + 0.005 * i,
                "stress_price_long": 80.0,
                "stress_price_short": 600.0,
            }
            for i in range(7)
        ],
        "correlation": [[1.0 if i == j else 0.6 for j in range(7)] for i in range(7)],
        "forward_prices": {s: [150.0 + 5 * i for i in range(7)] for s in ("SE", "S", "NE", "N")},
        "pld_floor": 58.6,
        "pld_cap": 751.73,
        "k": 0.0,
        "theta": 0.0,
        "pld_history": PLD_HISTORY,
    }


def encrypt(
    plaintext: bytes | dict[str, Any],
    key: dict[str, Any],
    *,
    alg: str = "RSA-OAEP-256",
    enc: str = "A256GCM",
    kid: str | None = None,
) -> str:
    """A compact JWE as any jwcrypto user would make it from the published JWK."""
    if isinstance(plaintext, dict):
        plaintext = json.dumps(plaintext).encode()
    public = jwk.JWK(**key)
    header = {"alg": alg, "enc": enc, "kid": kid or key["kid"]}
    token = jwe.JWE(plaintext, protected=header)
    token.allowed_algs = [alg, enc]
    token.add_recipient(public)
    return token.serialize(compact=True)
