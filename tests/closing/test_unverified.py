"""The gather's guard: a stored verdict that says "accepted" but no longer verifies (its signing
key not trusted with this deployment's settings, or the row altered) must not turn an agent who
sent its data into "missing" unnoticed. By default the closing fails naming the agents, and
staff are e-mailed; CLOSING_UNVERIFIED_VERDICTS="missing" goes on and keeps the message."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured

from prudencial.closing import services
from prudencial.closing.models import Closing, LeverageResult
from tests.closing.conftest import make_week, past_deadline

pytestmark = pytest.mark.django_db


def _submission(week, agent, user, *, version: int = 1, kind: str = "portfolio"):
    from prudencial.submissions.models import Submission

    envelope = f"h.k.iv.{uuid.uuid4().hex}.t"
    return Submission.objects.create(
        week=week,
        agent=agent,
        kind=kind,
        version=version,
        channel="api",
        submitted_by=user,
        size_bytes=len(envelope),
        receipt=hashlib.sha256(envelope.encode()).hexdigest(),
        envelope=envelope,
    )


def _verdict_nobody_signed(submission) -> None:
    """An "accepted" verdict whose signature names a key no attestation vouches for."""
    from prudencial.submissions.models import Verdict

    Verdict.objects.create(
        submission=submission,
        status="accepted",
        source="validate",
        signing_kid="a-key-nobody-attested",
        token="a.b.c",
        args={"kind": "portfolio"},
        args_sha256="0" * 64,
    )


@pytest.fixture
def closed_week(settings):
    """A closed week, two agents: CM47's portfolio verdict says "accepted" with a signature
    that names a key no attestation vouches for; GE12 sent nothing."""
    from prudencial.services.weeks import week_close
    from tests.factories import AgentFactory, UserFactory, grant

    settings.ALERTS_STAFF_EMAILS = ["plantao@ccee.example"]
    week = make_week(date(2023, 3, 1), pld=False)
    past_deadline(week)
    week_close(week=week)
    trader = AgentFactory(acronym="CM47", agent_class="trader")
    AgentFactory(acronym="GE12", agent_class="generator")
    user = UserFactory(username="envia.dados")
    grant(user, trader)
    _verdict_nobody_signed(_submission(week, trader, user))
    return week


def test_the_default_fails_the_closing_naming_the_agent_and_emails_staff(
    closed_week, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        closing = services.closing_start(week=closed_week)
    closing.refresh_from_db()
    assert closing.state == "failed"
    assert closing.error_code == "unverified_verdicts"
    assert "CM47 portfolio v1" in closing.error_message
    assert "GE12" not in closing.error_message  # sent nothing: plainly missing, not unverified
    assert not LeverageResult.objects.filter(closing=closing).exists()  # nothing half-written
    [email] = mail.outbox
    assert email.to == ["plantao@ccee.example"]
    assert closed_week.code in email.subject and "falha" in email.subject
    assert "unverified_verdicts" in email.body and "CM47 portfolio v1" in email.body
    assert "Iniciar de novo" in email.body  # the control that exists
    # A repeated signal or task sends nothing more.
    from prudencial.alerts import services as alert_services

    assert alert_services.closing_failed_notify(closing_id=closing.pk) == 0
    assert len(mail.outbox) == 1
    # Started again (the cause not fixed): it fails again, and staff are told again.
    with django_capture_on_commit_callbacks(execute=True):
        again = services.closing_start(week=closed_week)
    again.refresh_from_db()
    assert again.pk == closing.pk and again.state == "failed"
    assert len(mail.outbox) == 2


def test_staff_start_a_failed_closing_again_from_the_admin(
    closed_week, eager, django_capture_on_commit_callbacks, client
):
    from django.urls import reverse

    from tests.factories import UserFactory

    with django_capture_on_commit_callbacks(execute=True):
        closing = services.closing_start(week=closed_week)
    url = reverse("admin:closing_closing_changelist")
    action = {"action": "restart_failed", "_selected_action": [closing.pk]}
    client.force_login(UserFactory(username="sem.permissao.fech", is_staff=True))
    assert client.post(url, action).status_code == 403  # no view permission at all
    client.force_login(UserFactory(username="ccee.reinicia", is_staff=True, is_superuser=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, action)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:closing_closing_change", args=[closing.pk])
    closing.refresh_from_db()
    assert closing.state == "failed" and closing.started_by.username == "ccee.reinicia"
    Closing.objects.filter(pk=closing.pk).update(state="done")
    refused = client.post(url, action, follow=True)
    assert "Só um fechamento com falha" in refused.content.decode()


def test_the_missing_rule_goes_on_and_keeps_the_warning_to_the_end(closed_week, settings):
    settings.CLOSING_UNVERIFIED_VERDICTS = "missing"
    closing = Closing.objects.create(week=closed_week, sequence=1)
    services.closing_gather(closing_id=closing.pk)
    closing.refresh_from_db()
    assert closing.state == "network"  # no agent to compute: straight to the network step
    assert closing.error_code == "" and closing.warnings[0]["code"] == "unverified_verdicts"
    assert "CM47 portfolio v1" in closing.warnings[0]["message"]
    statuses = dict(
        LeverageResult.objects.filter(closing=closing).values_list("agent__acronym", "status")
    )
    assert statuses == {"CM47": "missing", "GE12": "missing"}
    assert mail.outbox == []
    Closing.objects.filter(pk=closing.pk).update(state="storing")  # the network step skipped
    services.closing_finish(closing_id=closing.pk)
    closing.refresh_from_db()
    assert closing.state == "done" and closing.warnings[0]["code"] == "unverified_verdicts"


def test_an_unknown_rule_is_refused_by_name_and_at_start_up(closed_week, settings):
    from prudencial.closing.apps import check_settings

    assert check_settings() == []
    settings.CLOSING_UNVERIFIED_VERDICTS = "ignore"
    [error] = check_settings()
    assert error.id == "closing.E001" and "CLOSING_UNVERIFIED_VERDICTS='ignore'" in error.msg
    closing = Closing.objects.create(week=closed_week, sequence=1)
    with pytest.raises(ImproperlyConfigured, match="CLOSING_UNVERIFIED_VERDICTS='ignore'"):
        services.closing_gather(closing_id=closing.pk)


def test_current_submissions_lists_the_versions_that_do_not_verify(closed_week, monkeypatch):
    """The state of an (agent, kind) names its versions whose verdict does not verify and that
    could be the one to use: all of them without a current version, only newer ones with."""
    from prudencial.models import Agent
    from prudencial.submissions import selectors

    trader = Agent.objects.get(acronym="CM47")
    states = selectors.current_submissions(week=closed_week, agent_ids=[trader.pk])
    state = states[(trader.pk, "portfolio")]
    assert state["status"] == "unverified" and state["unverified"] == [1]
    assert not state["is_current"]
    # Versions 2 (verifies, stood in for by the check) and 3 (does not) on top of version 1.
    user = selectors.Submission.objects.get(agent=trader).submitted_by
    for version in (2, 3):
        _verdict_nobody_signed(_submission(closed_week, trader, user, version=version))
    original = selectors.VerdictChecker.check

    def check(self, submission):
        if submission.version == 2:
            return selectors.CheckedVerdict("accepted", True)
        return original(self, submission)

    monkeypatch.setattr(selectors.VerdictChecker, "check", check)
    state = selectors.current_submissions(week=closed_week, agent_ids=[trader.pk])[
        (trader.pk, "portfolio")
    ]
    assert state["is_current"] and state["version"] == 2
    assert state["unverified"] == [3]  # version 1 is older than the one in use
