"""The weekly closing end to end (real enclave, real Celery worker, PostgreSQL, Redis) and the
host rules of its state machine (database constraints, staff actions, beat's calendar)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from prudencial.closing import services, signals, tasks
from prudencial.closing.models import (
    ChunkState,
    Closing,
    ClosingChunk,
    ClosingState,
    CommunityResult,
    CorrectionNotice,
    LeverageDecision,
    LeverageResult,
)
from tests.closing.conftest import (
    CANARY_TEXT,
    closing_state,
    communities_snapshot,
    make_week,
    past_deadline,
    results_snapshot,
    wait_done,
    wait_until,
)

pytestmark = pytest.mark.django_db


def _week(code_day=1):
    from datetime import date

    return make_week(date(2023, 3, code_day), pld=False)


def _staff(username="ccee.fechamento"):
    from tests.factories import UserFactory

    return UserFactory(username=username, is_staff=True, is_superuser=True)


def _done_closing(week, *, sequence=1, supersedes=None, current=True, reason=""):
    return Closing.objects.create(
        week=week,
        sequence=sequence,
        supersedes=supersedes,
        reason=reason,
        state=ClosingState.DONE,
        is_current=current,
        parameters={"week": week.code, "confidence": 0.95},
    )


# --- host rules (no enclave) ---------------------------------------------------------------------


def test_task_time_limits_stay_below_the_broker_visibility_timeout(settings):
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    for task in (
        tasks.run_closing,
        tasks.closing_chunk,
        tasks.closing_network,
        tasks.closing_finish,
    ):
        assert task.acks_late and task.reject_on_worker_lost, task.name
        assert task.soft_time_limit < task.time_limit < visibility, task.name
    # Retries give up (delay) long before the retry budget: the backoff is bounded.
    assert tasks._countdown(50) == tasks.RETRY_BACKOFF_MAX
    assert tasks.MAX_RETRIES * tasks.RETRY_BACKOFF_MAX > settings.CLOSING_ENCLAVE_DELAY_MINUTES * 60


def test_beat_schedule_has_the_closing_entries(settings):
    names = {e["task"] for e in settings.PRUDENCIAL_BEAT_SCHEDULE.values()}
    assert {
        "closing.start_due_closings",
        "closing.resume_stalled_closings",
        "closing.publish_due_weeks",
    } <= names
    from celery import current_app

    current_app.loader.import_default_modules()
    assert names <= set(current_app.tasks)


def test_invariants_are_database_constraints():
    week = _week()
    first = _done_closing(week)
    with pytest.raises(IntegrityError), transaction.atomic():
        Closing.objects.create(week=week, sequence=1)
    with pytest.raises(IntegrityError), transaction.atomic():  # a second current closing
        _done_closing(week, sequence=2, supersedes=first, reason="x")
    with pytest.raises(IntegrityError), transaction.atomic():  # current but not done
        Closing.objects.create(week=week, sequence=3, supersedes=first, reason="x", is_current=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Closing.objects.filter(pk=first.pk).update(state="halfway")
    with pytest.raises(IntegrityError), transaction.atomic():  # a correction says why
        Closing.objects.create(week=week, sequence=4, supersedes=first)
    ClosingChunk.objects.create(closing=first, index=0, agent_ids=[])
    with pytest.raises(IntegrityError), transaction.atomic():
        ClosingChunk.objects.create(closing=first, index=0, agent_ids=[])
    with pytest.raises(IntegrityError), transaction.atomic():  # done without a signed answer
        ClosingChunk.objects.filter(closing=first, index=0).update(state=ChunkState.DONE)
    from tests.factories import AgentFactory

    agent = AgentFactory(acronym="CM9001")
    result = LeverageResult.objects.create(closing=first, agent=agent, status="missing")
    with pytest.raises(IntegrityError), transaction.atomic():
        LeverageResult.objects.create(closing=first, agent=agent, status="missing")
    with pytest.raises(IntegrityError), transaction.atomic():  # a missing agent has no FA
        LeverageResult.objects.filter(pk=result.pk).update(fa=0.5)
    staff = _staff()
    decision = LeverageDecision.objects.create(result=result, action="sent", by=staff)
    with pytest.raises(Exception, match="(?i)protect|append"), transaction.atomic():
        LeverageDecision.objects.filter(pk=decision.pk).update(action="cancelled", reason="x")
    with pytest.raises(IntegrityError), transaction.atomic():  # cancelling needs a reason
        LeverageDecision.objects.create(result=result, action="cancelled", by=staff)


def test_staff_actions_refuse_who_may_not_and_what_cannot_be(eager):
    from tests.factories import UserFactory

    week = _week()
    agent_user = UserFactory(username="agente.comum")
    with pytest.raises(PermissionDenied):
        services.closing_start(week=week, by=agent_user)
    with pytest.raises(PermissionDenied):
        services.closing_correct(week=week, by=agent_user, why="dados corrigidos")
    staff = _staff()
    with pytest.raises(ValidationError, match="corrigir"):
        services.closing_correct(week=week, by=staff, why="dados corrigidos")
    current = _done_closing(week)
    with pytest.raises(ValidationError, match="por que"):
        services.closing_correct(week=week, by=staff, why="  ")
    with pytest.raises(ValidationError, match="não é um parâmetro"):
        services.closing_correct(week=week, by=staff, why="x", parameters_changes={"pla": 1})
    with pytest.raises(PermissionDenied):
        services.closing_choose_degraded(closing=current, rule="without_network", by=agent_user)
    with pytest.raises(ValidationError, match="desconhecida"):
        services.closing_choose_degraded(closing=current, rule="estimate_fa", by=staff)
    with pytest.raises(ValidationError, match="atrasado"):
        services.closing_choose_degraded(closing=current, rule="without_network", by=staff)


def test_degraded_rule_needs_every_chunk_signed_and_then_closes_without_network(
    eager, django_capture_on_commit_callbacks
):
    week = _week()
    past_deadline(week)
    from prudencial.services.weeks import week_close

    week_close(week=week)
    staff = _staff()
    closing = Closing.objects.create(week=week, state=ClosingState.DELAYED, agents_total=0)
    chunk = ClosingChunk.objects.create(closing=closing, index=0, agent_ids=[])
    with pytest.raises(ValidationError, match="nenhuma regra o estima"):
        services.closing_choose_degraded(closing=closing, rule="without_network", by=staff)
    ClosingChunk.objects.filter(pk=chunk.pk).update(
        state=ChunkState.DONE, token="a.b.c", args_sha256="0" * 64, done_at=timezone.now()
    )
    received = []

    def on_done(sender, closing, **kwargs):
        received.append(closing.pk)

    signals.closing_done.connect(on_done)
    with django_capture_on_commit_callbacks(execute=True):
        services.closing_choose_degraded(closing=closing, rule="without_network", by=staff)
    closing.refresh_from_db()
    week.refresh_from_db()
    assert (closing.state, closing.is_current, closing.network_source) == ("done", True, "none")
    assert closing.degraded_rule == "without_network" and not closing.network
    assert week.status == "computed" and received == [closing.pk]


def test_delayed_once_with_its_signal(django_capture_on_commit_callbacks, settings):
    week = _week()
    closing = Closing.objects.create(week=week, state=ClosingState.CHECKING)
    received = []

    def on_delayed(sender, closing, **kwargs):
        received.append(closing.pk)

    signals.closing_delayed.connect(on_delayed)
    with django_capture_on_commit_callbacks(execute=True):
        assert not services.mark_delayed_if_due(closing_id=closing.pk)  # progress just now
        later = timezone.now() + timedelta(minutes=settings.CLOSING_ENCLAVE_DELAY_MINUTES + 1)
        assert services.mark_delayed_if_due(closing_id=closing.pk, now=later)
        assert not services.mark_delayed_if_due(closing_id=closing.pk, now=later)
    closing.refresh_from_db()
    assert closing.state == "delayed" and closing.delayed_at == later
    assert received == [closing.pk]
    assert not LeverageResult.objects.filter(closing=closing).exists()  # nothing invented


def test_publish_due_weeks_at_deadline_plus_the_delay(settings):
    week = _week()
    from prudencial.models import Week

    Week.objects.filter(pk=week.pk).update(status="computed")
    deadline = week.deadline
    delay = timedelta(hours=settings.CLOSING_PUBLICATION_DELAY_HOURS)
    assert services.publish_due_weeks(now=deadline + delay - timedelta(minutes=1)) == []
    assert services.publish_due_weeks(now=deadline + delay) == [week.code]
    week.refresh_from_db()
    assert week.status == "published"
    assert services.publish_due_weeks(now=deadline + delay) == []


def test_round_robin_and_failover_over_the_addresses(settings):
    settings.ENCLAVE_ADDRESSES = ["unix:/a", "unix:/b", "unix:/c"]
    assert [services.address_for(i) for i in range(4)] == [
        "unix:/a",
        "unix:/b",
        "unix:/c",
        "unix:/a",
    ]
    assert services.address_for(1, attempt=1) == "unix:/c"
    assert services.address_for(2, attempt=1) == "unix:/a"


# --- a whole week, with the real enclave and a real worker ---------------------------------------


def _declared_values_absent(texts: list[str]) -> None:
    for text in texts:
        assert CANARY_TEXT not in text
        assert CANARY_TEXT.replace(".", ",") not in text


def _table_texts() -> list[str]:
    """Every row of the closing and submissions tables as text."""
    out = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if table.startswith(("closing_", "submissions_", "django_celery")):
                cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')  # noqa: S608
                out += [row[0] for row in cursor.fetchall()]
    return out


def _redis_texts() -> list[str]:
    import os

    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            out.append(repr(client.get(key)))
        elif kind == b"list":
            out += [repr(v) for v in client.lrange(key, 0, -1)]
        elif kind == b"hash":
            out.append(repr(client.hgetall(key)))
        elif kind == b"zset":
            out.append(repr(client.zrange(key, 0, -1)))
    return out


def test_a_week_from_open_to_computed_and_published(market, workers, caplog):
    """Beat closes the week at its deadline and starts the closing; every eligible agent gets
    one result (computed, no FA, or missing); the FA is the risk engine's on the same plaintext;
    the network step stores communities and each agent's figures; the week is computed, then
    published after the delay. Repeated deliveries change nothing; the canary is nowhere."""
    from prudencial.models import Week
    from prudencial.risk.leverage import leverage_factor

    group = workers()
    week = market.week
    assert services.start_due_closings() == []  # before the deadline: nothing
    past_deadline(week)
    assert services.start_due_closings() == [week.code]
    closing = Closing.objects.get(week=week, sequence=1)
    assert services.closing_start(week=week) == closing  # idempotent
    # Deliveries repeated while it runs are harmless.
    wait_until(lambda: closing_state(closing.pk) != "pending", group, what="gathering")
    tasks.run_closing.delay(closing.pk)
    services.dispatch_chunks(closing.pk)
    wait_done(closing.pk, group)

    closing.refresh_from_db()
    week.refresh_from_db()
    assert week.status == "computed" and closing.is_current
    total = len(market.agents)
    assert closing.agents_total == closing.agents_done == total
    assert set(closing.stage_times) == {"gather", "ship", "compute", "verify", "store"}
    assert closing.parameters["week"] == week.code and len(closing.parameters_sha256) == 64
    assert closing.parameters_version is not None
    assert closing.network_source == "counterparties" and closing.network_token.count(".") == 2
    results = {r.agent_id: r for r in LeverageResult.objects.filter(closing=closing)}
    assert len(results) == total
    assert {a for a, r in results.items() if r.status == "missing"} == set(market.missing)
    for agent_id, payload in market.plaintext.items():
        row = results[agent_id]
        direct = leverage_factor(payload, closing.parameters)
        if direct.fa is None:
            assert row.status == "no_fa" and row.fa is None
        else:
            assert row.status == "computed", (row.agent_id, row.error)
            assert row.fa == pytest.approx(direct.fa, rel=1e-12)
            assert row.fa_risk == pytest.approx(direct.fa_risk, rel=1e-12)
        assert row.portfolio_submission_id and row.chunk_id
    assert sum(r.status == "no_fa" for r in results.values()) >= 10
    chunks = list(ClosingChunk.objects.filter(closing=closing))
    assert all(c.state == "done" and c.token and c.args_sha256 for c in chunks)
    assert sorted(sum((c.agent_ids for c in chunks), [])) == sorted(market.plaintext)
    communities = CommunityResult.objects.filter(closing=closing)
    assert communities.exists()
    members = sorted(m for c in communities for m in c.members)
    assert members == sorted(a for a, r in results.items() if r.network)
    assert all("community" in r.network for r in results.values() if r.status == "computed")

    # Repeated delivery of every task, after the end, does no harm.
    before = (results_snapshot(closing.pk), communities_snapshot(closing.pk), closing.stage_times)
    for sig in [
        tasks.run_closing.s(closing.pk),
        *[tasks.closing_chunk.s(closing.pk, c.index) for c in chunks],
        tasks.closing_network.s(closing.pk),
        tasks.closing_finish.s(closing.pk),
    ]:
        sig.delay().get(timeout=60)
    closing.refresh_from_db()
    assert (
        results_snapshot(closing.pk),
        communities_snapshot(closing.pk),
        closing.stage_times,
    ) == before
    assert LeverageResult.objects.filter(closing=closing).count() == total

    # Publication at deadline + the delay (beat).
    assert services.publish_due_weeks() == []
    later = week.deadline + timedelta(hours=48, minutes=1)
    assert services.publish_due_weeks(now=later) == [week.code]
    assert Week.objects.get(pk=week.pk).status == "published"

    # The canary: the declared equity is in no row, no broker message or result, no log.
    _declared_values_absent(_table_texts())
    _declared_values_absent(_redis_texts())
    _declared_values_absent([group.log_text(), caplog.text])
    assert json.dumps(closing.network).find(CANARY_TEXT) == -1


def test_a_correction_supersedes_with_its_notice(market, workers):
    group = workers()
    week = market.week
    past_deadline(week)
    first = services.closing_start(week=week, by=market.staff)
    wait_done(first.pk, group)
    with pytest.raises(ValidationError, match="confidence"):
        services.closing_correct(
            week=week, by=market.staff, why="x", parameters_changes={"confidence": 1.5}
        )
    # One agent's portfolio arrives corrected (staff accept it for the re-run).
    from tests.closing.conftest import portfolio_payload, submit

    agent = next(a for a in market.agents if a.pk in market.plaintext)
    payload = portfolio_payload(agent, week.code, 5)
    new_submission = submit(week, agent, "portfolio", payload, market.sender)

    second = services.closing_correct(
        week=week,
        by=market.staff,
        why="Intervalo de confiança corrigido (ofício 12/2023)",
        parameters_changes={"confidence": 0.99},
    )
    assert second.sequence == 2 and second.supersedes_id == first.pk
    wait_done(second.pk, group)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.is_current) == ("superseded", False)
    assert (second.state, second.is_current) == ("done", True)
    assert second.parameters["confidence"] == 0.99
    notice = CorrectionNotice.objects.get(closing=second)
    assert notice.supersedes_id == first.pk and notice.by == market.staff
    assert notice.why.startswith("Intervalo de confiança")
    assert {"field": "confidence", "before": 0.95, "after": 0.99} in notice.what_changed[
        "parameters"
    ]
    changed = notice.what_changed["submissions"]
    assert [c["agent"] for c in changed] == [agent.acronym] and changed[0]["kind"] == "portfolio"
    assert changed[0]["after"] != changed[0]["before"]
    # The earlier results stay; the new ones use the new submission and parameters.
    assert LeverageResult.objects.filter(closing=first).count() == len(market.agents)
    row = LeverageResult.objects.get(closing=second, agent=agent)
    assert row.portfolio_submission_id == new_submission
    from prudencial.risk.leverage import leverage_factor

    assert row.fa == pytest.approx(leverage_factor(payload, second.parameters).fa, rel=1e-12)
