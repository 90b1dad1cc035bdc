"""Celery tasks of the submissions (thin: look the row up by id, call a service).

Both are sent with ``delay_on_commit`` by the services, so a worker never looks for a row that
is not committed. They are idempotent (a submission with a verdict, a processed batch, are left
as they are), acknowledged late (a worker that dies mid-task leaves the message to another), and
retried with exponential backoff and jitter while the enclave cannot answer; an enclave that
answers ``internal_error`` is counted, and after PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS the service
stores a refusal verdict (a batch: rejected), so beat's dispatch_pending stops re-sending it
(services.EnclaveAttempt). Their only argument
is the row's id: no envelope, no payload, ever travels through the broker.
"""

from __future__ import annotations

from celery import shared_task

from prudencial.submissions import services

RETRY = {
    "autoretry_for": (services.EnclaveUnavailable,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 12,  # about 30 minutes of an unreachable enclave
    "acks_late": True,
    "reject_on_worker_lost": True,
}


@shared_task(name="submissions.validate_submission", **RETRY)
def validate_submission(submission_id: int) -> str | None:
    verdict = services.submission_validate(submission_id=submission_id)
    return verdict.status if verdict is not None else None


@shared_task(name="submissions.process_batch", soft_time_limit=600, time_limit=660, **RETRY)
def process_batch(batch_id: int) -> str | None:
    batch = services.batch_process(batch_id=batch_id)
    return batch.status if batch is not None else None


@shared_task(name="submissions.dispatch_pending")
def dispatch_pending() -> dict[str, int]:
    """Beat: re-send what still waits for the enclave after 10 minutes."""
    return services.pending_dispatch()
