"""The agent's decision on its leverage result: send it to CCEE or cancel it.

Rules (docs/closing.md): only a user holding ``send_leverage_result`` on the agent through a
representation in force may decide; only a computed result of the week's current closing; a
send is final (sending again returns the same decision, cancelling after it is a conflict) and
needs the enclave's signature over the result to verify; a cancel needs a reason and may be
followed by a send while the closing is current.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from prudencial.closing.exports import DECISION_SENT, decision_of
from prudencial.closing.models import DecisionAction, LeverageDecision, LeverageResult, ResultStatus
from prudencial.closing.signatures import check as signature_of
from prudencial.selectors import agent_ids_permitted

SEND_PERMISSION = "send_leverage_result"


class DecisionConflict(ValidationError):
    """The result's state forbids the action (not computed, superseded, already sent): 409."""


def check_may_decide(result: LeverageResult, by) -> None:
    """PermissionDenied unless ``by`` holds send_leverage_result on the result's agent."""
    if (
        not agent_ids_permitted(user=by, permission=SEND_PERMISSION)
        .filter(content_object_id=result.agent_id)
        .exists()
    ):
        raise PermissionDenied(_("Sem permissão para decidir sobre o resultado deste agente."))


def _locked(result: LeverageResult, by) -> LeverageResult:
    """The result row locked for the decision, after checking who decides."""
    check_may_decide(result, by)
    locked = (
        LeverageResult.objects.select_for_update(of=("self",))
        .select_related("closing__week", "agent", "chunk")
        .get(pk=result.pk)
    )
    if not locked.closing.is_current:
        raise DecisionConflict(_("O resultado é de um fechamento substituído."), code="superseded")
    if locked.status != ResultStatus.COMPUTED:
        raise DecisionConflict(
            _("Só um resultado calculado pode ser enviado ou cancelado."), code="not_computed"
        )
    return locked


def check_sendable(result: LeverageResult, signature=None) -> None:
    """DecisionConflict ``unverified`` unless a computed result's enclave signature verifies
    now (prudencial.closing.signatures): CCEE must not receive a figure the enclave did not
    sign, e.g. a row edited in the database."""
    if result.status != ResultStatus.COMPUTED:
        return
    if signature is None:
        signature = signature_of(result)
    if not signature.verified:
        raise DecisionConflict(
            _(
                "A assinatura do enclave sobre este resultado não confere: ele não pode ser enviado."
            ),
            code="unverified",
        )


@transaction.atomic
def leverage_send(result: LeverageResult, by) -> LeverageDecision:
    """Send the result to CCEE: idempotent, a second send returns the first decision; only a
    result whose signature verifies (check_sendable)."""
    locked = _locked(result, by)
    if decision_of(locked) == DECISION_SENT:
        return locked.decisions.filter(action=DecisionAction.SENT).order_by("-at", "-pk").first()
    check_sendable(locked)
    return LeverageDecision.objects.create(result=locked, action=DecisionAction.SENT, by=by)


@transaction.atomic
def leverage_cancel(result: LeverageResult, by, reason: str) -> LeverageDecision:
    """Cancel the result with a reason; a sent result cannot be cancelled (CCEE already has it)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Informe o motivo do cancelamento.")}, code="required")
    locked = _locked(result, by)
    if decision_of(locked) == DECISION_SENT:
        raise DecisionConflict(_("O resultado já foi enviado à CCEE."), code="already_sent")
    return LeverageDecision.objects.create(
        result=locked, action=DecisionAction.CANCELLED, reason=reason, by=by
    )
