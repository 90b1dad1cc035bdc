"""Install settings.PRUDENCIAL_BEAT_SCHEDULE into django-celery-beat's tables (PeriodicTask and
CrontabSchedule / IntervalSchedule), where staff can see and adjust them in the admin.

Idempotent. A task that already exists keeps what staff changed (enabled, schedule); only its
task path is brought up to date. --force rewrites the schedule and re-enables every task.
Run it after `migrate` on every deployment; beat itself never writes these entries (see the
setting's comment in config/settings/base.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.schedules import crontab, schedule
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


def _schedule_fields(entry_schedule: Any) -> dict[str, Any]:
    """The PeriodicTask foreign key (crontab or interval) for a Celery schedule."""
    if isinstance(entry_schedule, crontab):
        cron = CrontabSchedule.from_schedule(entry_schedule)
        cron.timezone = settings.CELERY_TIMEZONE
        if cron.pk is None:
            cron.save()
        return {"crontab": cron, "interval": None}
    if isinstance(entry_schedule, int | float | timedelta):
        seconds = (
            entry_schedule.total_seconds()
            if isinstance(entry_schedule, timedelta)
            else entry_schedule
        )
        entry_schedule = schedule(run_every=timedelta(seconds=seconds))
    if isinstance(entry_schedule, schedule):
        interval = IntervalSchedule.from_schedule(entry_schedule)
        if interval.pk is None:
            interval.save()
        return {"interval": interval, "crontab": None}
    raise CommandError(f"Tipo de agendamento não suportado: {entry_schedule!r}")


@transaction.atomic
def sync_schedules(*, force: bool = False) -> dict[str, str]:
    """Create missing periodic tasks; returns name → "criada" / "atualizada" / "mantida"."""
    outcome: dict[str, str] = {}
    for name, entry in settings.PRUDENCIAL_BEAT_SCHEDULE.items():
        existing = PeriodicTask.objects.filter(name=name).first()
        if existing is None:
            PeriodicTask.objects.create(
                name=name, task=entry["task"], enabled=True, **_schedule_fields(entry["schedule"])
            )
            outcome[name] = "criada"
            continue
        changed = []
        if existing.task != entry["task"]:
            existing.task = entry["task"]
            changed.append("task")
        if force:
            for field, value in _schedule_fields(entry["schedule"]).items():
                setattr(existing, field, value)
            existing.enabled = True
            changed += ["crontab", "interval", "enabled"]
        if changed:
            existing.save()
            outcome[name] = "atualizada"
        else:
            outcome[name] = "mantida"
    return outcome


class Command(BaseCommand):
    help = "Instala settings.PRUDENCIAL_BEAT_SCHEDULE nas tabelas do django-celery-beat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Reescreve agendamento e reativa tarefas já existentes (desfaz ajustes da equipe).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name, state in sync_schedules(force=options["force"]).items():
            self.stdout.write(f"{name}: {state}")
        self.stdout.write(self.style.SUCCESS("Agendamentos sincronizados."))
