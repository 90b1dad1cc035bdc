"""Enclave benchmark (not a test): per-envelope validation cost against bare RSA-OAEP decryption,
and a 20,000-agent batch decrypted and validated by the real enclave process.

    .venv/bin/python bench/enclave_bench.py [--agents 20000] [--single 300] \
        [--out bench/results/enclave.md]

Targets: the in-enclave validation pipeline (decrypt + JSON Schema + rules + signed answer) within
1.5x of bare RSA-OAEP-256 decryption of the content key, measured side by side in the same run
(interleaved rounds, so load from other processes hits both alike); the 20,000-agent batch
(portfolio + counterparties envelopes per agent) decrypted and validated in < 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from jwcrypto import jwe, jwk  # noqa: E402

from enclave_bridge.attestation.nsm import measure_pcrs  # noqa: E402
from enclave_bridge.client import EnclaveClient, check_attestation  # noqa: E402
from enclave_bridge.devstack import LocalEnclaveStack  # noqa: E402
from enclave_bridge.enclave import APP_DIR  # noqa: E402
from enclave_bridge.enclave.checks import check_envelope  # noqa: E402
from enclave_bridge.enclave.keys import KeyRing  # noqa: E402
from enclave_bridge.enclave.validation import (  # noqa: E402
    check_expected,
    parse_json,
    validate_payload,
)
from enclave_bridge.wire.protocol import answer_body, encode_frame  # noqa: E402
from prudencial.domain import formats  # noqa: E402
from prudencial.risk.pld import pld_history_2017  # noqa: E402

WEEK = "202303001"
W1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
W2 = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


def cnpj(n: int) -> str:
    base = f"{10000000 + n:08d}0001"
    values = [ord(c) - 48 for c in base]

    def digit(vals: list[int], weights: tuple[int, ...]) -> int:
        r = sum(a * b for a, b in zip(vals, weights, strict=False)) % 11
        return 0 if r < 2 else 11 - r

    d1 = digit(values, W1)
    return f"{base}{d1}{digit([*values, d1], W2)}"


def agent(n: int) -> dict[str, str]:
    return {"acronym": f"{('CS', 'GE', 'CM')[n % 3]}{n}", "cnpj": cnpj(n)}


def portfolio(n: int) -> dict[str, Any]:
    """A realistic v2 portfolio: purchases and sales in 7 buckets x 2 submarkets (28 contract
    rows) and 7 consumption forecasts."""
    return {
        "schema": formats.PORTFOLIO_SCHEMA_ID,
        "agent": agent(n),
        "week": WEEK,
        "contracts": [
            {
                "bucket": b,
                "side": side,
                "contract_type": "fixed_price",
                "energy_type": "conventional",
                "submarket": sub,
                "volume_mwm": volume,
                "amount_brl": volume * (150.0 + b) * 744,
            }
            for b in range(7)
            for sub in ("SE", "S")
            for side, volume in (("purchase", 10.0 + (n % 7)), ("sale", 6.0 + b))
        ],
        "forecasts": [
            {
                "bucket": b,
                "submarket": "SE",
                "energy_type": "conventional",
                "generation_mwm": 0.0,
                "consumption_mwm": 2.0,
            }
            for b in range(7)
        ],
        "equity": {
            "equity_brl": 5_000_000.0 + 1000 * n,
            **dict.fromkeys(formats.DEDUCTION_FIELDS, 0.0),
        },
        "regulated_market_revenue_brl": 0.0,
    }


def counterparties(n: int, total: int) -> dict[str, Any]:
    others = [(n + k) % total for k in (1, 2, 3)]
    return {
        "schema": formats.COUNTERPARTIES_SCHEMA_ID,
        "agent": agent(n),
        "week": WEEK,
        "counterparties": [
            {
                "rank": i + 1,
                "cnpj": cnpj(o),
                "acronym": agent(o)["acronym"],
                "mtm_m0_brl": 100_000.0 * (3 - i),
                "mtm_m1_brl": 80_000.0,
                "mtm_m2_brl": 50_000.0,
                "mitigation_brl": 10_000.0,
                "mitigants": "fiança bancária",
                "volume_mwm": [(-1.0) ** i * 2.0, 1.0, 0.5],
            }
            for i, o in enumerate(others)
        ],
    }


def parameters() -> dict[str, Any]:
    return {
        "week": WEEK,
        "confidence": 0.95,
        "liquidation_days": 5,
        "buckets": [
            {
                "index": i,
                "label": f"M+{i}",
                "hours": 744 if i % 2 == 0 else 720,
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
        "pld_history": pld_history_2017().tolist(),  # the demo's series, passed explicitly
    }


_KEY: jwk.JWK | None = None


def _init_encrypter(key: dict[str, Any]) -> None:
    global _KEY
    _KEY = jwk.JWK(**key)


def _encrypt(doc: dict[str, Any]) -> str:
    assert _KEY is not None
    token = jwe.JWE(
        json.dumps(doc).encode(),
        protected={"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": _KEY["kid"]},
    )
    token.add_recipient(_KEY)
    return token.serialize(compact=True)


def _make_items(spec: tuple[int, int, int, bool]) -> list[dict[str, Any]]:
    start, end, total, with_counterparties = spec
    return [
        {
            "agent": dict(agent(n), **{"class": ("free_consumer", "generator", "trader")[n % 3]}),
            "portfolio": _encrypt(portfolio(n)),
            "counterparties": _encrypt(counterparties(n, total)) if with_counterparties else None,
        }
        for n in range(start, end)
    ]


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{mem_kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        memory = "unknown"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "python": platform.python_version(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _direct_open(token: str, ring: Any) -> bytes:
    """What open_envelope would cost without jwcrypto's JWE object (informative only: the
    enclave decrypts with jwcrypto): header checks, RSA-OAEP-256 unwrap, AES-256-GCM."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from enclave_bridge.enclave.envelope import read_header
    from enclave_bridge.wire.protocol import b64url_decode

    header = read_header(token)
    entry = ring.envelope_key(header["kid"])
    protected, wrapped, iv, ciphertext, tag = token.split(".")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    cek = entry.private_key.decrypt(b64url_decode(wrapped), oaep)
    return AESGCM(cek).decrypt(
        b64url_decode(iv), b64url_decode(ciphertext) + b64url_decode(tag), protected.encode()
    )


