"""Evidence derived from the platform's own records, each figure with the ids it came from.

The cycle's reporting events of an agent are the weeks whose operation starts within the
cycle's period, whose window has closed (closed, computed or published) and in which the
agent's cadence has an event. For each, the counted submission is the latest accepted version,
its verdict verified now (``prudencial.submissions.selectors.current_submissions``).

- ``regularity`` (mandatory contract-submission measure; the platform's reporting events stand
  for B3's daily sending): share of the events with an accepted portfolio.
- ``channel_api`` / ``channel_spreadsheet``: the channel (``Submission.channel``) of the counted
  portfolio and counterparties submissions; API achieved when its share reaches
  SEAL_API_MIN_SHARE; spreadsheet/web when any counted one came that way.
- ``discrepancy``: B3 compares the contracts sent to it with those registered at CCEE. The
  platform holds no record of CCEE's registered contracts an agent-level comparison could use
  (agents' counterparties arrive encrypted, and no registered-contracts table exists here):
  the figure says so and the measure is not evaluated — never guessed.

A derivation returns ``(decision, figures)``; ``decision`` None leaves the item to staff (no
reporting event in the cycle: nothing to derive from).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prudencial.models import Week, WeekStatus
from prudencial.submissions.models import Kind, Submission
from prudencial.submissions.selectors import VerdictChecker, current_submissions
from prudencial.submissions.services import cadences_with_event
from seal import conf
from seal.models import Decision, Evaluation

CLOSED_STATUSES = (WeekStatus.CLOSED, WeekStatus.COMPUTED, WeekStatus.PUBLISHED)
NO_REGISTRY_DATA = (
    "A plataforma não tem os contratos registrados na CCEE por agente para comparar com os "
    "declarados: medida não avaliada (sem dados)."
)


def cycle_weeks(evaluation: Evaluation) -> list[Week]:
    """The agent's reporting events in the cycle, oldest first."""
    cycle = evaluation.cycle
    weeks = Week.objects.filter(
        operation_start__gte=cycle.starts_on,
        operation_start__lte=cycle.ends_on,
        status__in=CLOSED_STATUSES,
    ).order_by("code")
    cadence = evaluation.agent.reporting_cadence
    return [w for w in weeks if cadence in cadences_with_event(w)]


class Records:
    """The counted submissions of one agent over its cycle weeks, read once per evaluation."""

    def __init__(self, evaluation: Evaluation) -> None:
        self.weeks = cycle_weeks(evaluation)
        checker = VerdictChecker()
        self.counted: dict[str, dict[str, dict[str, Any] | None]] = {}
        agent_id = evaluation.agent_id
        for week in self.weeks:
            states = current_submissions(week=week, agent_ids=[agent_id], checker=checker)
            self.counted[week.code] = {
                kind: (s if (s := states.get((agent_id, kind))) and s["is_current"] else None)
                for kind in Kind.values
            }
        ids = [s["submission_id"] for kinds in self.counted.values() for s in kinds.values() if s]
        self.channels = dict(Submission.objects.filter(pk__in=ids).values_list("pk", "channel"))


def regularity(records: Records) -> tuple[str | None, dict[str, Any]]:
    rows = []
    for week in records.weeks:
        portfolio = records.counted[week.code][Kind.PORTFOLIO]
        rows.append(
            {"week": week.code, "submission": portfolio["submission_id"] if portfolio else None}
        )
    expected = len(rows)
    done = sum(1 for r in rows if r["submission"] is not None)
    figures: dict[str, Any] = {
        "rule": "regularity",
        "weeks_expected": expected,
        "weeks_with_portfolio": done,
        "share": round(done / expected, 4) if expected else None,
        "min_share": conf.regularity_min_share(),
        "missing": [r["week"] for r in rows if r["submission"] is None],
        "records": rows,
    }
    if not expected:
        figures["note"] = "no reporting event of the agent in the cycle"
        return None, figures
    ok = done / expected >= conf.regularity_min_share()
    return (Decision.ACHIEVED if ok else Decision.NOT_ACHIEVED), figures


def _channel_figures(records: Records) -> dict[str, Any]:
    by_channel: dict[str, list[int]] = {}
    for kinds in records.counted.values():
        for state in kinds.values():
            if state:
                channel = records.channels.get(state["submission_id"], "")
                by_channel.setdefault(channel, []).append(state["submission_id"])
    counted = sum(len(v) for v in by_channel.values())
    api = len(by_channel.get("api", []))
    return {
        "rule": "channel",
        "counted": counted,
        "api_share": round(api / counted, 4) if counted else None,
        "min_api_share": conf.api_min_share(),
        "by_channel": {k: sorted(v) for k, v in sorted(by_channel.items())},
        "weeks": [w.code for w in records.weeks],
    }


def channel_api(records: Records) -> tuple[str | None, dict[str, Any]]:
    figures = _channel_figures(records)
    if not figures["counted"]:
        figures["note"] = "no counted submission in the cycle"
        return None, figures
    ok = figures["api_share"] >= conf.api_min_share()
    return (Decision.ACHIEVED if ok else Decision.NOT_ACHIEVED), figures


def channel_spreadsheet(records: Records) -> tuple[str | None, dict[str, Any]]:
    figures = _channel_figures(records)
    if not figures["counted"]:
        figures["note"] = "no counted submission in the cycle"
        return None, figures
    other = any(k != "api" for k in figures["by_channel"])
    return (Decision.ACHIEVED if other else Decision.NOT_ACHIEVED), figures


def discrepancy(records: Records) -> tuple[str | None, dict[str, Any]]:
    return Decision.NOT_EVALUATED, {
        "rule": "discrepancy",
        "available": False,
        "note": NO_REGISTRY_DATA,
        "records": [],
    }


DERIVATIONS: dict[str, Callable[[Records], tuple[str | None, dict[str, Any]]]] = {
    "regularity": regularity,
    "channel_api": channel_api,
    "channel_spreadsheet": channel_spreadsheet,
    "discrepancy": discrepancy,
}
