"""The closing's enclave ops on a real enclave process: closing_chunk's answer, the sealed
network part opened by closing_network, the trade network source, hostile inputs."""

from __future__ import annotations

import pytest
from jwcrypto import jwk

from enclave_bridge.client import EnclaveError
from enclave_bridge.enclave.reply import open_breakdown
from prudencial.domain import formats
from prudencial.risk.leverage import leverage_factor

from .payloads import WEEK, encrypt, network_options, parameters
from .test_enclave_process import _batch

pytestmark = pytest.mark.django_db(databases=[])


def _with_reply(token_doc, key, reply):
    import json

    from jwcrypto import jwe

    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": key["kid"], "prd_reply": reply}
    token = jwe.JWE(json.dumps(token_doc).encode(), protected=header)
    token.add_recipient(jwk.JWK(**key))
    return token.serialize(compact=True)


def test_chunk_then_network(client, current_key):
    items, docs = _batch(6, current_key)
    private = jwk.JWK.generate(kty="EC", crv="P-256")
    public = {k: private.export_public(as_dict=True)[k] for k in ("kty", "crv", "x", "y")}
    first = items[0]["agent"]["acronym"]
    items[0]["portfolio"] = _with_reply(docs[first], current_key, public)
    batch = client.stage_batch(parameters(), items)
    answer = client.closing_chunk_signed(batch, closing="c1", chunk=0).result
    assert (answer["week"], answer["closing"], answer["chunk"]) == (WEEK, "c1", 0)
    assert answer["counts"] == {"agents": 6, "accepted": 6, "rejected": 0}
    for entry in answer["agents"]:
        expected = leverage_factor(docs[entry["agent"]["acronym"]], parameters())
        assert entry["leverage"]["fa"] == pytest.approx(expected.fa, rel=1e-12)
        assert len(entry["leverage"]["var_share_by_bucket"]) == 7
    breakdown = open_breakdown(answer["agents"][0]["breakdown"], private)
    assert breakdown["leverage"]["pla"] == pytest.approx(
        leverage_factor(docs[first], parameters()).pla
    )
    assert all(e["breakdown"] is None for e in answer["agents"][1:])
    part = answer["network_part"]
    net = client.closing_network_signed(
        parameters=parameters(), parts=[part], options=network_options(scenarios=50, seed=1)
    ).result
    assert net["source"] == "counterparties" and net["market"]["agents"] == 6
    contracts = {
        "schema": formats.CONTRACTS_SCHEMA_ID,
        "week": WEEK,
        "contracts": [
            {
                "seller_cnpj": items[0]["agent"]["cnpj"],
                "buyer_cnpj": items[1]["agent"]["cnpj"],
                "bucket": 0,
                "volume_mwm": 3.0,
                "price_brl_mwh": 160.0,
            }
        ],
    }
    trade = encrypt(contracts, current_key)
    verdict = client.validate_trade_network_signed(trade, week=WEEK).result
    assert verdict == {"status": "accepted", "errors": [], "contracts": 1}
    net = client.closing_network_signed(
        parameters=parameters(),
        parts=[part],
        trade_network=trade,
        options=network_options(scenarios=50, seed=1),
    ).result
    assert net["source"] == "trade_network" and net["market"]["contracts"] == 1
    tampered = part[:-6] + ("A" if part[-6] != "A" else "B") + part[-5:]
    with pytest.raises(EnclaveError) as exc:
        client.closing_network_signed(parameters=parameters(), parts=[tampered, "garbage"])
    assert "parts[0]" in exc.value.message
    assert client.health()["status"] == "ok"


def test_reply_key_off_curve_is_refused(client, current_key):
    items, docs = _batch(2, current_key)
    bad = {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43}
    items[0]["portfolio"] = _with_reply(docs[items[0]["agent"]["acronym"]], current_key, bad)
    batch = client.stage_batch(parameters(), items)
    answer = client.closing_chunk_signed(batch, closing="c2", chunk=0).result
    verdict = answer["agents"][0]["portfolio"]
    assert verdict["status"] == "error" and "prd_reply" in verdict["error"]["message"]


def test_trade_network_rejections_name_the_rule(client, current_key):
    doc = {"schema": formats.CONTRACTS_SCHEMA_ID, "week": WEEK, "contracts": [{"x": 1}]}
    verdict = client.validate_trade_network_signed(encrypt(doc, current_key), week=WEEK).result
    assert verdict["status"] == "rejected" and verdict["errors"]