def side_by_side(n: int) -> dict[str, float]:
    """In-process, one core: the enclave's per-envelope pipeline vs bare RSA-OAEP, interleaved."""
    ring = KeyRing.generate()
    _init_encrypter(ring.current.public_jwk())
    tokens = [_encrypt(portfolio(i)) for i in range(n)]
    keys = [
        base64.urlsafe_b64decode(t.split(".")[1] + "=" * (-len(t.split(".")[1]) % 4))
        for t in tokens
    ]
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    private = ring.current.private_key
    expected = [check_expected({"agent": agent(i), "week": WEEK}) for i in range(n)]
    nonce = os.urandom(32)
    check_envelope(ring, tokens[0], "portfolio", expected[0])  # load schemas once
    bare: list[float] = []
    full: list[float] = []
    bare_cpu: list[float] = []
    full_cpu: list[float] = []
    direct_cpu: list[float] = []
    step = 25
    for start in range(0, n, step):
        idx = range(start, min(n, start + step))
        c0, t0 = time.thread_time(), time.perf_counter()
        for i in idx:
            private.decrypt(keys[i], oaep)
        c1, t1 = time.thread_time(), time.perf_counter()
        for i in idx:
            outcome = check_envelope(ring, tokens[i], "portfolio", expected[i])
            assert outcome.status == "accepted"
            body = answer_body(req_id=str(i), nonce=nonce, op="validate", result=outcome.public())
            encode_frame(
                {"id": str(i), "nonce": nonce, "op": "validate", "answer": ring.sign(body)}
            )
        c2, t2 = time.thread_time(), time.perf_counter()
        for i in idx:
            payload = parse_json(_direct_open(tokens[i], ring))
            outcome = validate_payload(
                "portfolio", payload, expected[i], digest="-", finite_checked=True
            )
            body = answer_body(req_id=str(i), nonce=nonce, op="validate", result=outcome.public())
            encode_frame(
                {"id": str(i), "nonce": nonce, "op": "validate", "answer": ring.sign(body)}
            )
        c3 = time.thread_time()
        direct_cpu.append((c3 - c2) / len(idx))
        bare.append((t1 - t0) / len(idx))
        full.append((t2 - t1) / len(idx))
        bare_cpu.append((c1 - c0) / len(idx))
        full_cpu.append((c2 - c1) / len(idx))
    bare_ms = statistics.median(bare) * 1000
    full_ms = statistics.median(full) * 1000
    # CPU time of this thread: what other processes' load does not inflate (wall time on a
    # shared machine counts the time slices they take).
    cpu_ratio = statistics.median(full_cpu) / statistics.median(bare_cpu)
    return {
        "bare_ms": bare_ms,
        "pipeline_ms": full_ms,
        "ratio": full_ms / bare_ms,
        "bare_cpu_ms": statistics.median(bare_cpu) * 1000,
        "pipeline_cpu_ms": statistics.median(full_cpu) * 1000,
        "cpu_ratio": cpu_ratio,
        "direct_cpu_ratio": statistics.median(direct_cpu) / statistics.median(bare_cpu),
    }


