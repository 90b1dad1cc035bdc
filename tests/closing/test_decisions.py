"""The agent's send/cancel decision on its leverage result (prudencial.closing.decisions)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from prudencial.closing import decisions
from prudencial.closing.exports import decision_of
from prudencial.closing.models import Closing, LeverageDecision
from tests.closing.admin_data import make_closing
from tests.factories import UserFactory, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored():
    closing, results, agents = make_closing()
    return closing, results, agents


@pytest.fixture(autouse=True)
def signed(monkeypatch):
    """The rows of admin_data carry no enclave answer; these tests are about the decision
    rules, so the signature check answers verified (tests/closing/test_leverage_signed.py
    runs it on a real closing), except where a test sets ``signed.verified = False``."""
    from prudencial.closing import signatures

    state = type("State", (), {"verified": True})()
    monkeypatch.setattr(
        decisions,
        "signature_of",
        lambda result: signatures.Signature(
            signatures.VERIFIED if state.verified else signatures.UNVERIFIED
        ),
    )
    return state


def test_a_result_whose_signature_does_not_verify_is_not_sent(stored, signed):
    _, results, agents = stored
    signed.verified = False
    with pytest.raises(decisions.DecisionConflict) as exc:
        decisions.leverage_send(results["HIDDEN"], _user(agents["HIDDEN"]))
    assert exc.value.code == "unverified"
    assert not LeverageDecision.objects.filter(result=results["HIDDEN"]).exists()


def _user(agent, role="controls", name="decisor"):
    user = UserFactory(username=name)
    grant(user, agent, role=role)
    return user


def test_send_is_idempotent(stored):
    _, results, agents = stored
    user = _user(agents["HIDDEN"])
    first = decisions.leverage_send(results["HIDDEN"], user)
    again = decisions.leverage_send(results["HIDDEN"], user)
    assert first.pk == again.pk
    assert LeverageDecision.objects.filter(result=results["HIDDEN"]).count() == 1
    assert decision_of(results["HIDDEN"]) == "sent"


def test_cancel_needs_a_reason_and_writes_nothing_without_it(stored):
    _, results, agents = stored
    user = _user(agents["HIDDEN"])
    with pytest.raises(ValidationError) as exc:
        decisions.leverage_cancel(results["HIDDEN"], user, "   ")
    assert "reason" in exc.value.message_dict
    assert not LeverageDecision.objects.filter(result=results["HIDDEN"]).exists()


def test_cancelled_may_be_sent_but_sent_cannot_be_cancelled(stored):
    _, results, agents = stored
    user = _user(agents["HIDDEN"])
    decisions.leverage_cancel(results["HIDDEN"], user, "revisar carteira")
    decisions.leverage_send(results["HIDDEN"], user)
    with pytest.raises(decisions.DecisionConflict):
        decisions.leverage_cancel(results["HIDDEN"], user, "mudei de ideia")
    assert decision_of(results["HIDDEN"]) == "sent"


def test_only_users_with_send_permission_on_this_agent(stored):
    _, results, agents = stored
    other = _user(agents["SENT"], name="outro")
    represents = _user(agents["HIDDEN"], role="represents", name="representa")
    staff = UserFactory(username="ccee.staff", is_staff=True, is_superuser=True)
    for user in (other, represents, staff):
        with pytest.raises(PermissionDenied):
            decisions.leverage_send(results["HIDDEN"], user)
    assert not LeverageDecision.objects.filter(result=results["HIDDEN"]).exists()


def test_only_a_computed_result_of_the_current_closing(stored):
    closing, results, agents = stored
    with pytest.raises(decisions.DecisionConflict):
        decisions.leverage_send(results["MISSING"], _user(agents["MISSING"]))
    Closing.objects.filter(pk=closing.pk).update(is_current=False)
    with pytest.raises(decisions.DecisionConflict):
        decisions.leverage_send(results["HIDDEN"], _user(agents["HIDDEN"], name="d2"))


def test_selectors_hide_unsent_figures_from_staff_and_foreign_agents(stored):
    from django.http import Http404

    from prudencial.closing import selectors
    from tests.closing.admin_data import CANARY_FA

    closing, results, agents = stored
    code = closing.week.code
    own = _user(agents["HIDDEN"], name="dono")
    staff = UserFactory(username="ccee.staff2", is_staff=True, is_superuser=True)
    other = _user(agents["SENT"], name="alheio")
    mine = selectors.current_result(week_code=code, agent_id=agents["HIDDEN"].pk, user=own)
    assert selectors.figures_for(mine, own)["fa"] == CANARY_FA
    seen = selectors.current_result(week_code=code, agent_id=agents["HIDDEN"].pk, user=staff)
    assert selectors.figures_for(seen, staff) is None
    with pytest.raises(Http404):
        selectors.current_result(week_code=code, agent_id=agents["HIDDEN"].pk, user=other)
    with pytest.raises(Http404):
        selectors.history(agent_id=agents["HIDDEN"].pk, user=other)
    assert [r.pk for r in selectors.history(agent_id=agents["HIDDEN"].pk, user=own)] == [mine.pk]
