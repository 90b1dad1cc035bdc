"""Celery tasks: thin wrappers around services, idempotent, safe to run twice.

Beat sends these (django-celery-beat, `manage.py sync_schedules`). Code that sends a task from a
write sends it with `.delay_on_commit()` (every task here is Celery's DjangoTask), so a worker
never looks for a row that is not committed yet.
"""

from celery import shared_task

from prudencial.services import representations, weeks


@shared_task(name="prudencial.tasks.open_due_weeks")
def open_due_weeks() -> list[str]:
    return weeks.open_due_weeks()


@shared_task(name="prudencial.tasks.close_due_weeks")
def close_due_weeks() -> list[str]:
    return weeks.close_due_weeks()


@shared_task(name="prudencial.tasks.expire_representations")
def expire_representations() -> int:
    return representations.expire_representations()
