"""Reads of the publication (docs/closing.md § Publicação): what CCEE publishes of a week and of
an agent, with no login.

The rule: a week's list is public once the week is ``published`` (deadline +
CLOSING_PUBLICATION_DELAY_HOURS, ``services.publish_due_weeks``), and only of the week's
current closing (a correction supersedes the first one's results); in it, only the results the
agent sent (``exports.annotate_decisions``: the latest LeverageDecision is "sent"). Cancelled and
pending results are never listed, and their figures are never read here.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from prudencial.closing.exports import DECISION_SENT, annotate_decisions
from prudencial.closing.models import ClosingState, LeverageResult, ResultStatus
from prudencial.models import Agent, Week, WeekStatus

#: How many of an agent's weeks the public lookup shows.
LOOKUP_EVENTS = 12


def published_weeks() -> QuerySet[Week]:
    """Published weeks, newest first."""
    return Week.objects.filter(status=WeekStatus.PUBLISHED).order_by("-deadline", "-code")


def latest_published_week() -> Week | None:
    return published_weeks().first()


def published_week(code: str) -> Week | None:
    """The week of ``code`` if it is published; None for unknown and not yet published alike
    (what a week will publish is not said before it does)."""
    return published_weeks().filter(code=code).first()


def published_results(week: Week) -> QuerySet[LeverageResult]:
    """The sent, computed results of the week's current closing, by acronym: the published list
    (only the columns it publishes are loaded)."""
    results = LeverageResult.objects.filter(
        closing__week=week,
        closing__is_current=True,
        closing__state=ClosingState.DONE,
        status=ResultStatus.COMPUTED,
    )
    return (
        annotate_decisions(results)
        .filter(latest_action=DECISION_SENT)
        .select_related("agent")
        .only(
            "id", "fa", "agent__acronym", "agent__legal_name", "agent__cnpj", "agent__agent_class"
        )
        .order_by("agent__acronym", "pk")
    )


def agent_by_cnpj(cnpj: str) -> Agent | None:
    return Agent.objects.filter(cnpj=cnpj).only("id", "acronym", "legal_name", "cnpj").first()


@dataclass(frozen=True)
class PublicEvent:
    """One week of an agent, as the public lookup shows it: the FA only when published and sent."""

    week: str
    published: bool
    sent: bool
    fa: float | None


def agent_events(agent: Agent, *, limit: int = LOOKUP_EVENTS) -> list[PublicEvent]:
    """The agent's results in the current closings of its latest ``limit`` weeks (newest first)."""
    results = annotate_decisions(
        LeverageResult.objects.filter(
            agent=agent, closing__is_current=True, closing__state=ClosingState.DONE
        )
    ).select_related("closing__week")
    results = results.only(
        "id", "fa", "status", "closing__id", "closing__week__code", "closing__week__status"
    ).order_by("-closing__week__deadline", "-closing__week__code")[:limit]
    events = []
    for result in results:
        week = result.closing.week
        published = week.status == WeekStatus.PUBLISHED
        sent = result.latest_action == DECISION_SENT and result.status == ResultStatus.COMPUTED
        events.append(
            PublicEvent(
                week=week.code,
                published=published,
                sent=sent,
                fa=result.fa if published and sent else None,
            )
        )
    return events


def calendar_weeks(year: int) -> QuerySet[Week]:
    """The weeks whose operation starts in ``year``, in order."""
    return Week.objects.filter(operation_start__year=year).order_by("operation_start", "code")
