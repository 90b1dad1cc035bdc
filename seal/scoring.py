"""The seal's score, pure (no Django): from the decided criteria to total, penalties and level.

Rules (docs/seal.md):

- an achieved measure gives its points (× units for "+5 each", at most ``max_units``);
- measures of one ``exclusive_group`` are tiers of one another ("annual and half-yearly"
  includes "annual"): only the achieved one with the most points counts, the others give 0;
- the discrepancy measure has negative points: "achieved" means the discrepancy was found;
- each mandatory measure not achieved costs ``missed_mandatory_points`` (−10) once, unless a
  higher measure of its ``exclusive_group`` (more points: half-yearly statements over annual,
  real-time sending over daily) is achieved: that one includes it, so the mandatory measure is
  met, costs nothing and its row says ``implied_by`` (the higher measure's code); the score is
  then the same as with both achieved;
- ``not_evaluated`` (no data in the platform, e.g. no registered contracts to compare) gives
  nothing either way; a mandatory measure cannot be left unevaluated;
- ``pending`` gives nothing and leaves the score incomplete (it cannot be notified);
- level 1 below the first cut-off; level n from ``cutoffs[n]`` on (inclusive).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PENDING = "pending"
ACHIEVED = "achieved"
NOT_ACHIEVED = "not_achieved"
NOT_EVALUATED = "not_evaluated"
DECISIONS = (PENDING, ACHIEVED, NOT_ACHIEVED, NOT_EVALUATED)
LEVELS = (1, 2, 3)


class ScoringError(ValueError):
    """A decision or parameter the rules do not allow, naming the criterion or parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ItemInput:
    code: str
    points: int
    mandatory: bool
    decision: str
    units: int = 1
    max_units: int = 1
    exclusive_group: str = ""


@dataclass
class Score:
    total: int
    level: int
    points: int  # Σ of the criteria's points, before the mandatory penalties
    penalties: int  # Σ of the mandatory penalties (≤ 0)
    missed_mandatory: list[str]
    complete: bool
    items: list[dict[str, Any]] = field(default_factory=list)
    cutoffs: dict[int, int] = field(default_factory=dict)
    missed_mandatory_points: int = -10

    def as_breakdown(self) -> dict[str, Any]:
        """What is stored with the evaluation: every figure a reader needs to redo it."""
        return {
            "total": self.total,
            "level": self.level,
            "points": self.points,
            "penalties": self.penalties,
            "missed_mandatory": list(self.missed_mandatory),
            "missed_mandatory_points": self.missed_mandatory_points,
            "complete": self.complete,
            "cutoffs": {str(k): v for k, v in sorted(self.cutoffs.items())},
            "items": list(self.items),
        }


def check_cutoffs(cutoffs: Mapping[int, int]) -> dict[int, int]:
    """Cut-offs for levels 2 and 3, the second above the first."""
    out = {int(k): int(v) for k, v in cutoffs.items()}
    if set(out) != {2, 3}:
        raise ScoringError("SEAL_LEVEL_CUTOFFS", "must give the minimum total of levels 2 and 3")
    if not out[2] < out[3]:
        raise ScoringError("SEAL_LEVEL_CUTOFFS", "level 3's cut-off must be above level 2's")
    return out


def level_for(total: int, cutoffs: Mapping[int, int]) -> int:
    """Level 1, 2 or 3: the highest level whose cut-off the total reaches (inclusive)."""
    cut = check_cutoffs(cutoffs)
    if total >= cut[3]:
        return 3
    if total >= cut[2]:
        return 2
    return 1


def score(
    items: Iterable[ItemInput],
    *,
    cutoffs: Mapping[int, int],
    missed_mandatory_points: int = -10,
) -> Score:
    """The score of one evaluation's decided items."""
    items = list(items)
    if missed_mandatory_points > 0:
        raise ScoringError("missed_mandatory_points", "must be zero or negative")
    candidates: dict[str, int] = {}
    rows: dict[str, dict[str, Any]] = {}
    missed: list[str] = []
    complete = True
    for item in items:
        if item.decision not in DECISIONS:
            raise ScoringError(item.code, f"unknown decision {item.decision!r}")
        row: dict[str, Any] = {
            "code": item.code,
            "decision": item.decision,
            "points": item.points,
            "units": 0,
            "awarded": 0,
            "penalty": 0,
            "note": "",
        }
        rows[item.code] = row
        if item.decision == PENDING:
            complete = False
            row["note"] = "pending"
        elif item.decision == NOT_EVALUATED:
            if item.mandatory:
                raise ScoringError(item.code, "a mandatory measure must be decided")
            row["note"] = "no_data"
        elif item.decision == NOT_ACHIEVED:
            if item.mandatory:
                missed.append(item.code)
        else:
            if not 1 <= item.units <= item.max_units:
                raise ScoringError(item.code, f"units must be from 1 to {item.max_units}")
            row["units"] = item.units
            candidates[item.code] = item.points * item.units
    # Tiers: within a group only the achieved measure with the most points counts.
    best: dict[str, str] = {}
    for item in items:
        if item.code not in candidates or not item.exclusive_group:
            continue
        held = best.get(item.exclusive_group)
        if held is None or candidates[item.code] > candidates[held]:
            best[item.exclusive_group] = item.code
    # A mandatory measure is met by a higher achieved measure of its group (the group's best).
    by_code = {item.code: item for item in items}
    unmet: list[str] = []
    for code in missed:
        higher = best.get(by_code[code].exclusive_group)
        if higher is not None and by_code[higher].points > by_code[code].points:
            rows[code]["implied_by"] = higher
            rows[code]["note"] = f"implied_by:{higher}"
        else:
            unmet.append(code)
            rows[code]["penalty"] = missed_mandatory_points
            rows[code]["note"] = "missed_mandatory"
    missed = unmet
    for item in items:
        if item.code not in candidates:
            continue
        if item.exclusive_group and best[item.exclusive_group] != item.code:
            rows[item.code]["note"] = f"superseded_by:{best[item.exclusive_group]}"
            continue
        rows[item.code]["awarded"] = candidates[item.code]
    points = sum(r["awarded"] for r in rows.values())
    penalties = missed_mandatory_points * len(missed)
    total = points + penalties
    cut = check_cutoffs(cutoffs)
    return Score(
        total=total,
        level=level_for(total, cut),
        points=points,
        penalties=penalties,
        missed_mandatory=missed,
        complete=complete,
        items=[rows[i.code] for i in items],
        cutoffs=cut,
        missed_mandatory_points=missed_mandatory_points,
    )
