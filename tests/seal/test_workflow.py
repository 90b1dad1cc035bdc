"""The seal's services: the seeded catalogue, moves with their log, no publication before the
response period ends, retired criteria, the agents' answers and evidence."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from seal import services
from seal.models import (
    CatalogueVersion,
    Criterion,
    DecisionLog,
    Evaluation,
    EvaluationItem,
    Evidence,
)
from tests.seal.conftest import PDF, decide_all, published

pytestmark = pytest.mark.django_db


def test_the_migration_seeds_every_row_and_the_mandatory_penalty():
    version = CatalogueVersion.objects.get(number=1)
    rows = {c.code: (c.points, c.mandatory) for c in version.criteria.all()}
    assert len(rows) == 15
    assert rows["discrepancy"] == (-15, False)
    assert rows["fs-annual"] == (0, True) and rows["contracts-daily"] == (10, True)
    assert version.missed_mandatory_points == -10


def test_an_evaluation_has_one_item_per_criterion_and_derives_platform_evidence(evaluation_a):
    items = {i.criterion.code: i for i in evaluation_a.items.select_related("criterion")}
    assert len(items) == 15
    discrepancy = items["discrepancy"]
    assert discrepancy.decision == "not_evaluated" and discrepancy.derived["available"] is False
    assert "sem dados" in discrepancy.derived["note"]
    # No closed week in the cycle: nothing to derive from, left to staff (never guessed).
    assert items["contracts-daily"].decision == "pending"
    assert items["contracts-daily"].derived["weeks_expected"] == 0
    actions = list(
        DecisionLog.objects.filter(evaluation=evaluation_a).values_list("action", flat=True)
    )
    assert set(actions) >= {"created", "derived"}


def test_notify_needs_every_criterion_decided(evaluation_a, seal_staff):
    services.evaluation_transition(evaluation=evaluation_a, to="under_review", by=seal_staff)
    with pytest.raises(services.Invalid) as exc:
        services.evaluation_transition(evaluation=evaluation_a, to="notified", by=seal_staff)
    assert exc.value.field == "items" and "contracts-daily" in exc.value.message


def test_no_publication_before_the_response_period_ends(evaluation_a, seal_staff):
    decide_all(evaluation_a, seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="under_review", by=seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="notified", by=seal_staff)
    evaluation_a.refresh_from_db()
    assert evaluation_a.response_ends_at - evaluation_a.notified_at == timedelta(days=7)
    just_before = evaluation_a.response_ends_at - timedelta(seconds=1)
    with pytest.raises(services.WrongState) as exc:
        services.evaluation_transition(
            evaluation=evaluation_a, to="published", by=seal_staff, now=just_before
        )
    assert exc.value.field == "response_ends_at"
    evaluation_a.refresh_from_db()
    assert evaluation_a.state == "notified" and evaluation_a.published_at is None
    # The database refuses it too, whatever code tries.
    with pytest.raises(IntegrityError), transaction.atomic():
        Evaluation.objects.filter(pk=evaluation_a.pk).update(
            state="published", published_at=just_before
        )
    done = services.evaluation_transition(
        evaluation=evaluation_a, to="published", by=seal_staff, now=evaluation_a.response_ends_at
    )
    assert done.state == "published"
    # Hand: both mandatory missed (−20), the rest 0: level 1.
    assert (done.total, done.level) == (-20, 1)
    moves = DecisionLog.objects.filter(evaluation=evaluation_a, action="state").order_by("at", "pk")
    assert [(m.details["before"], m.details["after"], m.by_id) for m in moves] == [
        ("draft", "under_review", seal_staff.pk),
        ("under_review", "notified", seal_staff.pk),
        ("notified", "published", seal_staff.pk),
    ]


def test_a_published_evaluation_is_final(evaluation_a, seal_staff):
    published(evaluation_a, seal_staff)
    item = evaluation_a.items.first()
    with pytest.raises(services.WrongState):
        services.item_decide(item=item, decision="achieved", by=seal_staff)
    with pytest.raises(services.WrongState):
        services.evaluation_transition(evaluation=evaluation_a, to="draft", by=seal_staff)


def test_every_decision_is_logged_with_who_and_before(evaluation_a, seal_staff):
    item = evaluation_a.items.get(criterion__code="risk-policy")
    services.item_decide(item=item, decision="achieved", by=seal_staff, comment="Política vista")
    log = DecisionLog.objects.filter(evaluation=evaluation_a, action="item_decided").get()
    assert log.by == seal_staff and log.details["criterion"] == "risk-policy"
    assert (
        log.details["before"]["decision"] == "pending"
        and log.details["after"]["decision"] == "achieved"
    )
    with pytest.raises(PermissionError):
        log.save()
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        DecisionLog.objects.filter(pk=log.pk).update(action="scored")


def test_the_breakdown_is_stored_with_the_evaluation(evaluation_a, seal_staff):
    decide_all(
        evaluation_a,
        seal_staff,
        **{"fs-annual": "achieved", "contracts-daily": "achieved", "channel-api": "achieved",
           "fs-half-yearly": "achieved", "audit-annual": "achieved"},
    )  # fmt: skip
    result = services.evaluation_score(evaluation=evaluation_a, by=seal_staff)
    evaluation_a.refresh_from_db()
    # Hand: fs group 10 + daily 10 + API 7 + audit 5 = 32 → level 2 (cut-off 30).
    assert (evaluation_a.total, evaluation_a.level, result.total) == (32, 2, 32)
    breakdown = evaluation_a.breakdown
    assert breakdown["cutoffs"] == {"2": 30, "3": 55} and breakdown["catalogue_version"] == 1
    rows = {r["code"]: r for r in breakdown["items"]}
    assert rows["fs-annual"]["note"] == "superseded_by:fs-half-yearly"
    assert rows["discrepancy"]["note"] == "no_data"
    assert (
        EvaluationItem.objects.get(
            evaluation=evaluation_a, criterion__code="channel-api"
        ).points_awarded
        == 7
    )


def test_cutoffs_come_from_settings(evaluation_a, seal_staff, settings):
    settings.SEAL_LEVEL_CUTOFFS = {2: 5, 3: 10}
    decide_all(evaluation_a, seal_staff, **{"fs-annual": "achieved", "contracts-daily": "achieved"})
    services.evaluation_score(evaluation=evaluation_a, by=seal_staff)
    evaluation_a.refresh_from_db()
    assert (evaluation_a.total, evaluation_a.level) == (10, 3)


def test_a_retired_criterion_leaves_older_evaluations_unchanged(evaluation_a, seal_staff, agent_b):
    decide_all(
        evaluation_a,
        seal_staff,
        **{"fs-annual": "achieved", "contracts-daily": "achieved", "risk-area": "achieved"},
    )
    services.evaluation_score(evaluation=evaluation_a, by=seal_staff)
    evaluation_a.refresh_from_db()
    before = (evaluation_a.total, evaluation_a.breakdown)
    assert before[0] == 14  # hand: daily 10 + risk area 4

    version = services.criterion_retire(
        criterion=Criterion.objects.get(code="risk-area"), by=seal_staff
    )
    assert version.number == 2 and not version.criteria.filter(code="risk-area").exists()
    added = services.criterion_add(
        by=seal_staff, code="esg-report", line_of_action="Governança", measure="Relatório ESG",
        points=2, mandatory=False, evidence_kind="document", position=16,
    )  # fmt: skip
    assert CatalogueVersion.objects.get(number=3).criteria.filter(pk=added.pk).exists()

    services.evaluation_score(evaluation=evaluation_a, by=seal_staff)
    evaluation_a.refresh_from_db()
    assert evaluation_a.catalogue_version.number == 1
    assert (evaluation_a.total, evaluation_a.breakdown["items"]) == (before[0], before[1]["items"])
    assert evaluation_a.items.filter(criterion__code="risk-area").exists()

    cycle = services.cycle_create(
        code="2027", starts_on=date(2027, 1, 1), ends_on=date(2027, 12, 31)
    )
    newer = services.evaluation_create(agent=agent_b, cycle=cycle, by=seal_staff)
    codes = set(newer.items.values_list("criterion__code", flat=True))
    assert newer.catalogue_version.number == 3
    assert "risk-area" not in codes and "esg-report" in codes


def test_a_criterion_is_never_edited(seal_staff):
    criterion = Criterion.objects.get(code="channel-api")
    with pytest.raises(DatabaseError), transaction.atomic():  # the read-only trigger
        Criterion.objects.filter(pk=criterion.pk).update(points=70)
    assert Criterion.objects.get(pk=criterion.pk).points == 7


def test_a_mandatory_measure_cannot_be_marked_without_data(evaluation_a, seal_staff):
    item = evaluation_a.items.get(criterion__code="fs-annual")
    with pytest.raises(services.Invalid) as exc:
        services.item_decide(item=item, decision="not_evaluated", by=seal_staff)
    assert exc.value.field == "decision"


def test_agents_answer_only_within_the_response_period(evaluation_a, agent_user, seal_staff):
    with pytest.raises(services.WrongState):  # a draft is not notified yet
        services.response_create(user=agent_user, evaluation_id=evaluation_a.pk, text="Discordamos")
    decide_all(evaluation_a, seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="under_review", by=seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="notified", by=seal_staff)
    response = services.response_create(
        user=agent_user,
        evaluation_id=evaluation_a.pk,
        text="Enviamos a DF anual",
        criterion="fs-annual",
    )
    assert response.item.criterion.code == "fs-annual"
    Evaluation.objects.filter(pk=evaluation_a.pk).update(
        response_ends_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(services.WrongState) as exc:
        services.response_create(user=agent_user, evaluation_id=evaluation_a.pk, text="Tarde")
    assert exc.value.field == "response_ends_at"


def test_evidence_is_stored_with_its_sha256(evaluation_a, agent_user):
    import hashlib

    evidence = services.evidence_upload(
        user=agent_user,
        evaluation_id=evaluation_a.pk,
        criterion="fs-annual",
        file_name="../../df.pdf",
        content=PDF,
    )
    assert evidence.file_type == "pdf" and evidence.file_name == "df.pdf"
    assert evidence.sha256 == hashlib.sha256(PDF).hexdigest() and bytes(evidence.content) == PDF
    with pytest.raises(services.Invalid):  # a platform criterion takes no document
        services.evidence_upload(
            user=agent_user,
            evaluation_id=evaluation_a.pk,
            criterion="channel-api",
            file_name="x.pdf",
            content=PDF,
        )
    assert Evidence.objects.count() == 1


def test_another_agents_user_cannot_act_on_the_evaluation(evaluation_a, other_user):
    with pytest.raises(services.NotPermitted):
        services.evidence_upload(
            user=other_user,
            evaluation_id=evaluation_a.pk,
            criterion="fs-annual",
            file_name="x.pdf",
            content=PDF,
        )
    with pytest.raises(services.NotPermitted):
        services.response_create(user=other_user, evaluation_id=evaluation_a.pk, text="x")
