"""Envelopes the client builds are accepted by the REAL enclave; refusals come back by field and
row; fa-preview (computed locally) equals the FA the enclave computes for the same payload and
parameters (the worked example: 0.0430)."""

from __future__ import annotations

import json

import pytest

from prudencial.client import envelope, preview
from prudencial.client.attestation import fetch_verified
from prudencial.client.errors import PayloadError
from tests.client import payloads

pytestmark = pytest.mark.enclave

WHO = payloads.agent(1)


@pytest.fixture
def verified(relay, policy):
    return fetch_verified(relay, policy)


def test_header_is_exactly_alg_enc_kid(verified):
    token = envelope.encrypt(b"{}", verified)
    assert envelope.protected_header(token) == {
        "alg": "RSA-OAEP-256",
        "enc": "A256GCM",
        "kid": verified.kid,
    }
    assert token.count(".") == 4
    assert len(envelope.receipt(token)) == 64


def test_envelope_of_a_json_file_is_accepted(verified, enclave_client, tmp_path):
    path = tmp_path / "portfolio.json"
    path.write_text(json.dumps(payloads.with_contracts(WHO), ensure_ascii=False))
    token = envelope.encrypt_file(envelope.read_file(path), verified)
    verdict = enclave_client.validate(token, kind="portfolio", agent=WHO, week=payloads.WEEK)
    assert verdict["status"] == "accepted", verdict


def test_invalid_payload_is_rejected_by_field_and_row(verified, enclave_client):
    token = envelope.encrypt_file(envelope.from_payload(payloads.invalid(WHO)), verified)
    verdict = enclave_client.validate(token, kind="portfolio", agent=WHO, week=payloads.WEEK)
    assert verdict["status"] == "rejected"
    fields = {(e["field"], e["row"]) for e in verdict["errors"]}
    assert ("forecasts[1].generation_mwm", 2) in fields, verdict["errors"]
    assert any(f.startswith("equity.intangibles_brl") for f, _ in fields)
    assert "-1.0" not in json.dumps(verdict["errors"]) and "-5.0" not in json.dumps(verdict)


def test_local_errors_match_the_enclave(verified, enclave_client):
    """The client's local check (the domain's formats.validate) finds what the enclave finds."""
    from prudencial.domain import formats

    doc = payloads.invalid(WHO)
    local = formats.validate("portfolio", doc, agent=WHO, week=payloads.WEEK)
    token = envelope.encrypt_file(envelope.from_payload(doc), verified)
    remote = enclave_client.validate(token, kind="portfolio", agent=WHO, week=payloads.WEEK)
    assert local == remote["errors"]


def test_strict_json_is_refused_locally(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"schema": "x", "schema": "y"}')
    with pytest.raises(PayloadError) as exc:
        envelope.read_file(path)
    assert "twice" in exc.value.message
    path.write_text('{"a": NaN}')
    with pytest.raises(PayloadError):
        envelope.read_file(path)
    path.write_text('{"a": 1,,}')
    with pytest.raises(PayloadError) as exc:
        envelope.read_file(path)
    assert exc.value.code == "json_syntax" and exc.value.params["line"] == 1


def test_too_large_is_refused_before_encrypting(tmp_path):
    path = tmp_path / "big.xlsx"
    path.write_bytes(envelope.XLSX_MAGIC + b"\0" * envelope.MAX_XLSX_BYTES)
    with pytest.raises(PayloadError) as exc:
        envelope.read_file(path)
    assert exc.value.code == "too_large" and exc.value.params["limit"] == envelope.MAX_XLSX_BYTES


def test_worked_example_preview_is_0_0430():
    result = preview.fa_preview(payloads.worked_example(WHO), payloads.parameters())
    assert result.ok
    assert round(result.fa, 4) == 0.0430
    assert result.figures["var_total"] == pytest.approx(430_035.23, abs=0.01)


def test_preview_reports_errors_instead_of_a_figure():
    result = preview.fa_preview(payloads.invalid(WHO), payloads.parameters())
    assert result.fa is None and not result.ok
    assert {e["field"] for e in result.errors} >= {"forecasts[1].generation_mwm"}


@pytest.mark.parametrize(
    ("build", "week"),
    [(payloads.worked_example, "202501001"), (payloads.with_contracts, "202501002")],
)
def test_preview_equals_the_enclave_figure(build, week, verified, enclave_client):
    """Same payload, same parameters: the local FA is the enclave's published FA, exactly.
    (A week of its own each: the enclave refuses one week computed with two parameter sets.)"""
    doc = build(WHO, week)
    params = payloads.parameters(week)
    local = preview.fa_preview(doc, params)
    token = envelope.encrypt_file(envelope.from_payload(doc), verified)
    results = enclave_client.compute(
        params,
        [{"agent": dict(WHO, **{"class": "trader"}), "portfolio": token, "counterparties": None}],
    )
    (published,) = [a for a in results["agents"] if a["agent"]["acronym"] == WHO["acronym"]]
    assert published["leverage"]["fa"] == local.fa
    assert published["leverage"]["fa_risk"] == local.fa_risk
    if build is payloads.worked_example:
        assert round(published["leverage"]["fa"], 4) == 0.0430


def test_engine_parameters_from_the_week_endpoint_shape():
    """GET /weeks/{code}/ lists forward prices per bucket and decimals as text; converted, they
    are the engine payload the host ships (and give the same FA)."""
    params = payloads.parameters()
    week = api_week(params)
    converted = preview.engine_parameters(week)
    assert converted["forward_prices"] == params["forward_prices"]
    a = preview.fa_preview(payloads.worked_example(WHO), converted)
    b = preview.fa_preview(payloads.worked_example(WHO), params)
    assert a.fa == b.fa


def api_week(params: dict) -> dict:
    """The engine parameters as GET /weeks/{code}/ publishes them (decimals as text, forward
    prices per bucket)."""
    return {
        "code": params["week"],
        "parameters": {
            "confidence": "0.9500",
            "liquidation_days": params["liquidation_days"],
            "first_month": "2023-03-01",
            "sigma_period": params["sigma_period"],
            "netting": params["netting"],
            "pld_floor": f"{params['pld_floor']:.2f}",
            "pld_cap": f"{params['pld_cap']:.2f}",
            "k": "0.0000",
            "theta": "0.0000",
            "correlation": params["correlation"],
            "buckets": [
                {
                    "index": b["index"],
                    "label": b["label"],
                    "hours": b["hours"],
                    "volatility": f"{b['volatility']:.6f}",
                    "stress_price_long": f"{b['stress_price_long']:.2f}",
                    "stress_price_short": f"{b['stress_price_short']:.2f}",
                    "forward_prices": {
                        sm: curve[b["index"]] for sm, curve in params["forward_prices"].items()
                    },
                }
                for b in params["buckets"]
            ],
        },
    }
