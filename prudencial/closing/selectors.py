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


def current_closing(*, week_code: str):
    """The week's current (done) closing, else 404."""
    from prudencial.closing.models import Closing

    closing = (
        Closing.objects.filter(week__code=week_code, is_current=True)
        .select_related("week", "correction_notice__supersedes__week", "correction_notice__by")
        .first()
    )
    if closing is None:
        raise Http404
    return closing


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


# --- systemic measures and community tracking ----------------------------------------------------

#: Weeks a community-evolution view may span (the picture grows by a column a week).
MAX_TRACKING_WEEKS = 52
DEFAULT_TRACKING_WEEKS = 8


def sent_acronyms(closing) -> set[str]:
    """Acronyms of the closing's results whose latest decision is ``sent`` (the staff rule)."""
    rows = exports.annotate_decisions(LeverageResult.objects.filter(closing=closing)).filter(
        latest_action=exports.DECISION_SENT
    )
    return set(rows.values_list("agent__acronym", flat=True))


def _named(acronym: Any, shown: set[str] | None) -> Any:
    """An agent named in the closing's systemic figures as a reader may see it: every name for
    the agent view's anonymised summary is dropped before this; for staff (``shown`` the sent
    ones) a name whose result was not sent is withheld (None)."""
    if shown is None or acronym in shown:
        return acronym
    return None


def systemic_summary(closing, *, names: set[str] | None | bool = None) -> dict[str, Any]:
    """``Closing.systemic`` as a reader may see it. ``names``: a set (staff: the acronyms
    whose result was sent; the others' names in DebtRank's top list and the cover-2 pair are
    withheld as None), or False (an agent's view: no agent named at all; the per-scenario
    system figures only)."""
    systemic = dict(closing.systemic or {})
    if not systemic or "skipped" in systemic:
        return systemic
    scenarios = {}
    for name, raw in (systemic.get("scenarios") or {}).items():
        scenario = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
        debtrank = scenario.get("debtrank") or {}
        cover2 = scenario.get("cover2") or {}
        if names is False:
            debtrank.pop("top", None)
            cover2.pop("agents", None)
        else:
            shown = names if isinstance(names, set) else None
            if "top" in debtrank:
                debtrank["top"] = [
                    {**t, "agent": _named(t.get("agent"), shown)} for t in debtrank["top"]
                ]
            if cover2.get("agents"):
                cover2["agents"] = [_named(a, shown) for a in cover2["agents"]]
        scenarios[name] = scenario
    systemic["scenarios"] = scenarios
    return systemic


def tracking_threshold(closing) -> float:
    """The Jaccard threshold the closing's own transition used (its pinned network options'
    ``tracking.threshold``), so the multi-week page links communities as the enclave did."""
    from prudencial.risk.tracking import DEFAULT_THRESHOLD

    pinned = (closing.network_options or {}).get("tracking") or {}
    value = pinned.get("threshold", DEFAULT_THRESHOLD)
    return float(value) if isinstance(value, int | float) and 0 < value <= 1 else DEFAULT_THRESHOLD


def community_tracking(
    *,
    weeks: int = DEFAULT_TRACKING_WEEKS,
    until: str | None = None,
    checker=None,
    agent: str | None = None,
) -> dict[str, Any]:
    """The communities of the last ``weeks`` current closings (up to week ``until``), matched
    week to week (``prudencial.risk.tracking.track_communities``) from the memberships stored
    with each closing — only those that verify against the closing's signed network answer
    now (the others are listed in ``unverified`` and left out). Staff view:

    - ``tracking``: weeks, communities (size, lineage), transitions and counts — aggregates;
    - ``agents``: each agent's history [{week, community, lineage, sent}], a week's community
      and lineage shown only when the agent sent that week's result (None otherwise: the
      staff rule of docs/closing.md); ``agent`` (an acronym) keeps that agent's only;
    - ``closings``: per week its reference and the enclave's own signed transition from the
      previous week (``Closing.tracking``) with the signature status.
    """
    from prudencial.closing.models import Closing
    from prudencial.closing.services import membership_from
    from prudencial.closing.signatures import SignatureChecker
    from prudencial.risk.tracking import track_communities

    checker = checker or SignatureChecker()
    weeks = max(1, min(int(weeks), MAX_TRACKING_WEEKS))
    closings = Closing.objects.filter(is_current=True).exclude(network_token="")
    if until is not None:
        closings = closings.filter(week__code__lte=until)
    chosen = list(closings.select_related("week").order_by("-week__code")[:weeks])[::-1]
    included: list[tuple[Any, dict[str, int | None]]] = []
    unverified: list[dict[str, Any]] = []
    listed: list[dict[str, Any]] = []
    for closing in chosen:
        stored = dict(closing.results.exclude(network={}).values_list("agent__acronym", "network"))
        signature = checker.check_membership(closing, stored)
        if not signature.verified:
            unverified.append(
                {"week": closing.week.code, "reference": closing.reference, **signature.as_dict()}
            )
            continue
        included.append((closing, membership_from(stored)))
        listed.append(
            {
                "week": closing.week.code,
                "reference": closing.reference,
                "transition": dict(closing.tracking or {}),
                "signature": checker.check_closing(closing).as_dict(),
            }
        )
    out: dict[str, Any] = {"closings": listed, "unverified": unverified}
    if not included:
        out["tracking"] = {"weeks": [], "communities": {}, "transitions": [], "counts": []}
        out["agents"] = {}
        return out
    tracking = track_communities(
        [(c.week.code, m) for c, m in included], threshold=tracking_threshold(included[-1][0])
    ).to_dict()
    history = tracking.pop("agents")
    sent = [sent_acronyms(c) for c, _m in included]
    codes = [c.week.code for c, _m in included]
    agents = {}
    for acronym in sorted(history):
        if agent is not None and acronym != agent:
            continue
        row = history[acronym]
        agents[acronym] = [
            {
                "week": codes[i],
                "sent": acronym in sent[i],
                "community": row["community"][i] if acronym in sent[i] else None,
                "lineage": row["lineage"][i] if acronym in sent[i] else None,
            }
            for i in range(len(codes))
        ]
    out["tracking"] = tracking
    out["agents"] = agents
    return out