def test_the_network_draws_contract_prices_as_the_paper_unless_told_otherwise(client, current_key):
    items, _ = _batch(6, current_key)
    batch = client.stage_batch(parameters(), items)
    part = client.closing_chunk_signed(batch, closing="c5", chunk=0).result["network_part"]

    def run(**options):
        return client.closing_network_signed(
            parameters=parameters(), parts=[part], options=network_options(scenarios=64, **options)
        ).result

    answer = run(seed=3)
    # Fractions only: the R$ figures and the expected cost would reveal the position's size.
    assert answer["agents"] and all(
        not key.endswith("_brl") and key not in ("expected_cost", "net_mwh", "reference_price")
        for row in answer["agents"]
        for key in row
    )
    assert all("no_expected_cost" in row for row in answer["agents"])
    paper = answer["scenario_model"]
    assert paper["pld"] == "bootstrap" and paper["seed"] == 3 and paper["n_scenarios"] == 64
    assert paper["contract_prices"] == {"draw": "history", "lower": 0.5, "upper": 1.0}
    assert run(seed=3, contract_prices="fixed")["scenario_model"]["contract_prices"] == "fixed"
    uniform = {"draw": "uniform", "lower": 0.7, "upper": 0.9}
    assert run(seed=3, contract_prices=uniform)["scenario_model"]["contract_prices"] == uniform
    for bad, field in (
        ({"draw": "uniform", "lower": 0.9, "upper": 0.7}, "contract_prices"),
        ({"draw": "uniform", "lower": "0.5"}, "contract_prices.lower"),  # NaN: the frame refuses it
        ({"draw": "uniform", "upper": 1e308}, "contract_prices.upper"),
        ({"draw": "shuffle"}, "contract_prices"),
        ({"draw": "uniform", "extra": 1}, "contract_prices"),
        ("cheap", "contract_prices"),
    ):
        with pytest.raises(EnclaveError) as exc:
            run(seed=3, contract_prices=bad)
        assert f"network.{field}" in exc.value.message, (bad, exc.value.message)
    assert run(seed=3)["risk_convention"] == {"quantile": "inverse_cdf", "cvar": "acerbi_tasche"}
    paper_r = run(seed=3, risk_convention="paper_r")["risk_convention"]
    assert paper_r == {"quantile": "type7", "cvar": "worst_mean"}
    with pytest.raises(EnclaveError) as exc:
        run(seed=3, risk_convention="median")
    assert "network.risk_convention" in exc.value.message
    assert client.health()["status"] == "ok"


# --- a trade network sent in parts (issue 11: 200,000 contracts) ------------------------------


def _contracts_doc(items, n, *, week=WEEK, part=None, start=0):
    doc = {
        "schema": formats.CONTRACTS_SCHEMA_ID,
        "week": week,
        "contracts": [
            {
                "seller_cnpj": items[(start + i) % len(items)]["agent"]["cnpj"],
                "buyer_cnpj": items[(start + i + 1) % len(items)]["agent"]["cnpj"],
                "bucket": 0,
                "volume_mwm": 1.0 + start + i,
                "price_brl_mwh": 150.0,
            }
            for i in range(n)
        ],
    }
    if part is not None:
        doc["part"] = part
    return doc


def _validate(client, envelope, part=None, week=WEEK):
    args = {"envelope": envelope, "week": week}
    if part is not None:
        args["part"] = part
    return client.call_signed("validate_trade_network", args).result


