"""Celery tasks of the alerts (thin: look the closing up by id, call a service).

Their only argument is the closing's id. Acknowledged late and re-queued when a worker dies
(``reject_on_worker_lost``), which is safe: the services open each case once and send each
e-mail once (database constraints), so a redelivery only finishes what the first run left.
A transient failure (the SMTP server, the database) is retried with backoff.
"""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task
from django.db import OperationalError

from prudencial.alerts import services

RETRY = {
    "autoretry_for": (SMTPException, ConnectionError, TimeoutError, OperationalError),
    "retry_backoff": 5,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 10,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "soft_time_limit": 600,
    "time_limit": 660,
}


@shared_task(name="alerts.open_cases", **RETRY)
def open_cases(closing_id: int) -> int:
    """The cases of a done closing's results, and their e-mails."""
    return len(services.cases_open_for_closing(closing_id=closing_id))


@shared_task(name="alerts.notify_delayed", **RETRY)
def notify_delayed(closing_id: int) -> int:
    """Staff's e-mail about a delayed closing (once per closing and address)."""
    return services.closing_delayed_notify(closing_id=closing_id)


@shared_task(name="alerts.notify_failed", **RETRY)
def notify_failed(closing_id: int) -> int:
    """Staff's e-mail about a failed closing (once per closing and address)."""
    return services.closing_failed_notify(closing_id=closing_id)
