"""End-to-end tests against the real enclave process (see conftest.py)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import struct
import threading
import time
import zipfile

import cbor2
import pytest
from jwcrypto import jwk

from enclave_bridge.attestation.nsm import measure_pcrs
from enclave_bridge.client import AnswerVerificationError, EnclaveClient, EnclaveError
from enclave_bridge.enclave import APP_DIR
from enclave_bridge.enclave.xlsx import build_template
from enclave_bridge.wire.protocol import decode_message, encode_frame, read_frame_bytes
from prudencial.risk.leverage import leverage_factor

from .payloads import (
    WEEK,
    agent,
    batch_agent,
    counterparties,
    encrypt,
    equity,
    network_options,
    parameters,
    portfolio,
)

pytestmark = pytest.mark.enclave

CANARY = 987654.321


def _health_ok(client: EnclaveClient) -> None:
    assert client.health()["status"] == "ok"


def _raw(enclave) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(enclave.socket_path))
    return sock


def _answer(sock: socket.socket) -> dict:
    body = read_frame_bytes(sock, max_frame=1 << 24)
    assert body is not None
    return decode_message(body)


def test_json_envelope_round_trips(client, current_key):
    who = agent(47)
    doc = portfolio(who)
    plaintext = json.dumps(doc).encode()
    verdict = client.validate(
        encrypt(plaintext, current_key), kind="portfolio", agent=who, week=WEEK
    )
    assert verdict["status"] == "accepted", verdict
    assert verdict["errors"] == []
    # Keyed digest: stable for the same plaintext, but not the bare SHA-256 the host could
    # use to confirm a guess.
    assert len(verdict["digest"]) == 64
    assert verdict["digest"] != hashlib.sha256(plaintext).hexdigest()
    again = client.validate(encrypt(plaintext, current_key), kind="portfolio", agent=who, week=WEEK)
    assert again["digest"] == verdict["digest"]
    assert verdict["summary"] == {"kind": "portfolio"}  # no row count, no month


def test_counterparties_round_trip_with_alphanumeric_cnpj(client, current_key):
    who = agent(48)
    other = {"acronym": "GE12", "cnpj": "12ABC34501DE35"}
    doc = counterparties(who, [other, agent(49)], volumes=[[5.0, 5.0, 5.0], [-2.0, 0.0, 1.0]])
    verdict = client.validate(
        encrypt(doc, current_key), kind="counterparties", agent=who, week=WEEK
    )
    assert verdict["status"] == "accepted", verdict


def test_xlsx_template_round_trips(client, current_key):
    who = agent(50)
    doc = portfolio(who)
    cps = counterparties(who, [agent(51)], volumes=[[1.0, 2.0, 3.0]])
    book = build_template([doc, cps], week=WEEK)
    envelope = encrypt(book, current_key)
    digests = set()
    for kind in ("portfolio", "counterparties"):
        verdict = client.validate(envelope, kind=kind, agent=who, week=WEEK)
        assert verdict["status"] == "accepted", verdict
        assert verdict["digest"] != hashlib.sha256(book).hexdigest()  # keyed, not bare
        digests.add(verdict["digest"])
    assert len(digests) == 1  # one workbook, one digest


def test_xlsx_errors_carry_excel_rows_not_values(client, current_key, enclave):
    who = agent(52)
    doc = portfolio(who)
    doc["contracts"][1]["volume_mwm"] = -CANARY
    doc["contracts"][2]["amount_brl"] = 0.0
    doc["contracts"][2]["volume_mwm"] = CANARY
    book = build_template([doc])
    verdict = client.validate(encrypt(book, current_key), kind="portfolio", agent=who, week=WEEK)
    assert verdict["status"] == "rejected"
    assert {
        "field": "sheet Contratos: contracts[1].volume_mwm",
        "row": 3,
        "rule": "must be ≥ 0",
    } in verdict["errors"]
    # Schema errors stop the business rules; fix the schema error and see the rule error by row.
    doc["contracts"][1]["volume_mwm"] = 1.0
    book = build_template([doc])
    verdict = client.validate(encrypt(book, current_key), kind="portfolio", agent=who, week=WEEK)
    assert verdict["errors"] == [
        {
            "field": "sheet Contratos: contracts[2].amount_brl",
            "row": 4,
            "rule": "must be > 0 when volume_mwm > 0",
        }
    ]
    assert str(CANARY) not in json.dumps(verdict) and "987654" not in json.dumps(verdict)


def test_business_rule_errors_name_field_and_row_never_values(client, current_key, enclave):
    who = agent(53)
    doc = portfolio(who)
    doc["contracts"].append(dict(doc["contracts"][0]))  # duplicate key
    doc["contracts"][1]["volume_mwm"] = CANARY
    doc["contracts"][1]["amount_brl"] = 0.0
    cps = counterparties(who, [agent(54), agent(54), who])
    cps["counterparties"][0]["mitigants"] = f"canary {CANARY}"
    cps["counterparties"][1]["cnpj"] = "12345678000196"  # bad check digits
    texts = []
    for kind, payload in (("portfolio", doc), ("counterparties", cps)):
        verdict = client.validate(encrypt(payload, current_key), kind=kind, agent=who, week=WEEK)
        assert verdict["status"] == "rejected"
        texts.append(json.dumps(verdict, ensure_ascii=False))
        rules = {(e["field"], e["row"]) for e in verdict["errors"]}
        if kind == "portfolio":
            assert ("contracts[1].amount_brl", 2) in rules
            assert ("contracts[6]", 7) in rules
        else:
            assert ("counterparties[1].cnpj", 2) in rules
            assert ("counterparties[2].cnpj", 3) in rules
    # Schema errors never quote the value either.
    doc = portfolio(who)
    doc["contracts"][0]["submarket"] = f"X{CANARY}"
    doc["contracts"][0]["bucket"] = CANARY
    verdict = client.validate(encrypt(doc, current_key), kind="portfolio", agent=who, week=WEEK)
    assert verdict["status"] == "rejected"
    texts.append(json.dumps(verdict, ensure_ascii=False))
    for text in texts:
        assert "987654" not in text
    assert "987654" not in enclave.log_text()


def test_wrong_agent_or_week_is_refused(client, current_key):
    who, other = agent(55), agent(56)
    envelope = encrypt(portfolio(who), current_key)
    verdict = client.validate(envelope, kind="portfolio", agent=other, week=WEEK)
    assert verdict["status"] == "rejected"
    assert {
        "field": "agent",
        "row": None,
        "rule": "must be the agent this envelope was submitted for",
    } in verdict["errors"]
    verdict = client.validate(envelope, kind="portfolio", agent=who, week="202303002")
    assert [e["field"] for e in verdict["errors"]] == ["week"]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        ("tamper", "decryption_failed"),
        ("unknown_kid", "unknown_kid"),
        ("alg", "algorithm_not_allowed"),
        ("enc", "algorithm_not_allowed"),
        ("garbage", "envelope_invalid"),
    ],
)
def test_bad_envelopes_get_clear_errors_and_enclave_keeps_serving(
    client, current_key, mutate, code
):
    who = agent(57)
    doc = portfolio(who)
    if mutate == "tamper":
        envelope = encrypt(doc, current_key)
        parts = envelope.split(".")
        ct = bytearray(parts[3].encode())
        ct[10] = ord("A") if ct[10] != ord("A") else ord("B")
        parts[3] = ct.decode()
        envelope = ".".join(parts)
    elif mutate == "unknown_kid":
        envelope = encrypt(doc, current_key, kid="not-a-kid-of-this-enclave")
    elif mutate == "alg":
        envelope = encrypt(doc, current_key, alg="RSA-OAEP")
    elif mutate == "enc":
        envelope = encrypt(doc, current_key, enc="A128GCM")
    else:
        envelope = "this.is.not.a.jwe"
    with pytest.raises(EnclaveError) as info:
        client.validate(envelope, kind="portfolio", agent=who, week=WEEK)
    assert info.value.code == code
    assert info.value.signed  # an unlocked enclave signs its errors too
    _health_ok(client)


def test_replayed_nonce_is_refused_and_retry_is_idempotent(client):
    """Stateful ops keep their nonce for the replay window: a retry (same nonce, id, op and
    args) gets the first answer, not a second batch; anything else with that nonce is refused.
    Pure ops (health) are simply run again."""
    nonce = os.urandom(32)
    args = {"parameters": parameters()}
    first = client.call("batch_open", args, request_id="replay-1", nonce=nonce)
    again = client.call("batch_open", args, request_id="replay-1", nonce=nonce)  # a retry
    assert again == first  # the same batch, not a second one
    with pytest.raises(EnclaveError) as info:
        client.call("batch_open", args, request_id="replay-2", nonce=nonce)
    assert info.value.code == "replayed_nonce"
    assert info.value.signed  # the refusal is the enclave's, not a relay's invention
    with pytest.raises(EnclaveError) as info:  # same id, other op: a replay too
        client.call("compute", {"batch": first["batch"]}, request_id="replay-1", nonce=nonce)
    assert info.value.code == "replayed_nonce" and info.value.signed
    health_nonce = os.urandom(32)
    assert client.call("health", request_id="h-1", nonce=health_nonce)["status"] == "ok"
    assert client.call("health", request_id="h-2", nonce=health_nonce)["status"] == "ok"
    _health_ok(client)


def test_oversized_frame_is_refused_without_reading_the_body(enclave, client):
    with _raw(enclave) as sock:
        sock.sendall(struct.pack(">I", 9 * 1024 * 1024) + b"x" * 1024)
        answer = _answer(sock)
        assert answer["error"]["code"] == "frame_too_large"
        # The enclave closed without reading the body: EOF, or a reset for the unread bytes.
        with contextlib.suppress(ConnectionResetError):
            assert read_frame_bytes(sock, max_frame=1 << 20) is None
    _health_ok(client)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xff\x00not cbor", "malformed_frame"),
        (cbor2.dumps([1, 2, 3]), "malformed_frame"),
        (cbor2.dumps({"id": "x", "op": "health"}), "bad_request"),
        (cbor2.dumps({"id": "x", "op": "health", "nonce": b"short"}), "bad_request"),
        (cbor2.dumps({"id": "x", "op": "no-such-op", "nonce": os.urandom(16)}), "unknown_op"),
        (cbor2.dumps(cbor2.CBORTag(55799, {"id": "x"})), "malformed_frame"),
    ],
    # Stable ids: one body holds a random nonce, and xdist workers must collect the same names.
    ids=["not-cbor", "not-a-map", "no-nonce", "short-nonce", "unknown-op", "tagged-map"],
)
def test_malformed_frames_get_error_frames_and_connection_keeps_serving(enclave, body, code):
    with _raw(enclave) as sock:
        sock.sendall(struct.pack(">I", len(body)) + body)
        assert _answer(sock)["error"]["code"] == code
        sock.sendall(
            encode_frame({"id": "after", "op": "health", "nonce": os.urandom(16), "args": {}})
        )
        after = _answer(sock)
        assert after["id"] == "after" and "answer" in after


def test_read_timeout_closes_a_stalled_frame(enclave, client):
    with _raw(enclave) as sock:
        sock.sendall(struct.pack(">I", 100) + b"abc")
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 5
    _health_ok(client)


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(40):  # 40 MiB of zeros, ~40 KiB on disk
                member.write(chunk)
    return out.getvalue()


def _million_row_sheet(tmp_path) -> bytes:
    """A real workbook whose sheet has 1,000,000 rows (streamed to disk, ~1 MB compressed)."""
    path = tmp_path / "rows.xlsx"
    template = build_template(agents=[agent(58)], week=WEEK)
    with (
        zipfile.ZipFile(io.BytesIO(template)) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst,
    ):
        for info in src.infolist():
            if info.filename == "xl/worksheets/sheet2.xml":
                with dst.open(info.filename, "w", force_zip64=True) as member:
                    member.write(
                        b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
                    )
                    block = []
                    for r in range(1, 1_000_001):
                        block.append(f'<row r="{r}"/>')
                        if len(block) == 50_000:
                            member.write("".join(block).encode())
                            block = []
                    member.write(b"</sheetData></worksheet>")
            else:
                dst.writestr(info, src.read(info.filename))
    return path.read_bytes()


def test_xlsx_zip_bomb_is_refused_quickly(client, current_key):
    envelope = encrypt(_zip_bomb(), current_key)
    started = time.monotonic()
    with pytest.raises(EnclaveError) as info:
        client.validate(envelope, kind="portfolio", agent=agent(58), week=WEEK)
    assert info.value.code == "payload_too_large"
    assert time.monotonic() - started < 2
    _health_ok(client)


def test_million_row_sheet_is_refused_by_the_row_limit(client, current_key, tmp_path):
    data = _million_row_sheet(tmp_path)
    envelope = encrypt(data, current_key)
    started = time.monotonic()
    with pytest.raises(EnclaveError) as info:
        client.validate(envelope, kind="portfolio", agent=agent(58), week=WEEK)
    assert info.value.code == "payload_too_large"
    assert "rows" in info.value.message
    assert time.monotonic() - started < 3
    _health_ok(client)


def test_forged_signature_is_refused_by_the_client(enclave):
    impostor = jwk.JWK.generate(kty="EC", crv="P-256")
    public = impostor.export_public(as_dict=True)
    with (
        EnclaveClient(enclave.address, signing_jwk=public) as c,
        pytest.raises(AnswerVerificationError),
    ):
        c.health()


def test_error_answers_are_signed_and_a_forged_error_is_refused(enclave, current_key):
    """A relay that rewrote an error (or its code) would fail the signature check."""
    impostor = jwk.JWK.generate(kty="EC", crv="P-256")
    with (
        EnclaveClient(enclave.address, signing_jwk=impostor.export_public(as_dict=True)) as c,
        pytest.raises(AnswerVerificationError),
    ):
        c.validate("this.is.not.a.jwe", kind="portfolio", agent=agent(61), week=WEEK)


def test_concurrent_connections(enclave, current_key):
    who = agent(59)
    envelope_doc = portfolio(who)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with EnclaveClient(enclave.address, signing_jwk=enclave.signing_jwk) as c:
                for _ in range(3):
                    verdict = c.validate(
                        encrypt(envelope_doc, current_key), kind="portfolio", agent=who, week=WEEK
                    )
                    assert verdict["status"] == "accepted"
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _batch(n: int, key: dict) -> tuple[list[dict], dict[str, dict]]:
    agents = [agent(100 + i, prefix=("GE", "CS", "CM")[i % 3]) for i in range(n)]
    docs = {}
    items = []
    for i, who in enumerate(agents):
        doc = portfolio(who)
        doc["contracts"][0]["volume_mwm"] = 5.0 + i
        docs[who["acronym"]] = doc
        partner = agents[(i + 1) % n]
        cps = counterparties(
            who, [partner], volumes=[[-3.0, -2.0, -1.0]] if i % 2 == 0 else [[2.0, 2.0, 2.0]]
        )
        items.append(
            {
                "agent": batch_agent(who),
                "portfolio": encrypt(doc, key),
                "counterparties": encrypt(cps, key),
            }
        )
    return items, docs


def test_compute_small_batch_matches_leverage_factor(client, current_key):
    items, docs = _batch(6, current_key)
    items.append(
        {
            "agent": batch_agent(agent(999)),
            "portfolio": encrypt(portfolio(agent(998)), current_key),
            "counterparties": None,
        }
    )
    result = client.compute(parameters(), items, network=network_options(scenarios=200, seed=7))
    assert result["counts"] == {"agents": 7, "accepted": 6, "rejected": 1}
    for entry in result["agents"][:6]:
        expected = leverage_factor(docs[entry["agent"]["acronym"]], parameters())
        assert entry["leverage"]["fa"] == pytest.approx(expected.fa, rel=1e-12)
        assert entry["concentration"]["largest_ratio"] is not None
    assert result["agents"][6]["portfolio"]["status"] == "rejected"
    assert result["network"]["market"]["agents"] == 6
    assert result["network"]["market"]["contracts"] >= 3


def test_compute_staged_batch_gives_the_same_answer(client, current_key):
    items, docs = _batch(40, current_key)
    staged = client.compute(
        parameters(), items, network=network_options(scenarios=100, seed=3), chunk_bytes=40_000
    )
    inline = client.compute(parameters(), items, network=network_options(scenarios=100, seed=3))
    assert [a["leverage"] for a in staged["agents"]] == [a["leverage"] for a in inline["agents"]]
    assert staged["counts"]["accepted"] == 40


def test_rotate_gives_new_kid_and_old_envelopes_still_decrypt(client, current_key, enclave):
    who = agent(60)
    old_envelope = encrypt(portfolio(who), current_key)
    keys = client.rotate()
    assert keys.kid != current_key["kid"] and current_key["kid"] in keys.kids
    enclave.sealed_keys = keys.sealed_keys
    assert (
        client.validate(old_envelope, kind="portfolio", agent=who, week=WEEK)["status"]
        == "accepted"
    )
    new_key = client.attest().envelope_jwk()
    assert new_key["kid"] == keys.kid
    new_envelope = encrypt(portfolio(who), new_key)
    assert (
        client.validate(new_envelope, kind="portfolio", agent=who, week=WEEK)["status"]
        == "accepted"
    )


def test_restart_and_unseal_brings_back_the_same_keys(enclave, current_key):
    if measure_pcrs(APP_DIR) != enclave.pcrs:
        pytest.skip("enclave sources changed during the run: new PCR0, so KMS rightly refuses")
    who = agent(61)
    old_envelope = encrypt(portfolio(who), current_key)
    enclave.restart()
    with EnclaveClient(enclave.address, signing_jwk=enclave.signing_jwk) as c:
        assert c.health()["state"] == "locked"
        with pytest.raises(EnclaveError) as info:
            c.validate(old_envelope, kind="portfolio", agent=who, week=WEEK)
        assert info.value.code == "locked"
        tampered = bytearray(enclave.sealed_keys)
        tampered[-5] ^= 0x01
        with pytest.raises(EnclaveError) as info:
            c.unseal(bytes(tampered))
        assert info.value.code == "sealing_failed"
        assert c.health()["state"] == "locked"
        keys = c.unseal(enclave.sealed_keys)
        assert keys.kid == current_key["kid"]
        assert (
            c.validate(old_envelope, kind="portfolio", agent=who, week=WEEK)["status"] == "accepted"
        )
        with pytest.raises(EnclaveError) as info:
            c.unseal(enclave.sealed_keys)
        assert info.value.code == "already_unlocked"  # an unlocked enclave never swaps its keys


def test_no_confidential_value_in_enclave_log(enclave):
    log = enclave.log_text()
    assert "op=validate" in log
    assert "987654" not in log
    assert "fiança" not in log and "BEGIN PRIVATE KEY" not in log


def test_compute_answer_publishes_only_the_allow_listed_figures(client, current_key):
    """Nothing from which a declaration could be read back leaves the enclave (PLA canary)."""
    from enclave_bridge.enclave import disclosure

    canary = 12_345_678.9
    items, _ = _batch(6, current_key)
    for i, item in enumerate(items):
        doc = portfolio(item["agent"], equity=equity(canary + i))
        item["portfolio"] = encrypt(doc, current_key)
    result = client.compute(parameters(), items, network=network_options(scenarios=100, seed=5))
    text = json.dumps(result)
    assert "12345678" not in text and "1.23456789e" not in text
    for entry in result["agents"]:
        assert set(entry["leverage"]) <= {*disclosure.LEVERAGE_FIGURES, "reason"}
        assert entry["leverage"]["fa"] is not None
    network = result["network"]
    for row in network["agents"]:
        assert set(row) <= set(disclosure.NETWORK_AGENT_FIGURES)
        assert not {"net_mwh", "expected_cost", "reference_price"} & set(row)
    for row in network["communities"]:
        assert set(row) <= set(disclosure.COMMUNITY_FIGURES)


def test_implausible_or_changed_week_parameters_are_refused(client, current_key):
    """Crafted parameters could turn the published FA into a readout of one hidden position."""
    items, _ = _batch(2, current_key)
    crafted = parameters()
    crafted["buckets"][0]["hours"] = 1
    with pytest.raises(EnclaveError, match=r"buckets\[0\]\.hours"):
        client.compute(crafted, items, network=network_options())
    cheap = parameters()
    cheap["forward_prices"]["SE"][0] = 1.0
    with pytest.raises(EnclaveError, match=r"forward_prices\.SE\[0\]"):
        client.compute(cheap, items, network=network_options())
    # A week is computed with at most 3 parameter sets per enclave lifetime (the closing and
    # two corrections); the same set again is no new one.
    from enclave_bridge.enclave.batches import MAX_PARAMETER_SETS_PER_WEEK

    for i in range(MAX_PARAMETER_SETS_PER_WEEK):
        corrected = parameters("202303002")
        corrected["buckets"][3]["volatility"] = 0.2 + i / 100
        client.compute(corrected, [], network=network_options())
        client.compute(corrected, [], network=network_options())
    other = parameters("202303002")
    other["buckets"][3]["volatility"] = 0.3
    with pytest.raises(EnclaveError, match="already computed with 3 parameter sets"):
        client.compute(other, [], network=network_options())


def test_signed_verdict_can_be_verified_again_from_what_is_stored(client, current_key, enclave):
    """validate_signed gives the JWS and the args digest: with the envelope, agent and week
    a third party recomputes the digest and verifies the verdict later; altered, it fails."""
    from enclave_bridge.wire.protocol import args_sha256, verify_answer

    who = agent(62)
    envelope = encrypt(portfolio(who), current_key)
    signed = client.validate_signed(envelope, kind="portfolio", agent=who, week=WEEK)
    args = {"envelope": envelope, "kind": "portfolio", "expected": {"agent": who, "week": WEEK}}
    assert signed.args_sha256 == args_sha256(args)
    key = jwk.JWK(**enclave.signing_jwk)
    body = verify_answer(
        signed.token,
        key,
        req_id=signed.request_id,
        nonce=signed.nonce,
        op="validate",
        args_digest=args_sha256(args),
    )
    assert body["result"] == signed.result and signed.result["status"] == "accepted"
    other = dict(args, kind="counterparties")
    with pytest.raises(AnswerVerificationError):
        verify_answer(
            signed.token,
            key,
            req_id=signed.request_id,
            nonce=signed.nonce,
            op="validate",
            args_digest=args_sha256(other),
        )


def test_a_week_without_price_history_gets_its_fa_and_no_invented_network_figures(
    client, current_key
):
    """The network model's PLD history is a week parameter: without it the enclave computes
    FA and concentration and says the network model was not computed; it never substitutes
    a packaged series."""
    week = "202304001"
    raw = dict(parameters(week), pld_history=None)
    items = []
    for n in (301, 302, 303):
        who = agent(n)
        items.append(
            {
                "agent": batch_agent(who),
                "portfolio": encrypt(portfolio(who, week=week), current_key),
                "counterparties": None,
            }
        )
    result = client.compute(raw, items, network=network_options(scenarios=50, seed=1))
    assert result["counts"]["accepted"] == 3
    assert all(entry["leverage"]["fa"] is not None for entry in result["agents"])
    assert "pld_history" in result["network"]["skipped"]
    assert "communities" not in result["network"]
