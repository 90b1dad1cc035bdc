"""What closing_network computes beyond the paper's network model (docs/enclave.md, "Closing").

- **Systemic measures** (``prudencial.risk.systemic``: DebtRank, Eisenberg–Noe clearing,
  cover-2) on the week's market, with the network model's own result (so the reference prices
  are the ones the indicator used) and, unless ``network.systemic.pld`` names stress prices,
  the week's PLD scenarios, whose ``confidence`` quantiles are the stress scenarios "high"
  and "low". Published through ``disclosure.published_systemic``: shares, counts and agent
  acronyms, never capital, obligations or prices.
- **Community tracking** (``prudencial.risk.tracking.compare_weeks``): last week's communities
  (the host's ``previous``, agent acronym → community) matched to this week's by member overlap;
  the transition (links, agent flows between communities, births, deaths, splits, merges) is
  published with its lists bounded. It names communities and counts, no agent.

Both are answered as ``{"skipped": reason}`` when they cannot be computed (disabled, no network
model this week, no previous week, a market the engine refuses); the closing goes on without
them: the FA and the network figures do not depend on them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from enclave_bridge.wire.protocol import describe_failure
from prudencial.risk.tracking import DEFAULT_THRESHOLD

from .disclosure import published_systemic

logger = logging.getLogger(__name__)

#: At most this many links, flows and events each in the published transition (the full
#: counts are always given; ``truncated`` says which lists were cut).
MAX_TRACKING_ENTRIES = 2_000
#: Default Jaccard index linking two communities (tracking.compare_weeks, the rule's one
#: place); the closing's ``network.tracking.threshold`` overrides it.
TRACKING_THRESHOLD = DEFAULT_THRESHOLD


def systemic_answer(
    market: Any, engine: Any, scenarios: Any, spec: Mapping[str, Any], request_id: Any = None
) -> dict[str, Any]:
    """The published systemic measures, or ``{"skipped": reason}``. ``spec`` is
    ``compute._systemic_options``' ``{"enabled", "options"}``."""
    if not spec.get("enabled", True):
        return {"skipped": "disabled by network.systemic.enabled"}
    if engine is None or market is None:
        return {"skipped": "no network model this week"}
    from prudencial.risk.systemic import systemic_measures

    options = dict(spec.get("options") or {})
    if options.get("pld") is None:
        if scenarios is None:
            return {"skipped": "no PLD scenarios to take the stress prices from"}
        options["pld"] = scenarios.pld  # their high / low quantiles at `confidence`
    try:
        result = systemic_measures(market, engine, options=options)
    except (ValueError, TypeError, ArithmeticError) as exc:
        # Options were checked before the model ran; what is left describes the market (e.g.
        # every capital 0): say only that it failed, log the type, never a value.
        logger.warning("request=%s systemic measures failed: %s", request_id, describe_failure(exc))
        return {"skipped": "the systemic measures could not be computed for this market"}
    return published_systemic(result)


def _membership(agents: Any) -> dict[str, int | None]:
    """{acronym: community} of this week's published agent rows; an isolated agent (no traded
    volume, no rank) is in no community."""
    out: dict[str, int | None] = {}
    for row in agents or []:
        if isinstance(row, Mapping) and isinstance(row.get("agent"), str):
            community = row.get("community")
            isolated = row.get("community_rank") is None
            out[row["agent"]] = None if isolated or not isinstance(community, int) else community
    return out


def _bounded(items: list[dict[str, Any]], name: str, truncated: dict[str, int]) -> list:
    if len(items) > MAX_TRACKING_ENTRIES:
        truncated[name] = len(items)
        return items[:MAX_TRACKING_ENTRIES]
    return items


def tracking_answer(
    previous: Mapping[str, int] | None,
    agents: Any,
    *,
    week: str,
    previous_week: str | None = None,
    threshold: float = TRACKING_THRESHOLD,
) -> dict[str, Any]:
    """Last week's communities → this week's (``compare_weeks``), or ``{"skipped": reason}``."""
    if previous is None:
        return {"skipped": "no previous week's communities"}
    current = _membership(agents)
    if not current:
        return {"skipped": "no network model this week"}
    from prudencial.risk.tracking import EVENT_KINDS, compare_weeks

    transition = compare_weeks(
        previous,
        current,
        threshold=threshold,
        before=previous_week or "previous",
        after=week,
    )
    raw = transition.to_dict()
    truncated: dict[str, int] = {}
    answer = {
        "schema": "prudencial/tracking-transition/v1",
        "from": raw["from"],
        "to": raw["to"],
        "threshold": threshold,
        "communities": {
            "previous": len({c for c in previous.values() if c is not None}),
            "current": len({c for c in current.values() if c is not None}),
        },
        "agents": {
            "previous": sum(1 for c in previous.values() if c is not None),
            "current": sum(1 for c in current.values() if c is not None),
            "stayed": sum(
                1 for a, c in current.items() if c is not None and previous.get(a) is not None
            ),
        },
        "counts": {kind: transition.count(kind) for kind in EVENT_KINDS},
        "links": _bounded(raw["links"], "links", truncated),
        "flows": _bounded(raw["flows"], "flows", truncated),
        "events": _bounded(raw["events"], "events", truncated),
    }
    if truncated:
        answer["truncated"] = truncated
    return answer
