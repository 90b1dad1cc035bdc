"""A pool worker that dies (the OOM killer on a hostile split, a native crash) must not take the
enclave's availability with it: against a REAL enclave process of this module's own, a worker
is killed (SIGKILL) before or during a split or a compute; that request is refused with a signed
``internal_error`` quoting nothing, the pool is rebuilt, and the next split and compute succeed.
The work is never re-run in the server process (the server's own CPU time stays flat)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from enclave_bridge.client import EnclaveClient, EnclaveError
from prudencial.domain import formats

from .conftest import RunningEnclave, running_enclave
from .payloads import (
    WEEK,
    agent,
    batch_agent,
    counterparties,
    encrypt,
    network_options,
    parameters,
    portfolio,
)

pytestmark = pytest.mark.enclave


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory):
    with running_enclave(tmp_path_factory.mktemp("pool-loss")) as running:
        yield running


@pytest.fixture(scope="module")
def client(enclave: RunningEnclave):
    with EnclaveClient(
        enclave.address, retries=0, backoff=0.05, signing_jwk=enclave.signing_jwk
    ) as c:
        yield c


@pytest.fixture(scope="module")
def key(client: EnclaveClient) -> dict:
    return client.attest().envelope_jwk()


# --- processes -------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    """ppid → pids, from /proc (psutil is not a pinned dependency)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _workers(server_pid: int) -> list[int]:
    """The pool's workers: forked by the forkserver (a child of the server), so the server's
    grandchildren."""
    tree = _children()
    return sorted(pid for child in tree.get(server_pid, []) for pid in tree.get(child, []))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat")
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return
        except OSError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not exit")


def _kill_one_and_wait_for_the_pool_to_break(enclave: RunningEnclave) -> int:
    """SIGKILL one pool worker; return once the executor has marked the pool broken. Its manager
    thread sets the broken flag and only then terminates the surviving workers, so "every
    worker of the pool is gone" is the observable sign (a fixed sleep raced it under load: the
    next request ran on a survivor before the death was noticed)."""
    workers = _wait_for_workers(enclave)
    os.kill(workers[0], signal.SIGKILL)
    for pid in workers:
        _gone(pid, timeout=30.0)
    # A worker spawned on demand after the listing would be missed above: wait for none left.
    deadline = time.monotonic() + 30.0
    while _workers(enclave.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _workers(enclave.pid), "the pool's surviving workers were not terminated"
    return workers[0]


def _wait_for_workers(enclave: RunningEnclave, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _workers(enclave.pid)
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("no pool worker found under the enclave process")


# --- requests --------------------------------------------------------------------------------


def _batch_file(agents: list[dict]) -> dict:
    return {
        "schema": formats.BATCH_SCHEMA_ID,
        "week": WEEK,
        "portfolios": [portfolio(a) for a in agents],
        "counterparties": [counterparties(a, [agent(900, "GE")]) for a in agents],
    }


def _split(client: EnclaveClient, key: dict, agents: list[dict]) -> dict:
    return client.split_signed(encrypt(_batch_file(agents), key), week=WEEK, agents=agents).result


def _compute_items(key: dict, n: int) -> list[dict]:
    """At least compute.INLINE_LIMIT items, so the check runs in the pool."""
    agents = [agent(300 + i, prefix=("GE", "CS", "CM")[i % 3]) for i in range(n)]
    return [
        {
            "agent": batch_agent(who),
            "portfolio": encrypt(portfolio(who), key),
            "counterparties": None,
        }
        for who in agents
    ]


def _assert_refused(exc: EnclaveError, secret: str | None = None) -> None:
    assert exc.code == "internal_error", exc
    assert exc.signed  # a signed refusal, like any answer of an unlocked enclave
    if secret is not None:
        assert secret not in str(exc)


def test_a_worker_killed_before_a_split_refuses_it_and_the_next_split_and_compute_succeed(
    enclave, client, key
):
    agents = [agent(10 + n) for n in range(3)]
    assert _split(client, key, agents)["status"] == "accepted"  # the pool is up
    server_cpu = _cpu_seconds(enclave.pid)
    victim = _kill_one_and_wait_for_the_pool_to_break(enclave)
    with pytest.raises(EnclaveError) as refused:
        _split(client, key, agents)
    _assert_refused(refused.value, agents[0]["acronym"])
    # The split was not re-run in the server process: its CPU time barely moved.
    assert _cpu_seconds(enclave.pid) - server_cpu < 0.5
    # The pool is rebuilt on the next call: the same input now succeeds, and so does a compute.
    again = _split(client, key, agents)
    assert again["status"] == "accepted"
    assert [e["portfolio"]["verdict"]["status"] for e in again["agents"]] == ["accepted"] * 3
    assert victim not in _workers(enclave.pid)
    items = _compute_items(key, 40)
    result = client.compute(parameters(), items, network=network_options(scenarios=50, seed=1))
    assert result["counts"] == {"agents": 40, "accepted": 40, "rejected": 0}
    assert client.call("describe")["pools_lost"] >= 1


def test_a_worker_killed_during_a_split_refuses_it_and_the_enclave_keeps_serving(
    enclave, client, key
):
    agents = [agent(400 + n) for n in range(800)]  # seconds of parsing in a worker
    envelope = encrypt(_batch_file(agents), key)
    assert _split(client, key, [agent(20)])["status"] == "accepted"  # the pool is up
    before = {pid: _cpu_seconds(pid) for pid in _wait_for_workers(enclave)}
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = client.split_signed(
                envelope, week=WEEK, agents=agents, timeout=120
            ).result
        except EnclaveError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    # The worker running the split is the one whose CPU time climbs.
    busy = None
    deadline = time.monotonic() + 30
    while busy is None and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
        for pid, cpu in before.items():
            try:
                if _cpu_seconds(pid) - cpu > 0.05:
                    busy = pid
            except OSError:
                continue
    assert busy is not None, f"no worker started the split: {outcome}"
    os.kill(busy, signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    assert "error" in outcome, "the split was answered although its worker was killed"
    _assert_refused(outcome["error"], agents[0]["acronym"])
    # Next requests: a split, a validate and a pooled compute all succeed.
    assert _split(client, key, [agent(21)])["status"] == "accepted"
    who = agent(22)
    verdict = client.validate(encrypt(portfolio(who), key), kind="portfolio", agent=who, week=WEEK)
    assert verdict["status"] == "accepted"
    items = _compute_items(key, 36)
    result = client.compute(parameters(), items, network=network_options(scenarios=50, seed=2))
    assert result["counts"]["accepted"] == 36


def test_a_worker_killed_before_a_pooled_compute_refuses_it_and_the_next_compute_succeeds(
    enclave, client, key
):
    items = _compute_items(key, 40)
    options = network_options(scenarios=50, seed=3)
    assert client.compute(parameters(), items, network=options)["counts"]["accepted"] == 40
    _kill_one_and_wait_for_the_pool_to_break(enclave)
    with pytest.raises(EnclaveError) as refused:
        client.compute(parameters(), items, network=options)
    _assert_refused(refused.value)
    assert client.compute(parameters(), items, network=options)["counts"]["accepted"] == 40
