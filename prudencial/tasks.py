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


@shared_task(name="prudencial.tasks.admin_import", acks_late=True)
def admin_import(job_id: str) -> str | None:
    """A large admin import's preview or import (prudencial.admin.imports); its progress is
    written to the job, which the admin's job page reads."""
    from prudencial.admin.imports import run_import_job

    job = run_import_job(job_id)
    return job["state"] if job else None
