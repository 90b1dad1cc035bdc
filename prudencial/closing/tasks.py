"""Celery tasks of the weekly closing (thin: an id in, a service step called).

    run_closing(id) ─ gather ─► group(closing_chunk(id, i) for each chunk, round-robin over
                                      ENCLAVE_ADDRESSES) ─► the last chunk done (atomic check)
                                 ─► closing_network(id) ─► closing_finish(id)

Every task is acknowledged late and rejected back to the queue when its worker process dies
(``reject_on_worker_lost``): another worker runs it again, and each step is idempotent (a
conditional state UPDATE, unique constraints), so the outcome equals an uninterrupted run. Time
limits stay below the broker's visibility timeout (CELERY_BROKER_TRANSPORT_OPTIONS), or Redis
would hand a still-running task to a second worker (tests/closing/test_faults.py checks it).
While the enclave cannot answer, a chunk or the network step retries with backoff, each retry on
the next enclave address; past CLOSING_ENCLAVE_DELAY_MINUTES without progress the closing is
marked delayed and the task stops (beat's resume_stalled_closings tries it again later).
Only ids travel through the broker: no envelope, no figure.
"""

from __future__ import annotations

import logging

from celery import shared_task

from prudencial.closing import services

logger = logging.getLogger(__name__)

RELIABLE = {"acks_late": True, "reject_on_worker_lost": True}
# Soft/hard limits per task, in seconds (all below the 3600 s visibility timeout).
LIMITS = {
    "run_closing": (900, 960),
    "closing_chunk": (600, 660),
    "closing_network": (1500, 1560),
    "closing_finish": (120, 180),
}
RETRY_BACKOFF_MAX = 120
MAX_RETRIES = 200  # bounded; the delay (CLOSING_ENCLAVE_DELAY_MINUTES) stops it first


def _current_queue() -> str | None:
    """The queue the running task came from (None outside a task): a closing's next steps go to
    the queue its first step was taken from, so workers dedicated to a queue keep its closing."""
    from celery import current_task

    if not current_task or current_task.request.id is None:  # a proxy: falsy outside a task
        return None
    return (current_task.request.delivery_info or {}).get("routing_key") or None


def send(signature) -> None:
    """Send a signature (or group) to the current task's queue, else the default one."""
    queue = _current_queue()
    if queue:
        signature.apply_async(queue=queue)
    else:
        signature.apply_async()


def _limits(name: str) -> dict[str, int]:
    soft, hard = LIMITS[name]
    return {"soft_time_limit": soft, "time_limit": hard}


def _countdown(retries: int) -> int:
    return min(RETRY_BACKOFF_MAX, 2 ** min(retries, 7))


@shared_task(name="closing.run_closing", **RELIABLE, **_limits("run_closing"))
def run_closing(closing_id: int) -> str:
    """Gather, then fan the chunks out (or go straight to the network step when there are
    none)."""
    closing = services.closing_gather(closing_id=closing_id)
    if closing is None:
        return "missing"
    if closing.state == "checking":
        services.dispatch_chunks(closing_id)
    elif closing.state == "network":
        send(closing_network.s(closing_id))
    return closing.state


@shared_task(bind=True, name="closing.closing_chunk", **RELIABLE, **_limits("closing_chunk"))
def closing_chunk(self, closing_id: int, index: int) -> str:
    """One chunk on the enclave at address[(index + retries) % n]: fails over on retry."""
    address = services.address_for(index, self.request.retries)
    try:
        return services.closing_chunk_compute(closing_id=closing_id, index=index, address=address)
    except services.EnclaveUnavailable as exc:
        if services.closing_is_delayed(closing_id):
            logger.warning("closing %s chunk %s: delayed, no more retries", closing_id, index)
            return "delayed"
        logger.warning("closing %s chunk %s: %s on %s; retrying", closing_id, index, exc, address)
        raise self.retry(
            countdown=_countdown(self.request.retries), max_retries=MAX_RETRIES
        ) from None


@shared_task(bind=True, name="closing.closing_network", **RELIABLE, **_limits("closing_network"))
def closing_network(self, closing_id: int) -> str:
    """The network step, where the whole network is (one enclave; fails over on retry)."""
    address = services.address_for(0, self.request.retries)
    try:
        return services.closing_network_step(closing_id=closing_id, address=address)
    except services.EnclaveUnavailable as exc:
        if services.closing_is_delayed(closing_id):
            return "delayed"
        logger.warning("closing %s network: %s on %s; retrying", closing_id, exc, address)
        raise self.retry(
            countdown=_countdown(self.request.retries), max_retries=MAX_RETRIES
        ) from None


@shared_task(name="closing.closing_finish", **RELIABLE, **_limits("closing_finish"))
def closing_finish(closing_id: int) -> str:
    return services.closing_finish(closing_id=closing_id).state


@shared_task(name="closing.start_due_closings", **RELIABLE)
def start_due_closings() -> list[str]:
    """Beat: close due weeks, start their closings."""
    return services.start_due_closings()


@shared_task(name="closing.resume_stalled_closings", **RELIABLE)
def resume_stalled_closings() -> dict[str, int]:
    """Beat (every minute): send again the next step of closings that stopped moving."""
    return services.closing_resume_stalled()


@shared_task(name="closing.publish_due_weeks", **RELIABLE)
def publish_due_weeks() -> list[str]:
    """Beat: computed weeks become published at deadline + CLOSING_PUBLICATION_DELAY_HOURS."""
    return services.publish_due_weeks()
