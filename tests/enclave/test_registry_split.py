"""ES256 answers, the registry op and the split op against a REAL enclave process of this
module's own: what a browser's WebCrypto verifies, the counterparty acronym rule against the
staged registry, a batch file split into per-agent verdicts and re-encrypted envelopes, and
hostile inputs for the new ops after which the enclave still answers a legitimate validate
within 1 s."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from jwcrypto import jwk, jws

from enclave_bridge.client import EnclaveClient, EnclaveError
from enclave_bridge.enclave.split import MAX_BATCH_JSON_VALUES, MAX_SPLIT_AGENTS
from enclave_bridge.enclave.xlsx import build_template
from enclave_bridge.wire.protocol import (
    MAX_REGISTRY_ENTRIES,
    b64url,
    b64url_decode,
    encode_request,
    registry_sha256,
)
from prudencial.domain import formats

from .conftest import RunningEnclave, running_enclave
from .payloads import WEEK, agent, counterparties, encrypt, portfolio

pytestmark = pytest.mark.enclave

LEGIT_WITHIN_S = 1.0
WEBCRYPTO = Path(__file__).resolve().parents[1] / "attestation" / "webcrypto_verify.mjs"


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory):
    with running_enclave(tmp_path_factory.mktemp("registry-split")) as running:
        yield running


@pytest.fixture(scope="module")
def client(enclave: RunningEnclave):
    with EnclaveClient(
        enclave.address, retries=3, backoff=0.05, signing_jwk=enclave.signing_jwk
    ) as c:
        yield c


@pytest.fixture(scope="module")
def key(client: EnclaveClient) -> dict:
    return client.attest().envelope_jwk()


def _legit_validate(client: EnclaveClient, key: dict, n: int = 70) -> None:
    who = agent(n)
    started = time.monotonic()
    verdict = client.validate(encrypt(portfolio(who), key), kind="portfolio", agent=who, week=WEEK)
    elapsed = time.monotonic() - started
    assert verdict["status"] == "accepted", verdict
    assert elapsed < LEGIT_WITHIN_S, f"legitimate validate took {elapsed:.2f} s"


def _entries(*agents: dict[str, str]) -> list[dict[str, str]]:
    return [{"cnpj": a["cnpj"], "acronym": a["acronym"]} for a in agents]


# --- ES256 ------------------------------------------------------------------------------------


def test_answers_are_es256_and_the_attested_signing_key_is_p256(client, enclave):
    signing = enclave.signing_jwk
    assert (signing["kty"], signing["crv"], signing["alg"]) == ("EC", "P-256", "ES256")
    answer = client.call_signed("health")
    checked = jws.JWS()
    checked.deserialize(answer.token)
    checked.verify(jwk.JWK(**signing), alg="ES256")
    assert checked.jose_header == {"alg": "ES256", "kid": signing["kid"]}
    assert len(b64url_decode(answer.token.rsplit(".", 1)[1])) == 64


def _webcrypto(jwk_: dict, tokens: list[str]) -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the WebCrypto (browser) check of ES256 cannot run")
    run = subprocess.run(
        [node, str(WEBCRYPTO)],
        input=json.dumps({"jwk": jwk_, "tokens": tokens}).encode(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return json.loads(run.stdout)["results"]


def test_a_browser_webcrypto_verifies_the_enclave_answers(client, enclave, key):
    """crypto.subtle.verify({name: ECDSA, hash: SHA-256}) with the attested sig JWK accepts a
    verdict, a signed error and a health answer, and refuses any of them altered."""
    who = agent(3)
    verdict = client.validate_signed(
        encrypt(portfolio(who), key), kind="portfolio", agent=who, week=WEEK
    )
    health = client.call_signed("health")
    with pytest.raises(EnclaveError) as refused:
        client.call("validate", {"kind": "nope"})
    assert refused.value.signed
    # The signed error's JWS, from a raw exchange (the client raises on errors).
    request, _ = encode_request(
        req_id="err-1", op="validate", nonce=b"n" * 32, args={"kind": "nope"}
    )
    frame = client.pool.exchange(request, 10)
    error_token = frame["answer"]
    body = json.loads(b64url_decode(verdict.token.split(".")[1]))
    forged = b64url(json.dumps(dict(body, result={"status": "accepted"})).encode())
    head, _, sig = verdict.token.split(".")
    tampered = f"{head}.{forged}.{sig}"
    results = _webcrypto(enclave.signing_jwk, [verdict.token, health.token, error_token, tampered])
    assert [r["valid"] for r in results] == [True, True, True, False]
    assert {r["alg"] for r in results} == {"ES256"}
    assert results[0]["body"]["result"]["status"] == "accepted"
    assert results[0]["body"]["args_sha256"] == verdict.args_sha256
    assert results[2]["body"]["result"]["error"]["code"] == "bad_request"


# --- registry ---------------------------------------------------------------------------------


def test_registry_staging_and_the_acronym_rule(client, key):
    who, registered, outsider = agent(10), agent(11, "GE"), agent(12, "CS")
    digest = client.stage_registry(_entries(who, registered))
    assert digest == registry_sha256(_entries(registered, who))  # canonical: order-free
    assert client.stage_registry(_entries(registered, who)) == digest  # idempotent

    def verdict(doc, sha=digest):
        return client.validate(
            encrypt(doc, key), kind="counterparties", agent=who, week=WEEK, registry_sha256=sha
        )

    assert verdict(counterparties(who, [registered]))["status"] == "accepted"
    unregistered = counterparties(who, [dict(outsider, acronym=None)])
    assert verdict(unregistered)["status"] == "accepted"

    wrong = counterparties(who, [dict(registered, acronym="XX99")])
    out = verdict(wrong)
    assert out["status"] == "rejected"
    assert out["errors"] == [
        {
            "field": "counterparties[0].acronym",
            "row": 1,
            "rule": "must be the registry's acronym of this CNPJ",
        }
    ]
    named = verdict(counterparties(who, [outsider]))
    assert named["status"] == "rejected"
    assert named["errors"][0]["rule"] == "must be null: the CNPJ is not a registered agent"

    # Without a registry the acronym rule is skipped (the host has not staged one).
    assert verdict(wrong, sha=None)["status"] == "accepted"
    with pytest.raises(EnclaveError) as unknown:
        verdict(wrong, sha="0" * 64)
    assert unknown.value.code == "unknown_registry" and unknown.value.signed


def test_registry_ops_stay_out_of_the_replay_cache(client):
    before = client.describe()["nonces_kept"]
    for n in range(20):
        client.stage_registry(_entries(agent(200 + n)))
    assert client.describe()["nonces_kept"] == before
    assert client.describe()["registries"] <= 4


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"cnpj": "x"}, "entries must be a list"),
        ([["11222333000181", "CM1"]], "entries[0] must be a map"),
        ([{"cnpj": "11222333000181"}], "entries[0] must be a map"),
        ([{"cnpj": 11222333000181, "acronym": "CM1"}], "entries[0].cnpj"),
        ([{"cnpj": "1122233300018", "acronym": "CM1"}], "entries[0].cnpj"),
        ([{"cnpj": "11222333000181", "acronym": "C" * 41}], "entries[0].acronym"),
        ([{"cnpj": "11222333000181", "acronym": "CM\n1"}], "entries[0].acronym"),
        ([{"cnpj": "11222333000181", "acronym": ""}], "entries[0].acronym"),
        (
            [
                {"cnpj": "11222333000181", "acronym": "A"},
                {"cnpj": "11222333000181", "acronym": "B"},
            ],
            "entries[1].cnpj repeats",
        ),
        ([{"cnpj": "11222333000181", "acronym": "A", "legal_name": "x"}], "exactly cnpj"),
    ],
)
def test_a_malformed_registry_is_refused(client, key, entries, message):
    with pytest.raises(EnclaveError) as refused:
        client.call("registry", {"entries": entries})
    assert refused.value.code == "bad_request" and message in refused.value.message
    _legit_validate(client, key)


def test_an_oversized_registry_is_refused_and_the_enclave_stays_responsive(client, key):
    """100,001 entries (3.9 MB, inside one frame) are refused before any is kept; 100,000 are
    staged, and a legitimate validate still answers within 1 s."""
    full = [{"cnpj": f"{n:012d}00", "acronym": f"A{n}"} for n in range(MAX_REGISTRY_ENTRIES + 1)]
    started = time.monotonic()
    with pytest.raises(EnclaveError) as refused:
        client.call("registry", {"entries": full}, timeout=60)
    assert refused.value.code == "bad_request"
    assert f"at most {MAX_REGISTRY_ENTRIES}" in refused.value.message
    _legit_validate(client, key)
    digest = client.stage_registry(full[:-1])
    elapsed = time.monotonic() - started
    assert len(digest) == 64 and elapsed < 20
    _legit_validate(client, key)


# --- split ------------------------------------------------------------------------------------


def _batch(agents, *, cps=True, week=WEEK, **overrides) -> dict:
    others = [agent(900, "GE")]
    doc = {
        "schema": formats.BATCH_SCHEMA_ID,
        "week": week,
        "portfolios": [portfolio(a) for a in agents],
        "counterparties": [counterparties(a, others) for a in agents] if cps else [],
    }
    doc.update(overrides)
    return doc


def _split(client, key, plaintext, agents, **kwargs):
    envelope = encrypt(plaintext if isinstance(plaintext, bytes) else plaintext, key)
    return client.split_signed(envelope, week=WEEK, agents=agents, **kwargs)


def test_a_json_batch_is_split_into_verdicts_and_envelopes_the_enclave_opens(client, key):
    agents = [agent(20 + n) for n in range(3)]
    digest = client.stage_registry(_entries(*agents, agent(900, "GE")))
    answer = _split(client, key, _batch(agents), agents, registry_sha256=digest)
    result = answer.result
    assert result["status"] == "accepted" and result["errors"] == []
    assert result["kid"] == key["kid"]
    assert [a["acronym"] for a in result["agents"]] == [a["acronym"] for a in agents]
    assert result["counts"]["portfolio"] == {"accepted": 3, "rejected": 0}
    for who, entry in zip(agents, result["agents"], strict=True):
        for kind in formats.KINDS:
            part = entry[kind]
            assert part["verdict"]["status"] == "accepted", part["verdict"]
            assert part["envelope"].split(".")[0]  # a compact JWE
            # The closing opens it like any envelope: same verdict, same keyed digest.
            again = client.validate(
                part["envelope"], kind=kind, agent=who, week=WEEK, registry_sha256=digest
            )
            assert again == part["verdict"]  # status, errors, digest and summary alike
    assert answer.token and answer.args_sha256


def test_one_agents_bad_rows_reject_that_agent_only(client, key):
    agents = [agent(30 + n) for n in range(3)]
    doc = _batch(agents, cps=False)
    doc["portfolios"][1]["contracts"][0]["amount_brl"] = 0.0
    result = _split(client, key, doc, agents).result
    assert result["status"] == "accepted"
    statuses = [e["portfolio"]["verdict"]["status"] for e in result["agents"]]
    assert statuses == ["accepted", "rejected", "accepted"]
    assert result["agents"][1]["portfolio"]["verdict"]["errors"] == [
        {"field": "contracts[0].amount_brl", "row": 1, "rule": "must be > 0 when volume_mwm > 0"}
    ]
    assert all(e["counterparties"] is None for e in result["agents"])


def test_a_batch_naming_an_unexpected_agent_is_rejected_whole(client, key):
    agents = [agent(40 + n) for n in range(2)]
    intruder = agent(49)
    result = _split(client, key, _batch([*agents, intruder]), agents).result
    assert result["status"] == "rejected" and result["agents"] == []
    assert result["errors"][0]["field"] == "agents"
    assert "1 agent(s) not listed" in result["errors"][0]["rule"]
    assert intruder["acronym"] not in json.dumps(result)  # counted, never quoted


def test_a_batch_missing_an_expected_agent_is_rejected_whole(client, key):
    agents = [agent(50 + n) for n in range(3)]
    result = _split(client, key, _batch(agents[:2]), agents).result
    assert result["status"] == "rejected" and result["agents"] == []
    assert result["errors"] == [
        {"field": "agents[2]", "row": None, "rule": "has no rows in the file"}
    ]


def test_a_batch_for_another_week_is_rejected_whole(client, key):
    agents = [agent(55)]
    result = _split(client, key, _batch(agents, week="202304001"), agents).result
    assert result["status"] == "rejected" and result["agents"] == []
    assert {
        "field": "week",
        "row": None,
        "rule": "must be the week this envelope was submitted for",
    } in result["errors"]


def test_a_multi_agent_xlsx_is_split_like_its_json(client, key):
    agents = [agent(60 + n) for n in range(4)]
    others = [agent(900, "GE")]
    payloads = [portfolio(a) for a in agents] + [counterparties(a, others) for a in agents]
    book = build_template(payloads, kind="all", week=WEEK)
    digest = client.stage_registry(_entries(*agents, *others))
    xlsx = _split(client, key, book, agents, registry_sha256=digest).result
    as_json = _split(client, key, _batch(agents), agents, registry_sha256=digest).result
    assert xlsx["status"] == "accepted", xlsx["errors"]
    for a, b in zip(xlsx["agents"], as_json["agents"], strict=True):
        for kind in formats.KINDS:
            assert a[kind]["verdict"]["status"] == "accepted", a[kind]["verdict"]
            # The same payload, byte for byte after canonicalisation: the same keyed digest.
            assert a[kind]["verdict"]["digest"] == b[kind]["verdict"]["digest"]


def test_an_xlsx_naming_an_unexpected_agent_is_rejected_whole(client, key):
    agents = [agent(70 + n) for n in range(2)]
    book = build_template([portfolio(a) for a in [*agents, agent(79)]], kind="all", week=WEEK)
    result = _split(client, key, book, agents).result
    assert result["status"] == "rejected" and result["agents"] == []
    assert result["errors"][0]["field"] == "agents"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"week": "2023-03"}, "week must be a week code"),
        ({"agents": []}, "agents must list 1 to"),
        ({"agents": "CM1"}, "agents must list 1 to"),
        ({"agents": [{"acronym": "CM1"}]}, "agents[0] must be"),
        ({"agents": [{"acronym": "CM1", "cnpj": "11222333000181", "x": 1}]}, "agents[0] must be"),
        (
            {"agents": [{"acronym": "CM1", "cnpj": "11222333000181"}] * 2},
            "agents[1] repeats",
        ),
        ({"energy_types": ["Convencional"]}, "energy_types"),
        ({"bucket_labels": ["M"] * 3}, "bucket_labels must list 7"),
        ({"registry_sha256": "abc"}, "registry_sha256 must be 64"),
    ],
)
def test_malformed_split_args_are_refused(client, key, args, message):
    base = {
        "envelope": encrypt(_batch([agent(80)]), key),
        "week": WEEK,
        "agents": [agent(80)],
    }
    with pytest.raises(EnclaveError) as refused:
        client.call("split", {**base, **args})
    assert refused.value.code == "bad_request" and message in refused.value.message
    _legit_validate(client, key)


def test_more_agents_than_a_split_allows_are_refused(client, key):
    agents = [agent(100_000 + n) for n in range(MAX_SPLIT_AGENTS + 1)]
    with pytest.raises(EnclaveError) as refused:
        client.call("split", {"envelope": "x", "week": WEEK, "agents": agents})
    assert refused.value.code == "bad_request"
    _legit_validate(client, key)


def test_a_huge_batch_is_refused_and_the_enclave_stays_responsive(client, key):
    """A JSON batch of more values than the budget (5.9 MB of zeros in one list) is a file-level
    rejection built without walking it; an envelope over the plaintext limit is refused; an XLSX
    over the batch bounds is payload_too_large. A legitimate validate answers within 1 s after
    each."""
    agents = [agent(81)]
    flood = _batch(agents, portfolios=[0] * (MAX_BATCH_JSON_VALUES + 10))
    started = time.monotonic()
    result = _split(client, key, json.dumps(flood, separators=(",", ":")).encode(), agents).result
    assert time.monotonic() - started < 10
    assert result["status"] == "rejected" and result["agents"] == []
    assert f"more than {MAX_BATCH_JSON_VALUES} values" in result["errors"][0]["rule"]
    _legit_validate(client, key)

    with pytest.raises(EnclaveError) as too_large:
        _split(client, key, b" " * (6 * 1024 * 1024 + 1), agents)
    # The frame (8 MiB) binds before the plaintext limit (6 MiB): refused before it is sent.
    assert too_large.value.code in ("frame_too_large", "payload_too_large")
    _legit_validate(client, key)

    rows = [portfolio(agent(2000 + n)) for n in range(2)]
    book = build_template(rows, kind="all", week=WEEK)
    # A valid workbook whose sheets declare 60,000 rows: refused from the dimension alone.
    source = zipfile.ZipFile(io.BytesIO(book))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:Z60000"', data)
            target.writestr(item, data)
    with pytest.raises(EnclaveError) as refused:
        _split(client, key, out.getvalue(), [agent(2000), agent(2001)])
    assert refused.value.code == "payload_too_large"
    _legit_validate(client, key)


def test_a_bad_cell_in_a_multi_agent_xlsx_rejects_that_agents_kind_only(client, key):
    from openpyxl import load_workbook

    agents = [agent(90 + n) for n in range(3)]
    others = [agent(900, "GE")]
    payloads = [portfolio(a) for a in agents] + [counterparties(a, others) for a in agents]
    wb = load_workbook(io.BytesIO(build_template(payloads, kind="all", week=WEEK)))
    sheet = wb["Contratos"]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[header.index("Sigla do agente")].value == agents[1]["acronym"]:
            row[header.index("Volume (MWm)")].value = "dez"  # text where a number belongs
            bad_row = row[0].row
            break
    out = io.BytesIO()
    wb.save(out)
    result = _split(client, key, out.getvalue(), agents).result
    assert result["status"] == "accepted", result["errors"]
    verdicts = [
        (e["portfolio"]["verdict"]["status"], e["counterparties"]["verdict"]["status"])
        for e in result["agents"]
    ]
    assert verdicts == [
        ("accepted", "accepted"),
        ("rejected", "accepted"),
        ("accepted", "accepted"),
    ]
    errors = result["agents"][1]["portfolio"]["verdict"]["errors"]
    assert [e["row"] for e in errors] == [bad_row]
    assert errors[0]["field"].startswith("sheet Contratos")
    assert "dez" not in json.dumps(result)


def test_validates_stay_fast_while_large_splits_run(client, enclave, key):
    """Two 300-agent XLSX splits running (the split slots full) and a third waiting: a
    legitimate validate on another connection still answers within 1 s, and every split ends."""
    import threading

    agents = [agent(3000 + n) for n in range(300)]
    others = [agent(900, "GE")]
    payloads = [portfolio(a) for a in agents] + [counterparties(a, others) for a in agents]
    envelope = encrypt(build_template(payloads, kind="all", week=WEEK), key)
    results: list[str] = []

    def split() -> None:
        with EnclaveClient(enclave.address, signing_jwk=enclave.signing_jwk, timeout=120) as c:
            results.append(c.split_signed(envelope, week=WEEK, agents=agents).result["status"])

    threads = [threading.Thread(target=split) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    for n in range(5):
        _legit_validate(client, key, n=400 + n)
    for t in threads:
        t.join(timeout=180)
    assert results == ["accepted"] * 3
