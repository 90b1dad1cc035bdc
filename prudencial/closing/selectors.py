"""Reads of the agents' leverage results, with who may see which figures.

The agent's own users (``view_agent`` through a representation in force) see every figure;
CCEE staff with ``closing.view_leverageresult`` see only that a result exists until the agent
sent it (``exports.visible`` is that rule). The signature re-check on read is
prudencial.closing.signatures."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from prudencial.closing import exports
from prudencial.closing.models import LeverageResult
from prudencial.selectors import agent_ids_permitted


def is_agent_user(user, agent_id: int) -> bool:
    """Whether ``user`` acts for the agent today (a representation in force with view_agent)."""
    return agent_ids_permitted(user=user).filter(content_object_id=agent_id).exists()


def current_result(*, week_code: str, agent_id: int, user) -> LeverageResult:
    """The current closing's result of (week, agent) readable by ``user``, else 404: another
    agent's result is as unknown as a missing one."""
    allowed = is_agent_user(user, agent_id) or user.has_perm("closing.view_leverageresult")
    result = (
        exports.annotate_decisions(
            LeverageResult.objects.filter(
                closing__week__code=week_code, closing__is_current=True, agent_id=agent_id
            )
        )
        .select_related("closing__week", "agent", "chunk")
        .first()
    )
    if result is None or not allowed:
        raise Http404
    return result


def figures_for(result: LeverageResult, user) -> dict[str, Any] | None:
    """The figures ``user`` may read: all for the agent's users, else the staff rule."""
    if is_agent_user(user, result.agent_id):
        return exports.figures_of(result)
    return exports.visible(result, user)


def history(*, agent_id: int, user) -> QuerySet[LeverageResult]:
    """The agent's results week by week, newest first, superseded closings included (flagged by
    ``closing.is_current``); only for the agent's own users."""
    if not is_agent_user(user, agent_id):
        raise Http404
    return (
        exports.annotate_decisions(LeverageResult.objects.filter(agent_id=agent_id))
        .select_related(
            "closing__week",
            "agent",
            "chunk",
            "closing__correction_notice__supersedes__week",
            "closing__correction_notice__by",
        )
        .prefetch_related("decisions")  # decision_summary of every row, in one query
        .order_by("-closing__week__code", "-closing__sequence")
    )


def closing_reference(closing) -> dict[str, Any]:
    """How a result names its closing: reference, sequence, current or superseded, the
    parameters' version and digest, and the correction notice when it is a correction."""
    notice = getattr(closing, "correction_notice", None) if closing.sequence > 1 else None
    return {
        "reference": closing.reference,
        "sequence": closing.sequence,
        "is_current": closing.is_current,
        "parameters_version": closing.parameters_version,
        "parameters_sha256": closing.parameters_sha256,
        "finished_at": closing.finished_at,
        "correction": None
        if notice is None
        else {
            "supersedes": notice.supersedes.reference,
            "why": notice.why,
            "by": notice.by.get_username(),
            "at": notice.at,
            "what_changed": notice.what_changed,
        },
    }


def decision_summary(result: LeverageResult) -> dict[str, Any]:
    """The result's current decision: state (pending, sent, cancelled), when, and why."""
    # LeverageDecision's Meta ordering is newest first; .all() reads a prefetch when there is one.
    latest = next(iter(result.decisions.all()), None)
    if latest is None:
        return {"state": exports.DECISION_PENDING, "at": None, "reason": ""}
    return {"state": latest.action, "at": latest.at, "reason": latest.reason}
