"""Cases opened by a closing: one case per breach and one e-mail per recipient, not two on a
retried task or a repeated signal; no case under the band; only the current closing's computed
results; a correction's notes; the delayed closing's e-mail once; nothing confidential out."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import pytest
from django.core import mail
from django.db import connection

from prudencial.alerts import services, tasks
from prudencial.alerts.models import AlertEmail, Case, CaseEvent, CaseState, EmailKind
from prudencial.closing import signals

pytestmark = pytest.mark.django_db


def fire_done(closing, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        signals.closing_done.send(sender=type(closing), closing=closing)


def test_a_breach_opens_one_case_and_one_email_per_recipient_even_when_repeated(
    week,
    agent_a,
    agent_user,
    staff_member,
    make_closing,
    make_result,
    eager,
    django_capture_on_commit_callbacks,
):
    closing = make_closing(week)
    result = make_result(closing, agent_a, fa=1.0, largest=0.1, top_five=0.5)
    fire_done(closing, django_capture_on_commit_callbacks)

    case = Case.objects.get()
    assert (case.leverage_result, case.figure, case.band, case.threshold) == (
        result,
        "fa",
        "alert",
        1.0,
    )
    assert (case.agent, case.week, case.closing, case.state) == (
        agent_a,
        week,
        closing,
        CaseState.OPEN,
    )
    assert case.response_due > case.opened_at
    assert [e.kind for e in case.events.all()] == ["opened"]
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        [agent_user.email.lower(), "analista@ccee.example"]
    )

    # The same signal again, the task retried by hand, the service called once more: nothing new.
    fire_done(closing, django_capture_on_commit_callbacks)
    tasks.open_cases.apply(args=[closing.pk])
    services.cases_open_for_closing(closing_id=closing.pk)
    assert Case.objects.count() == 1
    assert CaseEvent.objects.count() == 1
    assert len(mail.outbox) == 2
    assert set(AlertEmail.objects.values_list("kind", flat=True)) == {
        EmailKind.CASE_AGENT,
        EmailKind.CASE_STAFF,
    }
    assert AlertEmail.objects.filter(sent_at__isnull=True).count() == 0


def test_each_figure_beyond_its_rule_is_its_own_case(
    week, agent_a, agent_user, make_closing, make_result, settings
):
    settings.ALERTS_STAFF_EMAILS = ["risco@ccee.example", "RISCO@ccee.example"]
    closing = make_closing(week)
    make_result(closing, agent_a, fa=0.8, largest=0.2500001, top_five=1.5)
    services.cases_open_for_closing(closing_id=closing.pk)
    cases = {c.figure: c for c in Case.objects.all()}
    assert set(cases) == {"fa", "concentration_largest", "concentration_top_five"}
    assert cases["fa"].band == "attention"
    assert cases["concentration_largest"].band == ""
    assert cases["concentration_largest"].threshold == 0.25
    # 3 cases × (the agent's user + one staff address, the listed one once).
    assert len(mail.outbox) == 6
    assert {m.to[0] for m in mail.outbox} == {agent_user.email.lower(), "risco@ccee.example"}


def test_no_case_under_the_band_nor_at_a_limit(
    week, agent_a, agent_user, make_closing, make_result
):
    closing = make_closing(week)
    make_result(closing, agent_a, fa=0.7999, largest=0.25, top_five=1.0)
    assert services.cases_open_for_closing(closing_id=closing.pk) == []
    assert Case.objects.count() == 0
    assert mail.outbox == []


@pytest.mark.parametrize("status", ["no_fa", "rejected", "error", "missing"])
def test_only_computed_results_open_cases(status, week, agent_a, make_closing, make_result):
    closing = make_closing(week)
    # Concentration figures present, no FA (the closing's constraint: FA only when computed).
    make_result(closing, agent_a, status=status, largest=0.9, top_five=2.0)
    services.cases_open_for_closing(closing_id=closing.pk)
    assert Case.objects.count() == 0


@pytest.mark.parametrize(
    ("state", "current"), [("done", False), ("superseded", False), ("storing", False)]
)
def test_a_closing_not_current_opens_nothing(
    state, current, week, agent_a, make_closing, make_result
):
    closing = make_closing(week, state=state, is_current=current)
    make_result(closing, agent_a, fa=3.0)
    services.cases_open_for_closing(closing_id=closing.pk)
    assert Case.objects.count() == 0


def test_a_correction_notes_the_old_cases_and_opens_its_own(
    week, agent_a, agent_user, make_closing, make_result
):
    first = make_closing(week)
    make_result(first, agent_a, fa=1.4)
    services.cases_open_for_closing(closing_id=first.pk)
    old = Case.objects.get()

    first.is_current = False
    first.state = "superseded"
    first.save()
    second = make_closing(week, sequence=2, supersedes=first, reason="PLD corrigido")
    make_result(second, agent_a, fa=0.9)
    services.cases_open_for_closing(closing_id=second.pk)
    services.cases_open_for_closing(closing_id=second.pk)  # again: one note only

    old.refresh_from_db()
    assert old.state == CaseState.OPEN  # stays, with its history
    notes = [e for e in old.events.all() if e.kind == "note"]
    assert len(notes) == 1
    assert "correção 2" in notes[0].text
    new = Case.objects.exclude(pk=old.pk).get()
    assert (new.closing, new.band) == (second, "attention")
    # The old closing's task redelivered late opens nothing for it any more.
    services.cases_open_for_closing(closing_id=first.pk)
    assert Case.objects.count() == 2


def test_the_deadline_counts_business_days_in_brasilia(week, agent_a, make_closing, make_result):
    from prudencial.submissions.timefmt import BRASILIA

    opened = datetime(2026, 12, 4, 22, 30, tzinfo=BRASILIA)  # Friday evening
    due = services.response_due(opened, 5)
    assert due == datetime(2026, 12, 11, 23, 59, 59, tzinfo=BRASILIA)
    closing = make_closing(week)
    make_result(closing, agent_a, fa=2.0)
    services.cases_open_for_closing(closing_id=closing.pk)
    case = Case.objects.get()
    local = case.response_due.astimezone(BRASILIA)
    assert (local.hour, local.minute) == (23, 59)


def test_the_parameters_are_those_the_closing_used(week, agent_a, make_closing, make_result):
    """A closing pinned to an earlier parameters version judges by it, not by today's."""
    from prudencial.services.parameters import parameters_save

    version = week.parameters.history.latest().history_id  # bands from 0.8 / 1.0
    parameters_save(week=week, fields={"fa_bands": [{"code": "alert", "from": 5.0}]}, buckets={})
    closing = make_closing(week, parameters_version=version)
    make_result(closing, agent_a, fa=1.1)
    services.cases_open_for_closing(closing_id=closing.pk)
    assert Case.objects.get().band == "alert"
    assert Case.objects.get().threshold == 1.0