def test_a_trade_network_in_parts_opens_as_the_concatenation(client, current_key):
    import hashlib

    items, _ = _batch(6, current_key)
    batch = client.stage_batch(parameters(), items)
    part = client.closing_chunk_signed(batch, closing="c6", chunk=0).result["network_part"]
    sizes = (2, 3, 1)
    tokens, start = [], 0
    for index, size in enumerate(sizes, start=1):
        doc_part = {"set": "set-A", "index": index, "count": 3}
        doc = _contracts_doc(items, size, part=doc_part, start=start)
        token = encrypt(doc, current_key)
        assert _validate(client, token, doc_part) == {
            "status": "accepted",
            "errors": [],
            "contracts": size,
        }
        tokens.append(token)
        start += size
    net = client.closing_network_signed(
        parameters=parameters(),
        parts=[part],
        trade_network=tokens,
        options=network_options(scenarios=50, seed=1),
    ).result
    assert net["source"] == "trade_network"
    assert net["trade_network"]["contracts"] == sum(sizes) == net["market"]["contracts"]
    assert net["trade_network"]["parts"] == 3 and net["trade_network"]["set"] == "set-A"
    receipts = [hashlib.sha256(t.encode()).hexdigest() for t in tokens]
    assert net["trade_network"]["receipts"] == receipts
    # Staged in frames (parts_open / parts_add, one envelope a frame), as the gateway sends a
    # set that does not fit one frame: the same answer.
    staged = client.stage_parts(tokens, chunk_bytes=1)
    assert set(staged) == {"staged"}
    again = client.closing_network_signed(
        parameters=parameters(),
        parts=[part],
        trade_network=staged,
        options=network_options(scenarios=50, seed=1),
    ).result
    assert again["market"] == net["market"] and again["trade_network"] == net["trade_network"]
    with pytest.raises(EnclaveError) as exc:  # a staged set is used once
        client.closing_network_signed(parameters=parameters(), parts=[part], trade_network=staged)
    assert "trade_network" in exc.value.message
    # The same contracts as one whole document give the same market.
    whole = encrypt(_contracts_doc(items, sum(sizes)), current_key)
    single = client.closing_network_signed(
        parameters=parameters(),
        parts=[part],
        trade_network=whole,
        options=network_options(scenarios=50, seed=1),
    ).result
    assert single["market"] == net["market"]
    assert client.health()["status"] == "ok"


def test_a_set_of_parts_out_of_order_or_incomplete_is_refused_naming_the_part(client, current_key):
    items, _ = _batch(6, current_key)
    batch = client.stage_batch(parameters(), items)
    part = client.closing_chunk_signed(batch, closing="c7", chunk=0).result["network_part"]

    def token(index, count=3, set_id="set-B", week=WEEK):
        doc = _contracts_doc(
            items, 2, week=week, part={"set": set_id, "index": index, "count": count}
        )
        return encrypt(doc, current_key)

    whole = encrypt(_contracts_doc(items, 2), current_key)
    cases = [
        ([token(1), token(2)], "trade_network[0].part.count"),  # part 3 missing
        ([token(1), token(1), token(3)], "trade_network[1].part.index"),  # index 1 twice
        ([token(1), token(2, set_id="other"), token(3)], "trade_network[1].part.set"),
        ([token(1), token(2), token(3, week="202303002")], "trade_network[2]"),  # another week
        ([token(1), whole, token(3)], "trade_network[1].part"),
        ([token(1), "garbage", token(3)], "trade_network[1]"),
        ([], "trade_network"),
    ]
    for tokens, named in cases:
        with pytest.raises(EnclaveError) as exc:
            client.closing_network_signed(
                parameters=parameters(),
                parts=[part],
                trade_network=tokens,
                options=network_options(scenarios=50, seed=1),
            )
        assert named in exc.value.message, (named, exc.value.message)
    assert client.health()["status"] == "ok"


def test_a_part_differing_from_the_args_is_rejected_naming_part(client, current_key):
    items, _ = _batch(2, current_key)
    as_part = {"set": "set-C", "index": 2, "count": 2}
    token = encrypt(_contracts_doc(items, 1, part=as_part), current_key)
    whole = encrypt(_contracts_doc(items, 1), current_key)
    assert _validate(client, token, as_part)["status"] == "accepted"
    for envelope, args_part in (
        (token, None),  # uploaded as a whole network
        (token, {"set": "set-C", "index": 1, "count": 2}),
        (token, {"set": "set-D", "index": 2, "count": 2}),
        (whole, as_part),  # a whole document uploaded as a part
    ):
        verdict = _validate(client, envelope, args_part)
        assert verdict["status"] == "rejected", (args_part, verdict)
        assert [e["field"] for e in verdict["errors"]] == ["part"]
    with pytest.raises(EnclaveError) as exc:
        _validate(client, token, {"set": "set-C", "index": 3, "count": 2})
    assert "part.index" in exc.value.message
    assert client.health()["status"] == "ok"