def over_socket(
    stack: Any, signing: dict[str, Any], key: dict[str, Any], n: int
) -> dict[str, float]:
    """End to end through the real enclave process (client verifies every answer)."""
    _init_encrypter(key)
    tokens = [_encrypt(portfolio(i)) for i in range(n)]
    with EnclaveClient(stack.address, signing_jwk=signing) as c:
        c.validate(tokens[0], kind="portfolio", agent=agent(0), week=WEEK)
        t0 = time.perf_counter()
        for i in range(n):
            c.validate(tokens[i], kind="portfolio", agent=agent(i), week=WEEK)
        sequential = (time.perf_counter() - t0) / n

    def worker(part: range) -> None:
        with EnclaveClient(stack.address, signing_jwk=signing) as c:
            for i in part:
                c.validate(tokens[i], kind="portfolio", agent=agent(i), week=WEEK)

    threads = [threading.Thread(target=worker, args=(range(k, n, 2),)) for k in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parallel = n / (time.perf_counter() - t0)
    return {"sequential_ms": sequential * 1000, "throughput_2_clients": parallel}


def batch(
    stack: Any, signing: dict[str, Any], key: dict[str, Any], agents: int, with_counterparties: bool
) -> dict[str, float]:
    """The big batch: generate envelopes, then batch_open + batch_add chunks (decrypt, validate,
    FA, concentration) and compute (network model) through the client."""
    t0 = time.perf_counter()
    step = 500
    ranges = [
        (s, min(agents, s + step), agents, with_counterparties) for s in range(0, agents, step)
    ]
    with ProcessPoolExecutor(
        max_workers=os.cpu_count(), initializer=_init_encrypter, initargs=(key,)
    ) as pool:
        items = [item for part in pool.map(_make_items, ranges) for item in part]
    generated = time.perf_counter() - t0
    size = sum(len(i["portfolio"]) + len(i["counterparties"] or "") for i in items)
    with EnclaveClient(stack.address, signing_jwk=signing, timeout=600) as c:
        t1 = time.perf_counter()
        batch_id = c.stage_batch(parameters(), items)
        checked = time.perf_counter() - t1
        t2 = time.perf_counter()
        result = c.compute_batch(batch_id, network={"scenarios": 500, "seed": 1})
        computed = time.perf_counter() - t2
    accepted = result["counts"]["accepted"]
    return {
        "agents": agents,
        "envelopes": (2 if with_counterparties else 1) * agents,
        "envelope_mib": size / 1024 / 1024,
        "generate_s": generated,
        "check_s": checked,
        "accepted": accepted,
        "chunks": -(-size // (6 * 1024 * 1024)),
        "compute_s": computed,
        "network_contracts": result["network"].get("market", {}).get("contracts", 0),
        "answer_agents": len(result["agents"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "enclave.md"))
    parser.add_argument(
        "--ratio-only",
        action="store_true",
        help="only the per-envelope pipeline vs bare RSA-OAEP-256 (no enclave process, no batch)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="side-by-side runs (ratio spread)")
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info}", flush=True)
    runs = [side_by_side(args.single) for _ in range(max(1, args.repeat))]
    sbs = min(runs, key=lambda r: r["ratio"]) if args.ratio_only else runs[0]
    for run in runs:
        print(f"side by side: {run}", flush=True)
    if args.ratio_only:
        for name in ("ratio", "cpu_ratio", "direct_cpu_ratio"):
            ratios = sorted(r[name] for r in runs)
            print(
                f"{name} over {len(runs)} run(s): min {ratios[0]:.2f}x median "
                f"{statistics.median(ratios):.2f}x max {ratios[-1]:.2f}x (target <= 1.5x)",
                flush=True,
            )
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalEnclaveStack(Path(tmp), enclave_args=["--log-level", "WARNING"])
        stack.start()
        try:
            with EnclaveClient(stack.address) as c:
                c.init()
                att = c.attest()
            check_attestation(
                att,
                trusted_root=stack.trust_root_path.read_bytes(),
                expected_pcrs={0: measure_pcrs(APP_DIR)[0]},
            )
            key, signing = att.envelope_jwk(), att.signing_jwk
            time.sleep(1.0)  # let the enclave's worker pool finish starting
            sock = over_socket(stack, signing, key, args.single)
            print(f"over socket: {sock}", flush=True)
            big = batch(stack, signing, key, args.agents, with_counterparties=True)
            print(f"batch: {big}", flush=True)
            small = batch(stack, signing, key, args.agents, with_counterparties=False)
            print(f"batch, portfolios only: {small}", flush=True)
        finally:
            stack.stop()
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    write_report(Path(args.out), info, sbs, sock, big, small, args)
    return 0


def write_report(
    out: Path,
    info: dict[str, str],
    sbs: dict[str, float],
    sock: dict[str, float],
    big: dict[str, float],
    small: dict[str, float],
    args: argparse.Namespace,
) -> None:
    ok_ratio = "met" if sbs["ratio"] <= 1.5 else "NOT met"
    ok_batch = "met" if big["check_s"] < 60 else "NOT met"
    ok_small = "met" if small["check_s"] < 60 else "NOT met"
    text = f"""# Enclave benchmark

Command: `.venv/bin/python bench/enclave_bench.py --agents {args.agents} --single {args.single}`
(run {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}).

## Machine
| nproc | CPU | memory | Python | load average before / after the run |
|---|---|---|---|---|
| {info["nproc"]} | {info["cpu"]} | {info["memory"]} | {info["python"]} | {info["load_before"]} / {info["load_after"]} |

## Per-envelope validation vs bare RSA-OAEP (target: within 1.5x) — {ok_ratio}
Same run, same RSA-3072 key, one core, interleaved rounds of 25 (median of {args.single} envelopes,
a 14-row portfolio in JSON):

| step | ms per envelope |
|---|---|
| bare RSA-OAEP-256 decryption of the content key (`cryptography`) | {sbs["bare_ms"]:.3f} |
| enclave pipeline: JWE header checks + jwcrypto decrypt + JSON + JSON Schema + rules + signed answer (ES256) + frame | {sbs["pipeline_ms"]:.3f} |
| ratio | **{sbs["ratio"]:.2f}x** |

End to end through the enclave process (unix socket, client verifies every signature):
{sock["sequential_ms"]:.2f} ms per `validate` sequentially; {sock["throughput_2_clients"]:.0f} validations/s with two
client threads (client and enclave share the same {info["nproc"]} cores).

## Batch of {big["agents"]:,} agents (target: decrypt + validate < 60 s on 2 cores)
Portfolios only ({small["envelopes"]:,} envelopes, {small["envelope_mib"]:.1f} MiB): **{small["check_s"]:.1f} s** — {ok_small}.

Portfolio + counterparties for every agent — {ok_batch}: {big["envelopes"]:,} envelopes,
{big["envelope_mib"]:.1f} MiB of JWE, shipped by `EnclaveClient.stage_batch` in about {big["chunks"]} `batch_add` frames (each under the 8 MiB limit, two in flight).

| phase | seconds |
|---|---|
| decrypt + validate + FA + concentration of every envelope (batch_open + batch_add, end to end) | **{big["check_s"]:.1f}** |
| network model over the batch's market (compute, 500 PLD scenarios, {big["network_contracts"]:,} contracts) | {big["compute_s"]:.1f} |
| (not timed against the target) generating the envelopes on the host side | {big["generate_s"]:.1f} |

Accepted: {big["accepted"]:,} of {big["agents"]:,} portfolios; answer lists {big["answer_agents"]:,} agents.
The enclave's process pool has one worker per core; RSA-3072 private-key operations are the floor
(about {sbs["bare_ms"]:.1f} ms each, {big["envelopes"]:,} of them = {big["envelopes"] * sbs["bare_ms"] / 1000 / max(1, int(info["nproc"])):.0f} s of pure RSA spread over {info["nproc"]} cores).
Other engineers' jobs ran on the same machine: compare the load average above.
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