def test_only_users_in_force_with_a_confirmed_address_are_emailed(
    week, agent_a, agent_user, make_closing, make_result, settings
):
    from datetime import timedelta

    from tests.factories import UserFactory, grant, today

    settings.ALERTS_STAFF_EMAILS = ["risco@ccee.example"]
    ended = UserFactory(username="saiu")
    grant(
        ended,
        agent_a,
        valid_from=today() - timedelta(days=60),
        valid_until=today() - timedelta(days=1),
    )
    unconfirmed = UserFactory(username="nao.confirmou", email_confirmed=False)
    grant(unconfirmed, agent_a)
    inactive = UserFactory(username="inativo")
    grant(inactive, agent_a)
    inactive.is_active = False
    inactive.save()
    future = UserFactory(username="futuro")
    grant(future, agent_a, valid_from=today() + timedelta(days=3))
    closing = make_closing(week)
    make_result(closing, agent_a, fa=1.2)
    services.cases_open_for_closing(closing_id=closing.pk)
    assert {m.to[0] for m in mail.outbox} == {agent_user.email.lower(), "risco@ccee.example"}


def test_two_deliveries_at_once_open_one_case_and_send_one_email_each(transactional_db, settings):
    """Two workers running the same task concurrently (PostgreSQL): the constraints and the
    row lock leave one case and one e-mail per address."""
    from prudencial.closing.models import Closing, LeverageResult
    from tests.alerts.conftest import build
    from tests.factories import AgentFactory, UserFactory, grant, week_with_parameters

    settings.ALERTS_STAFF_EMAILS = ["risco@ccee.example"]
    week = week_with_parameters()
    agent = AgentFactory(acronym="AGC")
    grant(UserFactory(username="joana"), agent)
    closing = build(Closing, week=week, sequence=1, state="done", is_current=True)
    build(
        LeverageResult, {type(week): week}, closing=closing, agent=agent, status="computed", fa=2.0
    )

    barrier = threading.Barrier(2)
    errors = []

    def run():
        try:
            barrier.wait()
            services.cases_open_for_closing(closing_id=closing.pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Case.objects.count() == 1
    assert CaseEvent.objects.count() == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["joana@example.com", "risco@ccee.example"]


def test_the_delayed_closing_emails_staff_once(
    week, staff_member, make_closing, eager, django_capture_on_commit_callbacks, settings
):
    from django.utils import timezone

    closing = make_closing(week, state="delayed", is_current=False, delayed_at=timezone.now())
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            signals.closing_delayed.send(sender=type(closing), closing=closing)
    tasks.notify_delayed.apply(args=[closing.pk])
    assert [m.to for m in mail.outbox] == [["analista@ccee.example"]]
    assert week.code in mail.outbox[0].subject
    assert "atrasado" in mail.outbox[0].subject
    assert AlertEmail.objects.get().kind == EmailKind.CLOSING_DELAYED
    # A listed address added later gets its own e-mail, once; the group's is not repeated.
    settings.ALERTS_STAFF_EMAILS = ["plantao@ccee.example"]
    services.closing_delayed_notify(closing_id=closing.pk)
    services.closing_delayed_notify(closing_id=closing.pk)
    assert [m.to for m in mail.outbox] == [["analista@ccee.example"], ["plantao@ccee.example"]]


def test_a_closing_that_was_never_delayed_sends_nothing(week, staff_member, make_closing):
    closing = make_closing(week, state="done")
    assert services.closing_delayed_notify(closing_id=closing.pk) == 0
    assert mail.outbox == []


def test_emails_and_logs_carry_no_value(
    week, agent_a, agent_user, staff_member, make_closing, make_result, caplog
):
    """Canary: the figure's value (and so nothing derived from the agent's R$ figures) appears
    in no e-mail and no log line; the e-mail names the band and the deadline."""
    closing = make_closing(week)
    make_result(closing, agent_a, fa=1.2345678, largest=0.3456789, top_five=0.5)
    with caplog.at_level(logging.DEBUG):
        services.cases_open_for_closing(closing_id=closing.pk)
    assert len(mail.outbox) == 4
    text = "\n".join(m.subject + m.body for m in mail.outbox) + caplog.text
    for canary in ("1.2345678", "1,2345678", "1,23", "1.23", "0.3456789", "0,3456", "34,5", "34.5"):
        assert canary not in text
    agent_mail = next(m for m in mail.outbox if m.to == [agent_user.email.lower()])
    assert "faixa alerta" in agent_mail.body
    assert "/api/v1/cases/" in agent_mail.body
    staff_mail = next(m for m in mail.outbox if m.to == ["analista@ccee.example"])
    assert "acima do limite de 25 % do PLA" in "\n".join(
        m.body for m in mail.outbox if m.to == ["analista@ccee.example"]
    )
    assert "/admin/alerts/case/" in staff_mail.body


def test_the_language_is_the_users_when_known_else_pt_br(agent_user):
    """The platform keeps no language per user today (the switcher is a cookie): e-mails are
    pt-BR; a user that carries a known choice gets it, an unknown code falls back to pt-BR."""
    assert services._language(agent_user) == "pt-br"
    agent_user.language = "en"
    assert services._language(agent_user) == "en"
    agent_user.language = "xx"
    assert services._language(agent_user) == "pt-br"


def test_the_tasks_survive_a_lost_worker():
    """Redelivered, not lost, when a worker dies mid-task (safe: the services are idempotent),
    and inside the broker's visibility timeout."""
    from django.conf import settings

    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    for task in (tasks.open_cases, tasks.notify_delayed):
        assert task.acks_late and task.reject_on_worker_lost
        assert task.time_limit < visibility
