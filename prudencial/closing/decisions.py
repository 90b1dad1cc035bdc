"""The agent's decision on its leverage result: send it to CCEE or cancel it.

Rules (why): only the agent's users holding ``send_leverage_result`` through a representation in
force decide; only a computed result of the week's current closing can be decided (a superseded
closing's figures are history). The latest ``LeverageDecision`` is the decision: sending an
already-sent result writes no second row (idempotent); a cancelled result may be sent later (the
agent fixed its doubt), and a sent one may be cancelled, with a non-empty reason (the DB check
``decision_cancel_has_reason`` enforces it). The result row is locked so two concurrent calls
write one decision.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from prudencial.closing.exports import DECISION_SENT, decision_of
from prudencial.closing.models import DecisionAction, LeverageDecision, LeverageResult, ResultStatus
from prudencial.selectors import agent_ids_permitted

PERMISSION = "send_leverage_result"


class DecisionError(Exception):
    """A decision the rules refuse; ``code`` maps to the HTTP status (forbidden 403, conflict
    409, invalid 400), ``field`` names the offending input."""

    def __init__(self, code: str, message, field: str | None = None) -> None:
        super().__init__(str(message))
        self.code, self.message, self.field = code, message, field


def _locked(result: LeverageResult, by) -> LeverageResult:
    if not agent_ids_permitted(user=by, permission=PERMISSION).filter(pk=result.agent_id).exists():
        raise DecisionError("forbidden", _("Sem permissão para decidir o resultado deste agente."))
    locked = LeverageResult.objects.select_for_update().select_related("closing").get(pk=result.pk)
    if not locked.closing.is_current:
        raise DecisionError("conflict", _("O resultado não é do fechamento vigente."))
    if locked.status != ResultStatus.COMPUTED:
        raise DecisionError(
            "conflict", _("Só um resultado calculado pode ser enviado ou cancelado.")
        )
    return locked


@transaction.atomic
def leverage_send(result: LeverageResult, by) -> LeverageDecision:
    """Send the result to CCEE; a second send returns the existing decision."""
    locked = _locked(result, by)
    if decision_of(locked) == DECISION_SENT:
        return locked.decisions.order_by("-at", "-pk").first()
    return LeverageDecision.objects.create(result=locked, action=DecisionAction.SENT, by=by)


@transaction.atomic
def leverage_cancel(result: LeverageResult, by, reason: str) -> LeverageDecision:
    """Cancel the result with a reason (required: it is what CCEE reads of a cancellation)."""
    reason = (reason or "").strip()
    if not reason:
        raise DecisionError(
            "invalid", _("reason: o motivo do cancelamento é obrigatório."), "reason"
        )
    locked = _locked(result, by)
    return LeverageDecision.objects.create(
        result=locked, action=DecisionAction.CANCELLED, reason=reason, by=by
    )
