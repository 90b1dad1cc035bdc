"""Celery task of the trade network upload (thin: look the row up by id, call the service).

Sent on commit by ``trade_network.trade_network_submit``, so a worker never looks for a row that
is not committed. Idempotent (an upload with a verdict is left as it is), acknowledged late,
retried with backoff while the enclave cannot answer. Its only argument is the upload's id: no
envelope, no contract, ever travels through the broker.
"""

from __future__ import annotations

from celery import shared_task

from prudencial.closing import trade_network
from prudencial.submissions.tasks import RETRY


@shared_task(name="closing.validate_trade_network", soft_time_limit=600, time_limit=660, **RETRY)
def validate_trade_network(upload_id: int) -> str | None:
    verdict = trade_network.trade_network_validate(upload_id=upload_id)
    return verdict.status if verdict is not None else None
