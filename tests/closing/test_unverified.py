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


@pytest.fixture
def closed_week(settings):
    """A closed week, two agents: CM47's portfolio verdict says "accepted" with a signature
    that names a key no attestation vouches for; GE12 sent nothing."""
    from prudencial.services.weeks import week_close
    from prudencial.submissions.models import Verdict
    from tests.factories import AgentFactory, UserFactory, grant

    settings.ALERTS_STAFF_EMAILS = ["plantao@ccee.example"]
    week = make_week(date(2023, 3, 1), pld=False)
    past_deadline(week)
    week_close(week=week)
    trader = AgentFactory(acronym="CM47", agent_class="trader")
    AgentFactory(acronym="GE12", agent_class="generator")
    user = UserFactory(username="envia.dados")
    grant(user, trader)
    submission = _submission(week, trader, user)
    Verdict.objects.create(
        submission=submission,
        status="accepted",
        source="validate",
        signing_kid="a-key-nobody-attested",
        token="a.b.c",
        args={"kind": "portfolio"},
        args_sha256="0" * 64,
    )
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
    # A repeated signal or task sends nothing more; a closing started again is not "failed".
    from prudencial.alerts import services as alert_services

    assert alert_services.closing_failed_notify(closing_id=closing.pk) == 0
    assert len(mail.outbox) == 1


def test_the_missing_rule_goes_on_and_keeps_the_message(
    closed_week, eager, django_capture_on_commit_callbacks, settings
):
    settings.CLOSING_UNVERIFIED_VERDICTS = "missing"
    closing = Closing.objects.create(week=closed_week, sequence=1)
    services.closing_gather(closing_id=closing.pk)
    closing.refresh_from_db()
    assert closing.state == "network"  # no agent to compute: straight to the network step
    assert closing.error_code == "unverified_verdicts"
    assert "CM47 portfolio v1" in closing.error_message
    statuses = dict(
        LeverageResult.objects.filter(closing=closing).values_list("agent__acronym", "status")
    )
    assert statuses == {"CM47": "missing", "GE12": "missing"}
    assert mail.outbox == []


def test_an_unknown_rule_is_refused_by_name(closed_week, settings):
    settings.CLOSING_UNVERIFIED_VERDICTS = "ignore"
    closing = Closing.objects.create(week=closed_week, sequence=1)
    with pytest.raises(ImproperlyConfigured, match="CLOSING_UNVERIFIED_VERDICTS='ignore'"):
        services.closing_gather(closing_id=closing.pk)


def test_current_submissions_lists_the_versions_that_do_not_verify(closed_week):
    """The state of an (agent, kind) names its versions whose verdict does not verify."""
    from prudencial.models import Agent
    from prudencial.submissions import selectors

    trader = Agent.objects.get(acronym="CM47")
    states = selectors.current_submissions(week=closed_week, agent_ids=[trader.pk])
    state = states[(trader.pk, "portfolio")]
    assert state["status"] == "unverified" and state["unverified"] == [1]
    assert not state["is_current"]
