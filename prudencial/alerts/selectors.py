"""Reads of the alerts that depend on who asks.

A case is visible to whoever may see its agent (prudencial.selectors.agent_list: the agent's
users through a representation in force, CCEE staff through the global permission); anything
else is "not found". Who writes on a case is decided here too (``case_side``): one of the
agent's users writes as the agent; a staff member with ``alerts.change_case`` writes as staff.

The value of a case follows the results' rule: the agent's users see it; staff see it once the
agent sent the result (its latest LeverageDecision is "sent"), before that only that the case
exists, with its figure and band or limit.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet, Subquery

from prudencial.alerts.models import Case, CaseEvent, CaseState, Side
from prudencial.closing.models import LeverageDecision
from prudencial.selectors import agent_ids_permitted, agent_list

SENT = "sent"


def _with_decision(queryset: QuerySet[Case]) -> QuerySet[Case]:
    latest = LeverageDecision.objects.filter(result_id=OuterRef("leverage_result_id")).order_by(
        "-at", "-pk"
    )
    return queryset.annotate(result_action=Subquery(latest.values("action")[:1]))


def _with_side(queryset: QuerySet[Case], user) -> QuerySet[Case]:
    """Whether ``user`` acts for each case's agent (what value_visible reads), in the query."""
    own = agent_ids_permitted(user=user).filter(content_object_id=OuterRef("agent_id"))
    return queryset.annotate(agent_side=Exists(own))


def case_list(*, user) -> QuerySet[Case]:
    """Every case the user may see, with what its views read joined."""
    agents = agent_list(user=user)
    return _with_side(
        _with_decision(
            Case.objects.filter(agent_id__in=agents.values("pk")).select_related(
                "agent", "week", "closing", "assignee", "decided_by"
            )
        ),
        user,
    )


def agent_cases(*, user, agent_id: int) -> QuerySet[Case] | None:
    """An agent's cases, newest first; None when the user may not see the agent (a 404)."""
    if not agent_list(user=user).filter(pk=agent_id).exists():
        return None
    return case_list(user=user).filter(agent_id=agent_id).order_by("-opened_at", "-pk")


def case_for_user(*, user, case_id: int) -> Case | None:
    return case_list(user=user).filter(pk=case_id).first()


def case_events(case: Case) -> QuerySet[CaseEvent]:
    return case.events.select_related("author", "assignee").order_by("at", "pk")


def is_agent_side(user, case: Case) -> bool:
    """Whether the user acts for the case's agent (a representation in force with view_agent)."""
    if user is None or not user.is_authenticated:
        return False
    return agent_ids_permitted(user=user).filter(content_object_id=case.agent_id).exists()


def case_side(user, case: Case) -> str | None:
    """The side the user writes on (agent, staff) or None when they may only read."""
    if is_agent_side(user, case):
        return Side.AGENT
    if user.is_active and user.is_staff and user.has_perm("alerts.change_case"):
        return Side.STAFF
    return None


def value_visible(case: Case, user) -> bool:
    """The agent's users always; anyone else once the result was sent to CCEE."""
    agent_side = getattr(case, "agent_side", None)
    if agent_side is None:
        agent_side = is_agent_side(user, case)
    if agent_side:
        return True
    action = getattr(case, "result_action", None)
    if action is None and not hasattr(case, "result_action"):
        latest = (
            LeverageDecision.objects.filter(result_id=case.leverage_result_id)
            .order_by("-at", "-pk")
            .values_list("action", flat=True)
            .first()
        )
        action = latest
    return action == SENT


def case_queue(*, user) -> QuerySet[Case]:
    """The staff's queue (admin): every case, with the result's latest decision and whether
    ``user`` acts for its agent (what value_visible reads)."""
    return _with_side(
        _with_decision(
            Case.objects.select_related("agent", "week", "closing", "assignee", "decided_by")
        ),
        user,
    )


OPEN_STATES = (CaseState.OPEN, CaseState.ANSWERED)
