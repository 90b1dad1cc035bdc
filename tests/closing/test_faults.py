"""Faults during a closing: the worker's child killed (SIGKILL) at random points, the enclave
process killed and restarted, two enclaves and two workers instead of one, an enclave that
stays unavailable. Each ends in results equal to an uninterrupted run, with no duplicate row
(unique constraints) and no figure invented."""

from __future__ import annotations

import random
import time

import pytest

from prudencial.closing import services
from prudencial.closing.models import ChunkState, Closing, ClosingChunk, LeverageResult
from tests.closing.conftest import (
    closing_state,
    communities_snapshot,
    past_deadline,
    results_snapshot,
    second_enclave,
    wait_done,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _reference(market, group):
    """The week's closing run without faults: what every faulty run must reproduce."""
    past_deadline(market.week)
    first = services.closing_start(week=market.week, by=market.staff)
    wait_done(first.pk, group)
    return first, results_snapshot(first.pk), communities_snapshot(first.pk)


def _rerun(market, why="nova execução sob falhas"):
    return services.closing_correct(week=market.week, by=market.staff, why=why)


def _assert_same(closing_id, market, reference_results, reference_communities):
    assert results_snapshot(closing_id) == reference_results
    assert communities_snapshot(closing_id) == reference_communities
    assert LeverageResult.objects.filter(closing_id=closing_id).count() == len(market.agents)
    closing = Closing.objects.get(pk=closing_id)
    assert closing.agents_done == closing.agents_total == len(market.agents)


def test_worker_child_killed_ten_times_at_random_points(market, workers):
    group = workers(CLOSING_CHUNK_AGENTS="5")  # 46 chunks: many tasks to die in
    first, results, communities = _reference(market, group)
    rerun = _rerun(market)
    rng = random.Random(20230301)
    kills = 0
    while kills < 10:
        time.sleep(rng.uniform(0.05, 0.8))
        if closing_state(rerun.pk) in ("done", "failed", "delayed"):
            # Finished before ten kills: run it again and keep killing.
            wait_done(rerun.pk, group)
            _assert_same(rerun.pk, market, results, communities)
            rerun = _rerun(market, why=f"nova execução {kills}")
            continue
        if group.kill_child() is not None:
            kills += 1
            wait_until(lambda: group.children(), group, what="a new pool child")
    wait_done(rerun.pk, group, timeout=400)
    _assert_same(rerun.pk, market, results, communities)
    assert "WorkerLostError" in group.log_text() or "SIGKILL" in group.log_text()


def test_enclave_killed_and_restarted_mid_closing(market, workers, stack):
    group = workers(CLOSING_CHUNK_AGENTS="5")
    first, results, communities = _reference(market, group)
    rerun = _rerun(market)
    wait_until(
        lambda: Closing.objects.get(pk=rerun.pk).agents_done > 20,
        group,
        what="a few chunks answered",
    )
    stack.restart_enclave()
    wait_done(rerun.pk, group, timeout=400)
    _assert_same(rerun.pk, market, results, communities)


def test_two_enclaves_and_two_workers_give_the_same_results(market, workers, stack):
    one = workers()
    first, results, communities = _reference(market, one)
    one.stop()
    other = second_enclave(stack)
    try:
        two = workers(addresses=[stack.address, other.address], count=2)
        rerun = _rerun(market)
        wait_done(rerun.pk, two)
        _assert_same(rerun.pk, market, results, communities)
        addresses = set(
            ClosingChunk.objects.filter(closing=rerun).values_list("address", flat=True)
        )
        assert addresses == {stack.address, other.address}
    finally:
        other.stop()


def test_an_unavailable_enclave_delays_the_closing_and_invents_nothing(
    market, workers, stack, settings
):
    down = workers(addresses=["unix:/nonexistent/enclave.sock"], CLOSING_ENCLAVE_DELAY_MINUTES="0")
    past_deadline(market.week)
    closing = services.closing_start(week=market.week, by=market.staff)
    wait_until(lambda: closing_state(closing.pk) == "delayed", down, what="delayed")
    closing.refresh_from_db()
    assert closing.delayed_at and closing.error_code == "enclave_unavailable"
    assert not LeverageResult.objects.filter(closing=closing).exclude(status="missing").exists()
    assert market.week.__class__.objects.get(pk=market.week.pk).status == "closed"
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="nenhuma regra o estima"):
        services.closing_choose_degraded(closing=closing, rule="without_network", by=market.staff)
    down.stop()
    # The enclave is back: beat's resume sends the pending chunks again and the closing ends.
    up = workers()
    settings.CLOSING_STALL_SECONDS = 0
    assert services.closing_resume_stalled() == {"delayed": 1}
    # Still "delayed" until a resent chunk is answered: wait for it to move on, then to end.
    wait_until(lambda: closing_state(closing.pk) != "delayed", up, what="the resume")
    wait_done(closing.pk, up)
    assert not ClosingChunk.objects.filter(closing=closing).exclude(state=ChunkState.DONE).exists()
