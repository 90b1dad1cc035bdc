"""Write the fuzz target's fixed material and its seed corpus (tests/fuzz/corpus/seed-*).

    .venv/bin/python tests/fuzz/make_seeds.py

``material.cbor`` (made once, then kept: the committed corpus's envelopes are encrypted to its
key) holds a FUZZING-ONLY key ring (RSA-3072 envelope key, P-384 signing key, digest key), a spare
RSA key for ``init``/``rotate``, and the envelopes and week parameters the structure-aware mode
builds requests from. Those keys protect nothing; never use them anywhere else.

Each corpus file is one mode byte followed by the mode's input (see fuzz_enclave_request.py):
0x00 a frame body for an unlocked enclave, 0x08 a frame body for a locked one, 0x0A structured
(bytes for atheris.FuzzedDataProvider), 0x0E an envelope plaintext (next byte: kind/binding).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cbor2  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from enclave_bridge.enclave.keys import KeyRing  # noqa: E402
from enclave_bridge.enclave.xlsx import build_template  # noqa: E402
from enclave_bridge.wire.protocol import encode_request  # noqa: E402
from tests.enclave.payloads import (  # noqa: E402
    WEEK,
    agent,
    counterparties,
    encrypt,
    parameters,
    portfolio,
)

MATERIAL = HERE / "material.cbor"
CORPUS = HERE / "corpus"

UNLOCKED, LOCKED, STRUCTURED, PLAINTEXT = 0x00, 0x08, 0x0A, 0x0E
SEALED_PREFIX = b"sim-kms:"  # what the target's simulated KMS seals to (see SimSealer there)


def _material() -> dict:
    if MATERIAL.exists():
        return cbor2.loads(MATERIAL.read_bytes())
    ring = KeyRing.generate()
    spare = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    MATERIAL.write_bytes(
        cbor2.dumps(
            {
                "ring": ring.to_cbor(),
                "spare_rsa": spare.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            }
        )
    )
    return cbor2.loads(MATERIAL.read_bytes())


def _xlsx(who: dict) -> bytes:
    return build_template([portfolio(who)], week=WEEK)


def _structured_seeds() -> dict[str, bytes]:
    """Provider bytes that reach each op (with and without an error), found by running the
    target on pseudo-random inputs: the first input for each (op, outcome) of its requests."""
    import random

    import fuzz_enclave_request as target

    outcomes: list[str] = []
    check_answer = target.check_answer

    def spy(*args):
        answer = check_answer(*args)
        result = answer.get("_result")
        code = answer["error"]["code"] if "error" in answer else "ok"
        if isinstance(result, dict) and isinstance(result.get("network"), dict):
            code += "+network" if "skipped" not in result["network"] else ""
        outcomes.append(f"{answer['op']}-{code}")
        return answer

    target.check_answer = spy
    rng = random.Random(7)
    found: dict[str, bytes] = {}
    try:
        for _ in range(4000):
            data = bytes([STRUCTURED]) + rng.randbytes(rng.randint(8, 600))
            outcomes.clear()
            try:
                target.one_input(data)
            except target.Finding as finding:  # kept out of the seeds; the fuzzer will find it
                print(f"(seed search hit a finding: {finding.kind})")
                continue
            key = "_".join(o for o in outcomes if isinstance(o, str) and o[:1].isalpha())
            if outcomes and key not in found and len(key) < 80:
                found[key] = data
    finally:
        target.check_answer = check_answer
    ranked = sorted(found.items(), key=lambda kv: ("ok" not in kv[0], len(kv[1])))
    return {f"structured_{key}": data for key, data in ranked[:60]}


def main() -> None:
    material = _material()
    ring = KeyRing.from_cbor(material["ring"])
    jwk = ring.current.public_jwk()
    a1, a2, a3 = agent(1, "CM"), agent(2, "GE"), agent(3, "CS")
    vols = {"a1": [[5.0, 5.0, 5.0], [0, -2.0, 0]], "a2": [[-5.0, -5.0, -5.0]], "a3": [[1.0]]}
    envelopes = {
        "p1": encrypt(portfolio(a1), jwk),
        "p2": encrypt(portfolio(a2), jwk),
        "p3": encrypt(portfolio(a3, adjusted_equity=1.0), jwk),
        "c1": encrypt(counterparties(a1, [a2, a3], volumes=vols["a1"]), jwk),
        "c2": encrypt(counterparties(a2, [a1], volumes=vols["a2"]), jwk),
        "c3": encrypt(counterparties(a3, [a1], volumes=[[1.0, 0, 0]]), jwk),
        "p1_wrong_week": encrypt(portfolio(a1, week="202303002"), jwk),
        "not_json": encrypt(b"\xff\xfe not json", jwk),
        "list_json": encrypt(b"[1, 2, 3]", jwk),
    }
    tampered = envelopes["p1"][:-6] + ("AAAAAA" if not envelopes["p1"].endswith("A") else "BBBBBB")
    envelopes["tampered"] = tampered
    envelopes["unknown_kid"] = encrypt(portfolio(a1), jwk, kid="not-a-kid")
    material.update(
        parameters=parameters(),
        agents=[a1, a2, a3],
        week=WEEK,
        envelopes=envelopes,
        sealed=SEALED_PREFIX + hashlib.sha256(material["ring"]).digest(),
    )
    MATERIAL.write_bytes(cbor2.dumps(material))

    seeds: dict[str, bytes] = {}
    counter = iter(range(1, 10_000))

    def frame(name: str, op: str, args: dict | None = None, mode: int = UNLOCKED, **kw) -> None:
        nonce = hashlib.sha256(name.encode()).digest()[: kw.pop("nonce_len", 16)]
        body = encode_request(
            req_id=kw.pop("req_id", next(counter)), op=op, nonce=nonce, args=args or {}
        )[0]
        seeds[name] = bytes([mode]) + body[4:]

    def raw(name: str, body: bytes, mode: int = UNLOCKED) -> None:
        seeds[name] = bytes([mode]) + body

    expected = {"agent": a1, "week": WEEK}
    # Legitimate requests, unlocked enclave.
    frame("health", "health")
    frame("describe", "describe", req_id="host-1.describe:a")
    frame("attest", "attest")
    frame("rotate", "rotate")
    frame("rotate_signing", "rotate", {"rotate_signing": True})
    frame("init_unlocked", "init")
    frame("unseal_unlocked", "unseal", {"sealed_keys": material["sealed"]})
    for kind, env in (("portfolio", "p1"), ("counterparties", "c1")):
        frame(
            f"validate_{kind}",
            "validate",
            {"kind": kind, "envelope": envelopes[env], "expected": expected},
        )
    frame(
        "validate_wrong_agent",
        "validate",
        {"kind": "portfolio", "envelope": envelopes["p2"], "expected": expected},
    )
    frame(
        "validate_tampered",
        "validate",
        {"kind": "portfolio", "envelope": tampered, "expected": expected},
    )
    frame(
        "validate_unknown_kid",
        "validate",
        {"kind": "portfolio", "envelope": envelopes["unknown_kid"], "expected": expected},
    )
    frame(
        "validate_not_json",
        "validate",
        {"kind": "portfolio", "envelope": envelopes["not_json"], "expected": expected},
    )
    frame(
        "validate_bad_header",
        "validate",
        {"kind": "portfolio", "envelope": "eyJhbGciOiJub25lIn0.a.b.c.d", "expected": expected},
    )
    frame("batch_open", "batch_open", {"parameters": parameters()})
    frame("batch_add_unknown", "batch_add", {"batch": "0" * 32, "items": [], "seq": 0})
    items = [
        {"agent": a1, "portfolio": envelopes["p1"], "counterparties": envelopes["c1"]},
        {"agent": a2, "portfolio": envelopes["p2"], "counterparties": envelopes["c2"]},
        {
            "agent": dict(a3, **{"class": "free_consumer"}),
            "portfolio": envelopes["p3"],
            "counterparties": None,
        },
    ]
    frame(
        "compute",
        "compute",
        {"parameters": parameters(), "items": items, "network": {"scenarios": 50, "seed": 1}},
    )
    frame(
        "compute_history",
        "compute",
        {
            "parameters": parameters(),
            "items": items[:2],
            "network": {
                "scenarios": 20,
                "seed": 2,
                "pld_history": [60.0, 120.5, 300.0, 700.0],
                "horizon_buckets": 2,
                "community_method": "louvain",
                "cascade": True,
                "failure_probability": 0.1,
            },
        },
    )
    frame(
        "compute_duplicate", "compute", {"parameters": parameters(), "items": [items[0], items[0]]}
    )
    frame("unknown_op", "launch_missiles")
    frame("long_nonce", "health", nonce_len=32)
    # Hostile frames (each should be refused with a clear code, never an internal error).
    nonce = b"\x01" * 16
    head = (
        cbor2.dumps("id")
        + cbor2.dumps(1)
        + cbor2.dumps("op")
        + cbor2.dumps("health")
        + cbor2.dumps("nonce")
        + cbor2.dumps(nonce)
    )

    def with_args(arg_bytes: bytes) -> bytes:
        return b"\xa4" + head + cbor2.dumps("args") + arg_bytes

    raw("tag_in_args", with_args(b"\xa1\x61x\xc1\x1a\x00\x00\x00\x01"))  # epoch-date tag
    raw("tag_top", b"\xd9\xd9\xf7" + cbor2.dumps({"id": 1, "op": "health", "nonce": nonce}))
    raw("bignum_tag", with_args(b"\xa1\x61x\xc2\x49\x01" + b"\x00" * 8))
    raw("shared_ref_tags", with_args(b"\xa1\x61x\xd8\x1c\x82\xd8\x1d\x00\xd8\x1d\x00"))
    raw("indefinite_map", b"\xbf" + head + b"\xff")
    raw("indefinite_args", with_args(b"\xbf\x61x\x01\xff"))
    raw("indefinite_text", with_args(b"\xa1\x61x\x7f\x61a\x61b\xff"))
    raw("deep_nesting", with_args(b"\xa1\x61x" + b"\x81" * 40 + b"\x00"))
    raw("deep_maps", with_args((b"\xa1\x61x" * 40) + b"\x00"))
    raw("huge_text_length", with_args(b"\xa1\x61x\x7b" + (1 << 62).to_bytes(8, "big")))
    raw("huge_bytes_length", with_args(b"\xa1\x61x\x5a\xff\xff\xff\xff"))
    raw("huge_array_length", with_args(b"\xa1\x61x\x9b" + (1 << 40).to_bytes(8, "big")))
    raw("huge_map_pairs", b"\xbb" + (1 << 40).to_bytes(8, "big") + head)
    raw("nan_half", with_args(b"\xa1\x61x\xf9\x7e\x00"))
    raw("inf_single", with_args(b"\xa1\x61x\xfa\x7f\x80\x00\x00"))
    raw("nan_double", with_args(b"\xa1\x61x\xfb\x7f\xf8" + b"\x00" * 6))
    raw("undefined", with_args(b"\xa1\x61x\xf7"))
    raw("simple_32", with_args(b"\xa1\x61x\xf8\x20"))
    raw("reserved_info", with_args(b"\xa1\x61x\x1c"))
    raw("truncated", with_args(b"\xa1\x61x\x19\x01"))
    raw("trailing", with_args(b"\xa0") + b"\x00")
    raw("empty", b"")
    raw("not_a_map", cbor2.dumps([1, "health", nonce]))
    raw("duplicate_keys", b"\xa4" + head + cbor2.dumps("id") + cbor2.dumps(2))
    raw("int_key", with_args(b"\xa1\x01\x01"))
    raw("long_key", b"\xa1" + cbor2.dumps("k" * 30) + b"\x00")
    raw("seventeen_fields", b"\xb1" + b"".join(cbor2.dumps(f"f{i}") + b"\x00" for i in range(17)))
    raw("big_uint", with_args(b"\xa1\x61x\x1b" + b"\xff" * 8))
    raw("neg_uint", with_args(b"\xa1\x61x\x3b" + b"\xff" * 8))
    raw("invalid_utf8_key", with_args(b"\xa1\x62\xff\xfe\x00"))
    raw("many_items", with_args(b"\x99\x10\x00" + b"\x00" * 4096))
    raw("args_not_map", with_args(b"\x83\x01\x02\x03"))
    raw("args_null", with_args(b"\xf6"))
    for name, message in {
        "missing_nonce": {"id": 1, "op": "health"},
        "short_nonce": {"id": 1, "op": "health", "nonce": b"\x00" * 8},
        "text_nonce": {"id": 1, "op": "health", "nonce": "0" * 16},
        "id_bool": {"id": True, "op": "health", "nonce": nonce},
        "id_negative": {"id": -1, "op": "health", "nonce": nonce},
        "id_2_53": {"id": 1 << 53, "op": "health", "nonce": nonce},
        "id_bad_chars": {"id": "a b\n", "op": "health", "nonce": nonce},
        "id_too_long": {"id": "a" * 129, "op": "health", "nonce": nonce},
        "op_upper": {"id": 1, "op": "HEALTH", "nonce": nonce},
        "extra_field": {"id": 1, "op": "health", "nonce": nonce, "args": {}, "x": 1},
        "float_id": {"id": 1.5, "op": "health", "nonce": nonce},
    }.items():
        raw(name, cbor2.dumps(message))
    # A locked enclave.
    frame("locked_health", "health", mode=LOCKED)
    frame("locked_describe", "describe", mode=LOCKED)
    frame("locked_init", "init", mode=LOCKED)
    frame(
        "locked_init_creds",
        "init",
        {"aws_credentials": {"access_key_id": "A", "secret_access_key": "s", "session_token": "t"}},
        mode=LOCKED,
    )
    frame("locked_unseal", "unseal", {"sealed_keys": material["sealed"]}, mode=LOCKED)
    frame("locked_unseal_b64", "unseal", {"sealed_keys": "c2ltLWttczpub3Qgc2VhbGVk"}, mode=LOCKED)
    frame(
        "locked_validate",
        "validate",
        {"kind": "portfolio", "envelope": envelopes["p1"], "expected": expected},
        mode=LOCKED,
    )
    raw("locked_tag", with_args(b"\xa1\x61x\xc0\x60"), mode=LOCKED)
    # Structure-aware inputs (FuzzedDataProvider bytes).
    for i, pattern in enumerate(
        (b"\x00" * 64, b"\x01\x02\x03\x04" * 32, bytes(range(256)), b"\xff" * 96)
    ):
        seeds[f"structured_{i}"] = bytes([STRUCTURED]) + pattern
    seeds.update(_structured_seeds())
    # Envelope plaintexts (second byte: bit 0 kind counterparties, bit 1 binding to another agent).
    plain = {
        "portfolio": (0, json.dumps(portfolio(a1)).encode()),
        "counterparties": (
            1,
            json.dumps(counterparties(a1, [a2], volumes=[[1.0, 2.0, 3.0]])).encode(),
        ),
        "xlsx": (0, _xlsx(a1)),
        "wrong_binding": (2, json.dumps(portfolio(a1)).encode()),
        "duplicate_keys": (0, b'{"schema": "prudencial/portfolio/v1", "schema": "x"}'),
        "deep_json": (0, b"[" * 100 + b"]" * 100),
        "nan_json": (0, json.dumps(portfolio(a1, adjusted_equity=float("nan"))).encode()),
        "huge_number": (
            0,
            json.dumps(portfolio(a1)).replace("10000000.0", "1" + "0" * 400).encode(),
        ),
        "exponent": (0, json.dumps(portfolio(a1)).replace("10000000.0", "1e999").encode()),
        "utf16": (0, json.dumps(portfolio(a1)).encode("utf-16")),
        "zip_garbage": (0, b"PK\x03\x04" + b"\x00" * 60),
    }
    for name, (flags, text) in plain.items():
        seeds[f"plaintext_{name}"] = bytes([PLAINTEXT, flags]) + text

    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.glob("seed-*"):
        old.unlink()
    for name, data in seeds.items():
        (CORPUS / f"seed-{name}").write_bytes(data)
    total = sum(len(d) for d in seeds.values())
    print(
        f"{len(seeds)} seeds ({total} bytes, largest {max(map(len, seeds.values()))}) in {CORPUS}"
    )


if __name__ == "__main__":
    main()
