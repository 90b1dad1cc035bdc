"""Hostile-input benchmark (not a test): what each attack class costs a real enclave process.

    .venv/bin/python bench/hostile_bench.py [--out bench/results/hostile.md]

For each hostile frame (the classes of tests/enclave/test_hostile.py): the time until the enclave
answers its refusal, the latency of the legitimate ``validate`` sent right after it, and the
enclave server's resident set after it and at its peak (VmHWM). Then an idle flood: 100 silent
sockets and 5 trickling ones held open while a real client validates 20 envelopes.

Targets (issue 7): after every hostile case a legitimate validate within 1 s; the enclave's RSS
under 1 GiB throughout.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enclave_bridge.client import EnclaveClient  # noqa: E402
from enclave_bridge.wire.protocol import decode_message, read_frame_bytes  # noqa: E402
from tests.enclave.conftest import running_enclave  # noqa: E402
from tests.enclave.payloads import WEEK, agent, encrypt, portfolio  # noqa: E402
from tests.enclave.test_hostile import (  # noqa: E402
    INTEGER_CASES,
    STRUCTURE_CASES,
    TAG_CASES,
    request,
)


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def raw(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(120)
    for _ in range(500):
        try:
            sock.connect(str(path))
            return sock
        except BlockingIOError:
            time.sleep(0.01)
    raise RuntimeError("cannot connect")


def refuse_time(path: Path, body: bytes) -> tuple[float, str]:
    with raw(path) as sock:
        started = time.perf_counter()
        sock.sendall(struct.pack(">I", len(body)) + body)
        answer = read_frame_bytes(sock, max_frame=1 << 24)
        elapsed = time.perf_counter() - started
    code = decode_message(answer)["error"]["code"] if answer else "closed"
    return elapsed, code


def legit_ms(client: EnclaveClient, key: dict, n: int) -> float:
    who = agent(n)
    envelope = encrypt(portfolio(who), key)
    started = time.perf_counter()
    verdict = client.validate(envelope, kind="portfolio", agent=who, week=WEEK)
    assert verdict["status"] == "accepted"
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "hostile.md"))
    args = parser.parse_args()
    cases = {f"tag: {k}": v() for k, v in sorted(TAG_CASES.items())}
    cases.update({f"structure: {k}": v for k, v in sorted(STRUCTURE_CASES.items())})
    cases.update(
        {
            f"id: {k}": request(b"\xa0", req_id=raw_id, op="health")
            for k, (raw_id, _) in sorted(INTEGER_CASES.items())
        }
    )
    rows = []
    # The tests' own boot (init, attest, check), with production timeouts and quiet logs.
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_enclave(
            Path(tmp), "--read-timeout", "30", "--idle-timeout", "75", "--log-level", "WARNING"
        ) as enclave,
    ):
        stack = enclave.stack
        pid = enclave.pid
        time.sleep(1.0)
        with EnclaveClient(stack.address, signing_jwk=enclave.signing_jwk) as client:
            key = client.attest().envelope_jwk()
            baseline = [legit_ms(client, key, 100 + i) for i in range(20)]
            start_rss = proc_kib(pid, "VmRSS")
            for i, (name, body) in enumerate(cases.items()):
                elapsed, code = refuse_time(stack.socket_path, body)
                after = legit_ms(client, key, 200 + i)
                rows.append((name, len(body), elapsed * 1000, code, after, proc_kib(pid, "VmRSS")))
                print(rows[-1], flush=True)
            # Idle flood while a real client works.
            idle = [raw(stack.socket_path) for _ in range(100)]
            stop = threading.Event()

            def trickle() -> None:
                with raw(stack.socket_path) as sock:
                    for byte in struct.pack(">I", 100):
                        if stop.wait(0.4):
                            return
                        try:
                            sock.sendall(bytes([byte]))
                        except OSError:
                            return

            threads = [threading.Thread(target=trickle, daemon=True) for _ in range(5)]
            for t in threads:
                t.start()
            flood = [legit_ms(client, key, 300 + i) for i in range(20)]
            stop.set()
            for sock in idle:
                sock.close()
        peak = proc_kib(pid, "VmHWM")
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), "
        "`.venv/bin/python bench/hostile_bench.py`.",
        "",
        f"Legitimate validate before any attack: median {sorted(baseline)[10]:.1f} ms, "
        f"max {max(baseline):.1f} ms; enclave RSS {start_rss / 1024:.0f} MiB.",
        "",
        "| hostile frame | bytes | refused in (ms) | code | next legit validate (ms) | RSS after (MiB) |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, size, ms, code, after, rss in rows:
        lines.append(f"| {name} | {size:,} | {ms:.1f} | {code} | {after:.1f} | {rss / 1024:.0f} |")
    lines += [
        "",
        f"Idle flood (100 silent + 5 trickling sockets): 20 legitimate validates, median "
        f"{sorted(flood)[10]:.1f} ms, max {max(flood):.1f} ms.",
        "",
        f"Enclave server peak RSS over the whole run (VmHWM): **{peak / 1024:.0f} MiB**; "
        f"slowest legitimate validate after an attack: **{max(r[4] for r in rows):.1f} ms**; "
        f"slowest refusal: **{max(r[2] for r in rows):.1f} ms**.",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
