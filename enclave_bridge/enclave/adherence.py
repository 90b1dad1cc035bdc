"""The seal's risk adherence (aderência à metodologia de risco), computed inside the enclave.

Op ``adherence``, args ``{envelope, agent: {acronym, cnpj}, week, parameters, limit}``: the
agent's accepted portfolio envelope of ``week`` is opened and validated with the same verdict as
``validate``; under the week's stress scenarios (``prudencial.risk.leverage.leverage_stress``:
PLD floor and cap, parallel shifts of the curve ±100 R$/MWh) and the week's per-bucket stress
prices, its potential loss is

    L = max( max_s max(0, MtM_base − MtM_s),  stress parcel of the base curve )      (R$)

and the exposure the PLA supports is ``limit · PLA``. The answer (signed like every answer)
carries only ``adherent`` / ``not_adherent``, the margin ``limit − L / PLA`` as a fraction of
PLA (rounded to 4 places) and which scenario was the worst — never an R$ figure, the PLA or a
position. A PLA ≤ 0 supports no exposure: not adherent, margin None.

The week's parameters are pinned like ``compute``'s (``BatchOps._pinned_parameters``): the host
cannot ask the same envelope under many crafted parameter sets and difference the margins.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from enclave_bridge.wire.protocol import (
    E_BAD_REQUEST,
    E_INTERNAL,
    ProtocolError,
    Request,
    describe_failure,
)
from prudencial.risk.leverage import leverage_stress

from .checks import check_envelope
from .split import check_week
from .validation import check_expected

logger = logging.getLogger(__name__)

MARGIN_DIGITS = 4
MAX_LIMIT = 100.0
STRESS_PRICES = "stress_prices"


def potential_loss(portfolio: Any, parameters: Any) -> tuple[float, float, str]:
    """(potential loss L in R$, PLA in R$, worst scenario's name) of a validated portfolio."""
    results = leverage_stress(portfolio, parameters)
    base = results.pop("base")
    mtm_base = sum(base.mtm_by_bucket)
    worst_name, worst = STRESS_PRICES, max(0.0, base.extra_risk)
    for name, result in results.items():
        loss = max(0.0, mtm_base - sum(result.mtm_by_bucket))
        if loss > worst:
            worst_name, worst = name, loss
    return worst, base.pla, worst_name


def adherence_verdict(portfolio: Any, parameters: Any, limit: float) -> dict[str, Any]:
    """The public answer for one portfolio: status, margin (fraction of PLA), worst scenario."""
    loss, pla, worst = potential_loss(portfolio, parameters)
    if not pla > 0:
        return {"status": "not_adherent", "margin": None, "worst_scenario": worst, "reason": "pla"}
    margin = limit - loss / pla
    if not math.isfinite(margin):
        raise ValueError("margin is not finite")
    return {
        "status": "adherent" if loss <= limit * pla else "not_adherent",
        "margin": round(margin, MARGIN_DIGITS),
        "worst_scenario": worst,
        "reason": None,
    }


def _limit(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ProtocolError(E_BAD_REQUEST, "limit must be a number (a fraction of PLA)")
    limit = float(raw)
    if not (math.isfinite(limit) and 0 < limit <= MAX_LIMIT):
        raise ProtocolError(E_BAD_REQUEST, f"limit must be above 0 and at most {MAX_LIMIT:g}")
    return limit


def op_adherence(service: Any, req: Request) -> dict[str, Any]:
    """The ``adherence`` op of Service (registered in service.py's ops table)."""
    keys = service.keys
    assert keys is not None
    args = req.args
    week = check_week(args.get("week"))
    limit = _limit(args.get("limit"))
    parameters = service._pinned_parameters(args.get("parameters"))
    if parameters.week != week:
        raise ProtocolError(E_BAD_REQUEST, "parameters.week must be the week named")
    expected = check_expected(
        {
            "agent": args.get("agent"),
            "week": week,
            "energy_types": list(parameters.energy_types),
            "bucket_labels": [b.label for b in parameters.buckets],
        }
    )
    outcome = check_envelope(keys, args.get("envelope"), "portfolio", expected)
    answer: dict[str, Any] = {"week": week, "agent": expected["agent"], "limit": limit}
    if outcome.status != "accepted" or outcome.payload is None:
        return {**answer, "status": "rejected", "margin": None, "errors": outcome.errors}
    try:
        verdict = adherence_verdict(outcome.payload, parameters, limit)
    except Exception as exc:  # the engine's messages may quote values: say only where
        logger.warning("request=%s adherence failed: %s", req.id, describe_failure(exc))
        raise ProtocolError(
            E_INTERNAL, "adherence could not be computed for this portfolio"
        ) from None
    finally:
        outcome.payload = None
    return {**answer, **verdict, "errors": []}
