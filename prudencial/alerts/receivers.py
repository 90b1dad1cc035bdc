"""Receivers of the closing's signals (connected in AlertsConfig.ready()): each enqueues a task
with the closing's id, after the current transaction commits, so a worker never looks for a
closing that is not committed. The closing app never imports this one."""

from __future__ import annotations

from prudencial.alerts import tasks


def on_closing_done(sender, closing, **kwargs) -> None:
    tasks.open_cases.delay_on_commit(closing.pk)


def on_closing_delayed(sender, closing, **kwargs) -> None:
    tasks.notify_delayed.delay_on_commit(closing.pk)


def on_closing_failed(sender, closing, **kwargs) -> None:
    tasks.notify_failed.delay_on_commit(closing.pk)
