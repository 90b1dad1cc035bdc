"""The enclave's staged batches: a few slots, parameter sets pinned per week.

In-process (no socket): BatchOps's rules on their own, with the clock and the parameters'
parser replaced so each rule is reached exactly."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from enclave_bridge.enclave import batches
from enclave_bridge.wire.protocol import E_BAD_REQUEST, E_BUSY, ProtocolError


class Ops(batches.BatchOps):
    def __init__(self) -> None:
        self._state_lock = threading.Lock()
        self._batches = {}
        self._week_parameters = {}


@pytest.fixture
def ops(monkeypatch):
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(batches.time, "monotonic", lambda: clock.now)
    monkeypatch.setattr(batches, "parse_parameters", lambda raw: SimpleNamespace(week=raw["week"]))
    ops = Ops()
    ops.clock = clock
    return ops


def open_batch(ops, **parameters):
    request = SimpleNamespace(args={"parameters": {"week": "202303001", **parameters}})
    return ops.op_batch_open(request)["batch"]


def test_a_full_house_of_fresh_batches_is_busy(ops):
    for _ in range(batches.MAX_OPEN_BATCHES):
        open_batch(ops)
    ops.clock.now += batches.BATCH_EVICT_IDLE_SECONDS  # idle, but not past the limit
    with pytest.raises(ProtocolError) as refused:
        open_batch(ops)
    assert refused.value.code == E_BUSY


def test_a_batch_left_behind_by_a_killed_worker_gives_way_to_a_new_one(ops):
    first = open_batch(ops)
    ops.clock.now += 10
    others = [open_batch(ops) for _ in range(batches.MAX_OPEN_BATCHES - 1)]
    ops.clock.now += batches.BATCH_EVICT_IDLE_SECONDS + 5  # all idle; the first the longest
    ops._batch(others[0])  # touched: in use again
    new = open_batch(ops)
    assert first not in ops._batches and new in ops._batches
    assert set(others) <= set(ops._batches)
    assert len(ops._batches) == batches.MAX_OPEN_BATCHES


def test_a_week_takes_the_closing_and_two_corrections_parameters_and_no_more(ops):
    for i in range(batches.MAX_PARAMETER_SETS_PER_WEEK):
        batch = open_batch(ops, version=i)
        assert ops._batches[batch].parameters_sha256  # the answer names its own set
        ops._batches.clear()
        open_batch(ops, version=i)  # the same set again is no new one
        ops._batches.clear()
    with pytest.raises(ProtocolError) as refused:
        open_batch(ops, version="crafted")
    assert refused.value.code == E_BAD_REQUEST
    assert "3 parameter sets" in refused.value.message
    open_batch(ops, week="202303002", version="crafted")  # another week is not affected
