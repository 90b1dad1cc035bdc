"""Batch split benchmark (not a test): a multi-agent XLSX template (1,000 agents by default) in
one envelope, split by the real enclave process through the Django gateway, end to end.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<name> \\
        .venv/bin/python bench/batch_bench.py [--agents 1000] [--out bench/results/batch.md]

Target: the 1,000-agent XLSX split (decrypt, bounded parse, per-agent portfolio and
counterparties verdicts by formats.validate with the staged registry, each payload re-encrypted
to the enclave's current key, the signed answer verified by the host) in < 30 s.

Uses a throw-away test database (Django's test-database creation: ``test_<name>``, migrated,
dropped at the end) and a throw-away development stack (simulated KMS and NSM, the enclave as
its own process on a unix socket).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

WEEK = "202303001"


def _agent(n: int) -> dict[str, str]:
    from prudencial.domain.identifiers import cnpj_check_digits

    base = f"{20000000 + n:08d}0001"
    return {"acronym": f"{('CS', 'GE', 'CM')[n % 3]}{n}", "cnpj": base + cnpj_check_digits(base)}


def _payloads(n: int, total: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A realistic agent: 6 contract rows and 3 forecasts in M+0..M+2, five counterparties."""
    from prudencial.domain import formats

    who = _agent(n)
    hours = [744, 720, 744]
    portfolio = {
        "schema": formats.PORTFOLIO_SCHEMA_ID,
        "agent": who,
        "week": WEEK,
        "contracts": [
            {
                "bucket": b,
                "side": side,
                "contract_type": "fixed_price",
                "energy_type": "conventional",
                "submarket": "SE",
                "volume_mwm": volume,
                "amount_brl": round(volume * price * hours[b], 2),
            }
            for b in range(3)
            for side, volume, price in (("purchase", 10.0 + n % 5, 150.0), ("sale", 4.0, 170.0))
        ],
        "forecasts": [
            {
                "bucket": b,
                "submarket": "SE",
                "energy_type": "conventional",
                "generation_mwm": 0.0,
                "consumption_mwm": 5.0,
            }
            for b in range(3)
        ],
        "equity": {
            "equity_brl": 10_000_000.0 + n,
            **dict.fromkeys(formats.DEDUCTION_FIELDS, 0.0),
        },
        "regulated_market_revenue_brl": 0.0,
    }
    others = [_agent((n + k) % total) for k in range(1, 6)]
    counterparties = {
        "schema": formats.COUNTERPARTIES_SCHEMA_ID,
        "agent": who,
        "week": WEEK,
        "counterparties": [
            {
                "rank": i + 1,
                "cnpj": other["cnpj"],
                "acronym": other["acronym"],
                "mtm_m0_brl": 500_000.0 - 1000 * i,
                "mtm_m1_brl": 300_000.0,
                "mtm_m2_brl": 200_000.0,
                "mitigation_brl": 100_000.0,
                "mitigants": "Fiança bancária",
                "volume_mwm": [2.0, 2.0, 2.0],
            }
            for i, other in enumerate(others)
        ],
    }
    return portfolio, counterparties


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "batch.md"))
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment
    from enclave_bench import machine
    from jwcrypto import jwk

    from enclave_bridge import gateway
    from enclave_bridge.devstack import LocalEnclaveStack
    from enclave_bridge.enclave.xlsx import build_template
    from enclave_bridge.models import EnclaveKey
    from enclave_bridge.wire.protocol import verify_answer
    from tests.enclave.payloads import encrypt

    info = machine()
    print(f"machine: {info}", flush=True)
    t0 = time.perf_counter()
    pairs = [_payloads(n, args.agents) for n in range(args.agents)]
    agents = [p["agent"] for p, _ in pairs]
    book = build_template([d for pair in pairs for d in pair], kind="all", week=WEEK)
    built = time.perf_counter() - t0
    print(f"workbook: {len(book) / 1024:.0f} KiB for {args.agents} agents in {built:.1f} s")

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stack = LocalEnclaveStack(Path(tmp), enclave_args=["--log-level", "WARNING"])
            stack.start()
            try:
                settings.ENCLAVE_ADDRESS = stack.address
                settings.ENCLAVE_KMS_KEY_ID = stack.kms_key_id
                settings.ENCLAVE_TRUST_ROOT = str(stack.trust_root_path)
                settings.ENCLAVE_EXPECTED_PCRS = "measure"
                settings.ENCLAVE_ALLOW_DEBUG = False
                settings.ENCLAVE_PASS_AWS_CREDENTIALS = False
                gateway.reset_gateways()
                gateway.ensure_unlocked(allow_new_keys=True)
                key = EnclaveKey.objects.get(use="enc", status="current").public_jwk
                envelope = encrypt(book, key)

                t1 = time.perf_counter()
                sha = gateway.stage_registry(agents)
                staged = time.perf_counter() - t1

                t2 = time.perf_counter()
                signed = gateway.split_batch(
                    envelope=envelope, week=WEEK, agents=agents, registry_sha256=sha
                )
                split_s = time.perf_counter() - t2

                sig = jwk.JWK(**EnclaveKey.objects.get(use="sig", status="current").public_jwk)
                t3 = time.perf_counter()
                verify_answer(
                    signed.token,
                    sig,
                    req_id=signed.request_id,
                    nonce=signed.nonce,
                    op="split",
                    args_digest=signed.args_sha256,
                )
                reverify = time.perf_counter() - t3
                rss = _peak_rss(stack.processes[-1].pid)
            finally:
                stack.stop()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
    result = signed.result
    assert result["status"] == "accepted", result["errors"][:5]
    counts = result["counts"]
    answer_mib = len(signed.token) / 1024 / 1024
    figures = {
        "agents": args.agents,
        "workbook_kib": len(book) / 1024,
        "envelope_kib": len(envelope) / 1024,
        "build_s": built,
        "stage_registry_s": staged,
        "split_s": split_s,
        "reverify_s": reverify,
        "answer_mib": answer_mib,
        "counts": counts,
        "enclave_peak_rss_mib": rss / 2**20,
    }
    print(json.dumps(figures, indent=1), flush=True)
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    _write(Path(args.out), info, figures, args)
    return 0


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _write(out: Path, info: dict[str, str], f: dict[str, Any], args: argparse.Namespace) -> None:
    ok = "met" if f["split_s"] < 30 else "NOT met"
    c = f["counts"]
    text = f"""# Batch split benchmark

Command: `DATABASE_URL=postgres://… .venv/bin/python bench/batch_bench.py --agents {args.agents}`
(run {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}).

| nproc | CPU | memory | Python | load average before / after |
|---|---|---|---|---|
| {info["nproc"]} | {info["cpu"]} | {info["memory"]} | {info["python"]} | {info["load_before"]} / {info["load_after"]} |

A {f["agents"]:,}-agent XLSX template ({f["workbook_kib"]:.0f} KiB; 6 contract rows, 3 forecasts,
1 PLA row and 5 counterparties per agent) in one envelope ({f["envelope_kib"]:.0f} KiB of JWE).

| step | seconds |
|---|---|
| `gateway.split_batch` end to end (frame, decrypt, bounded XLSX parse, {c["agents"]:,} × 2 verdicts with the registry rule, {c["agents"] * 2:,} re-encrypted envelopes, ES256 answer, host verification) — target < 30 s, **{ok}** | **{f["split_s"]:.1f}** |
| `gateway.stage_registry` of {f["agents"]:,} entries (once per registry change) | {f["stage_registry_s"]:.2f} |
| re-verifying the stored split answer's JWS ({f["answer_mib"]:.1f} MiB) | {f["reverify_s"]:.2f} |
| (not timed against the target) building the workbook with openpyxl | {f["build_s"]:.1f} |

Verdicts: portfolio {c["portfolio"]["accepted"]:,} accepted / {c["portfolio"]["rejected"]:,} rejected;
counterparties {c["counterparties"]["accepted"]:,} / {c["counterparties"]["rejected"]:,}. Enclave
server peak RSS {f["enclave_peak_rss_mib"]:.0f} MiB.
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
