"""Communities across weeks (the paper's future work): which community became which.

Each week's communities are matched to the previous week's by member overlap: communities P
(last week) and C (this week) are linked when their Jaccard index |P ∩ C| / |P ∪ C| reaches
`threshold` (0.3 by default, as in Greene, Doyle and Cunningham 2010). From the links:

- **continuation**: P and C linked only to each other;
- **split**: P linked to two or more of this week's communities;
- **merge**: C linked to two or more of last week's;
- **birth**: C linked to none; **death**: P linked to none.

A split and a merge can involve the same communities (both are reported). Each community also
gets a *lineage* (a name that persists across weeks): a community inherits the lineage of the
linked predecessor with the largest overlap not already taken by a larger successor, else a new
one — so the largest part of a split and the result of a merge keep the name.

Input per week: `{agent_id: community or None}` (None: the agent was in no community that
week, e.g. it did not trade) — what the host stores; only published identifiers are used.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Jaccard index from which two communities of consecutive weeks are linked (Greene, Doyle and
#: Cunningham 2010); the closing may set another (network.tracking.threshold).
DEFAULT_THRESHOLD = 0.3

EVENT_KINDS = ("continuation", "split", "merge", "birth", "death")

Membership = Mapping[str, Hashable | None]


def _groups(membership: Membership, where: str) -> dict[Hashable, frozenset[str]]:
    if not isinstance(membership, Mapping):
        raise ValueError(f"{where} must be a mapping {{agent: community or None}}")
    out: dict[Hashable, set[str]] = {}
    for agent, community in membership.items():
        if not isinstance(agent, str) or not agent:
            raise ValueError(f"{where}: agent ids must be non-empty strings (got {agent!r})")
        if community is None:
            continue
        if isinstance(community, bool) or not isinstance(community, int | str):
            raise ValueError(
                f"{where}[{agent}]: community must be an integer, a string or None "
                f"(got {community!r})"
            )
        out.setdefault(community, set()).add(agent)
    return {c: frozenset(m) for c, m in out.items()}


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


@dataclass(frozen=True)
class Transition:
    """Links, flows and events between two consecutive weeks."""

    before: str
    after: str
    links: tuple[dict[str, Any], ...]
    flows: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.before,
            "to": self.after,
            "links": list(self.links),
            "flows": list(self.flows),
            "events": list(self.events),
        }

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e["kind"] == kind)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int) else (1, str(value))


def _key(value: Any) -> tuple[int, Any]:
    """Sort key that puts None (no community) last."""
    return (2, "") if value is None else _sort_key(value)


def compare_weeks(
    previous: Membership,
    current: Membership,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    before: str = "previous",
    after: str = "current",
) -> Transition:
    """Match `current`'s communities to `previous`'s and classify what happened."""
    threshold = _check_threshold(threshold)
    old = _groups(previous, before)
    new = _groups(current, after)
    links = []
    for p in sorted(old, key=_sort_key):
        for c in sorted(new, key=_sort_key):
            shared = len(old[p] & new[c])
            if not shared:
                continue
            j = jaccard(old[p], new[c])
            if j >= threshold:
                links.append({"from": p, "to": c, "jaccard": round(j, 6), "shared": shared})
    succ: dict[Hashable, list[dict[str, Any]]] = {p: [] for p in old}
    pred: dict[Hashable, list[dict[str, Any]]] = {c: [] for c in new}
    for link in links:
        succ[link["from"]].append(link)
        pred[link["to"]].append(link)
    events: list[dict[str, Any]] = []
    for p in sorted(old, key=_sort_key):
        if not succ[p]:
            events.append({"kind": "death", "from": [p], "to": [], "size": len(old[p])})
        elif len(succ[p]) >= 2:
            events.append(
                {"kind": "split", "from": [p], "to": [x["to"] for x in succ[p]],
                 "jaccard": [x["jaccard"] for x in succ[p]]}
            )  # fmt: skip
    for c in sorted(new, key=_sort_key):
        if not pred[c]:
            events.append({"kind": "birth", "from": [], "to": [c], "size": len(new[c])})
        elif len(pred[c]) >= 2:
            events.append(
                {"kind": "merge", "from": [x["from"] for x in pred[c]], "to": [c],
                 "jaccard": [x["jaccard"] for x in pred[c]]}
            )  # fmt: skip
        elif len(succ[pred[c][0]["from"]]) == 1:
            link = pred[c][0]
            events.append(
                {"kind": "continuation", "from": [link["from"]], "to": [c],
                 "jaccard": [link["jaccard"]]}
            )  # fmt: skip
    # Agent flows between communities (None: not in a community that week / absent).
    agents = set(previous) | set(current)
    counts: dict[tuple[Any, Any], int] = {}
    for agent in agents:
        key = (previous.get(agent), current.get(agent))
        if key == (None, None):
            continue
        counts[key] = counts.get(key, 0) + 1
    flows = tuple(
        {"from": a, "to": b, "agents": n}
        for (a, b), n in sorted(counts.items(), key=lambda kv: (_key(kv[0][0]), _key(kv[0][1])))
    )
    return Transition(before, after, tuple(links), flows, tuple(events))


def _check_threshold(threshold: float) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in (0, 1] (got {threshold!r})") from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"threshold must be in (0, 1] (got {threshold!r})")
    return value


@dataclass(frozen=True)
class Tracking:
    """Communities of several weeks matched week to week, with lineages and agent histories."""

    weeks: tuple[str, ...]
    threshold: float
    communities: dict[str, list[dict[str, Any]]]
    transitions: tuple[Transition, ...]
    history: dict[str, list[Any]] = field(repr=False)
    lineage_history: dict[str, list[str | None]] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "prudencial/tracking/v1",
            "threshold": self.threshold,
            "weeks": list(self.weeks),
            "communities": self.communities,
            "transitions": [t.to_dict() for t in self.transitions],
            "agents": {
                a: {"community": self.history[a], "lineage": self.lineage_history[a]}
                for a in sorted(self.history)
            },  # fmt: skip
            "counts": [
                {"from": t.before, "to": t.after, **{k: t.count(k) for k in EVENT_KINDS}}
                for t in self.transitions
            ],
        }

    def agent_history(self, agent: str) -> list[tuple[str, Any, str | None]]:
        """[(week, community, lineage)] of one agent (community None when it was in none)."""
        if agent not in self.history:
            raise KeyError(agent)
        return list(zip(self.weeks, self.history[agent], self.lineage_history[agent], strict=True))


def track_communities(
    weeks: Sequence[tuple[str, Membership]] | Mapping[str, Membership],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> Tracking:
    """Match each week's communities to the previous week's; weeks oldest first.

    `weeks`: [(week code, {agent: community or None}), …] or a mapping in that order.
    """
    threshold = _check_threshold(threshold)
    items = list(weeks.items()) if isinstance(weeks, Mapping) else list(weeks)
    if not items:
        raise ValueError("weeks must hold at least one week")
    codes = []
    for i, item in enumerate(items):
        if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"weeks[{i}] must be (week code, {{agent: community}})")
        codes.append(item[0])
    if len(set(codes)) != len(codes):
        raise ValueError("weeks must not repeat a week code")
    groups = [_groups(m, f"weeks[{i}]") for i, (_, m) in enumerate(items)]
    lineage: list[dict[Hashable, str]] = []
    counter = 0

    def fresh() -> str:
        nonlocal counter
        counter += 1
        return f"L{counter}"

    first = groups[0]
    lineage.append(
        {c: fresh() for c in sorted(first, key=lambda c: (-len(first[c]), _sort_key(c)))}
    )
    transitions = []
    for i in range(1, len(items)):
        t = compare_weeks(
            items[i - 1][1], items[i][1], threshold=threshold, before=codes[i - 1], after=codes[i]
        )
        transitions.append(t)
        pred: dict[Hashable, list[dict[str, Any]]] = {}
        for link in t.links:
            pred.setdefault(link["to"], []).append(link)
        taken: set[Hashable] = set()
        names: dict[Hashable, str] = {}
        current = groups[i]
        for c in sorted(current, key=lambda c: (-len(current[c]), _sort_key(c))):
            options = sorted(
                pred.get(c, []), key=lambda x: (-x["shared"], -x["jaccard"], _sort_key(x["from"]))
            )
            chosen = next((x["from"] for x in options if x["from"] not in taken), None)
            if chosen is None:
                names[c] = fresh()
            else:
                taken.add(chosen)
                names[c] = lineage[i - 1][chosen]
        lineage.append(names)
    communities = {
        code: [
            {"community": c, "size": len(groups[i][c]), "lineage": lineage[i][c]}
            for c in sorted(groups[i], key=_sort_key)
        ]
        for i, code in enumerate(codes)
    }
    agents = sorted({a for _, m in items for a in m})
    history = {a: [m.get(a) for _, m in items] for a in agents}
    lineage_history = {
        a: [None if c is None else lineage[i][c] for i, c in enumerate(history[a])] for a in agents
    }
    return Tracking(
        weeks=tuple(codes),
        threshold=threshold,
        communities=communities,
        transitions=tuple(transitions),
        history=history,
        lineage_history=lineage_history,
    )
