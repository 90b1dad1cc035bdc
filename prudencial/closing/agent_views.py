"""The agents' web pages of the leverage factor (the seed's "Fator de alavancagem": validate the
week's result, then send it to CCEE or cancel it with a reason), mounted at /fator/.

Thin, as the API (prudencial.closing.api) is: the reads are ``selectors``, the decisions are
``decisions.leverage_send`` / ``leverage_cancel``, the signature is re-checked on every read
(``SignatureChecker``) and a computed result whose signature does not verify cannot be sent.
Only the agent's own users (a representation in force) reach these pages; anyone else,
CCEE staff included, gets 404 as for a result that does not exist. The breakdown is a JWE to the
agent's reply key: the pages say so and never show it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from prudencial.closing import decisions, exports, selectors
from prudencial.closing.models import LeverageResult, ResultStatus
from prudencial.closing.signatures import UNSIGNED, VERIFIED, SignatureChecker
from prudencial.domain.calendar import is_week_code
from prudencial.models import Agent
from prudencial.selectors import agent_ids_permitted
from prudencial.templatetags.prudencial_format import decimal_br

MAX_REASON_CHARS = 2000  # as the API's CancelInputSerializer
PLOT_WIDTH, PLOT_HEIGHT = 640, 240
PLOT_MARGIN = {"left": 56, "right": 16, "top": 16, "bottom": 40}


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=_("Motivo do cancelamento"),
        max_length=MAX_REASON_CHARS,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )


# --- reads ---------------------------------------------------------------------------------------


def _own_agent(request: HttpRequest, agent_id: int) -> Agent:
    """The agent, when the user acts for it today; else 404 (as an agent that does not exist)."""
    if not selectors.is_agent_user(request.user, agent_id):
        raise Http404(gettext("Resultado inexistente."))
    return Agent.objects.get(pk=agent_id)


def _own_result(request: HttpRequest, agent_id: int, week_code: str) -> LeverageResult:
    """The current closing's result of (week, agent) for the agent's own users only: staff who
    may read results in the admin get 404 here too (these are the agents' pages)."""
    if not is_week_code(week_code):
        raise Http404(gettext("Resultado inexistente."))
    _own_agent(request, agent_id)
    return selectors.current_result(week_code=week_code, agent_id=agent_id, user=request.user)


def _may_decide(result: LeverageResult, user) -> bool:
    try:
        decisions.check_may_decide(result, user)
    except PermissionDenied:
        return False
    return True


def _send_refusal(result: LeverageResult, checker: SignatureChecker) -> str:
    """Why the result cannot be sent because of its signature (decisions.check_sendable)."""
    try:
        decisions.check_sendable(result, checker.check(result))
    except decisions.DecisionConflict as exc:
        return exc.messages[0]
    return ""


def _status_label(status: str) -> str:
    return exports.status_label(status, "")


def _signature_label(status: str) -> str:
    return {
        VERIFIED: gettext("verificada"),
        UNSIGNED: gettext("sem assinatura (nada foi ao enclave)"),
    }.get(status, gettext("não verificada"))


def _result_context(request: HttpRequest, result: LeverageResult, **extra) -> dict[str, Any]:
    checker = SignatureChecker()
    signature = checker.check(result)
    figures = selectors.figures_for(result, request.user) or {}
    decision = selectors.decision_summary(result)
    may_decide = _may_decide(result, request.user)
    open_to_decide = (
        result.status == ResultStatus.COMPUTED
        and result.closing.is_current
        and decision["state"] != exports.DECISION_SENT
    )
    network = figures.get("network") or {}
    context = {
        "result": result,
        "agent": result.agent,
        "week": result.closing.week,
        "closing": selectors.closing_reference(result.closing),
        "status_label": _status_label(result.status),
        "figures": figures,
        "network": network,
        "decision": decision,
        "decision_label": exports.decision_label(decision["state"]),
        "signature": signature,
        "signature_label": _signature_label(signature.status),
        "may_decide": may_decide,
        "can_send": may_decide and open_to_decide and signature.verified,
        "can_cancel": may_decide and open_to_decide,
        "send_refusal": _send_refusal(result, checker) if open_to_decide else "",
        "has_breakdown": bool(result.breakdown_jwe),
        "cancel_form": CancelForm(),
        "confirm_send": False,
    }
    context.update(extra)
    return context


# --- pages ---------------------------------------------------------------------------------------


@never_cache
@login_required
@require_GET
def agent_list(request: HttpRequest) -> HttpResponse:
    """The agents the user acts for, with each one's latest current-closing result."""
    agents = list(
        Agent.objects.filter(id__in=agent_ids_permitted(user=request.user)).order_by("acronym")
    )
    latest = {
        r.agent_id: r
        for r in exports.annotate_decisions(
            LeverageResult.objects.filter(agent__in=agents, closing__is_current=True)
        )
        .select_related("closing__week")
        .defer("breakdown_jwe")
        .order_by("agent_id", "-closing__week__code")
        .distinct("agent_id")
    }
    rows = []
    for agent in agents:
        result = latest.get(agent.pk)
        rows.append(
            {
                "agent": agent,
                "result": result,
                "status_label": _status_label(result.status) if result else "",
                "decision_label": exports.decision_label(exports.decision_of(result))
                if result
                else "",
            }
        )
    return render(request, "closing/agent_list.html", {"rows": rows})


@never_cache
@login_required
@require_GET
def result_detail(request: HttpRequest, agent_id: int, week_code: str) -> HttpResponse:
    """The week's result: figures, network indicators, decision, signature, the two forms."""
    result = _own_result(request, agent_id, week_code)
    return render(request, "closing/agent_result.html", _result_context(request, result))


def _refused(request, result, message: str, status: int, **extra) -> HttpResponse:
    return render(
        request,
        "closing/agent_result.html",
        _result_context(request, result, error=message, **extra),
        status=status,
    )


@never_cache
@login_required
@require_POST
def result_send(request: HttpRequest, agent_id: int, week_code: str) -> HttpResponse:
    """Send to CCEE: a first POST asks to confirm (the send is final), a second with
    ``confirm=yes`` sends; sending again answers the same decision."""
    result = _own_result(request, agent_id, week_code)
    try:
        decisions.check_may_decide(result, request.user)
    except PermissionDenied as exc:
        return _refused(request, result, str(exc), 403)
    refusal = _send_refusal(result, SignatureChecker())
    if refusal:
        messages.error(request, refusal)
        return redirect("leverage:result", agent_id=agent_id, week_code=week_code)
    if request.POST.get("confirm") != "yes":
        return render(
            request,
            "closing/agent_result.html",
            _result_context(request, result, confirm_send=True),
        )
    try:
        decisions.leverage_send(result, request.user)
    except decisions.DecisionConflict as exc:
        messages.error(request, exc.messages[0])
    except PermissionDenied as exc:
        return _refused(request, result, str(exc), 403)
    else:
        messages.success(request, gettext("Resultado enviado à CCEE."))
    return redirect("leverage:result", agent_id=agent_id, week_code=week_code)


@never_cache
@login_required
@require_POST
def result_cancel(request: HttpRequest, agent_id: int, week_code: str) -> HttpResponse:
    """Cancel, with a reason (the field's error is shown on the page; nothing is written)."""
    result = _own_result(request, agent_id, week_code)
    try:
        decisions.check_may_decide(result, request.user)
    except PermissionDenied as exc:
        return _refused(request, result, str(exc), 403)
    form = CancelForm(request.POST)
    if form.is_valid():
        try:
            decisions.leverage_cancel(result, request.user, form.cleaned_data["reason"])
        except decisions.DecisionConflict as exc:
            messages.error(request, exc.messages[0])
            return redirect("leverage:result", agent_id=agent_id, week_code=week_code)
        except PermissionDenied as exc:
            return _refused(request, result, str(exc), 403)
        except ValidationError as exc:  # the service's own "reason" rule (e.g. only blanks)
            form.add_error(None, exc)
        else:
            messages.success(request, gettext("Resultado cancelado."))
            return redirect("leverage:result", agent_id=agent_id, week_code=week_code)
    return render(
        request,
        "closing/agent_result.html",
        _result_context(request, result, cancel_form=form),
        status=400,
    )


# --- history -------------------------------------------------------------------------------------


def _fa_plot(points: list[tuple[str, float]]) -> dict[str, Any] | None:
    """The geometry of the inline SVG line plot of FA by week (oldest first). Every number is
    formatted here with a dot, so the template's localisation cannot turn it into "1,5"."""
    if not points:
        return None
    left, right = PLOT_MARGIN["left"], PLOT_WIDTH - PLOT_MARGIN["right"]
    top, bottom = PLOT_MARGIN["top"], PLOT_HEIGHT - PLOT_MARGIN["bottom"]
    values = [fa for _, fa in points]
    low, high = min(0.0, min(values)), max(values)
    if high <= low:
        high = low + 1.0
    step = (right - left) / (len(points) - 1) if len(points) > 1 else 0.0

    def y_of(value: float) -> float:
        return bottom - (value - low) / (high - low) * (bottom - top)

    dots = []
    for index, (week, fa) in enumerate(points):
        x = left + index * step if len(points) > 1 else (left + right) / 2
        dots.append({"x": f"{x:.1f}", "y": f"{y_of(fa):.1f}", "week": week, "fa": decimal_br(fa)})
    ticks = [
        {"y": f"{y_of(v):.1f}", "label": decimal_br(v, 2)} for v in (low, (low + high) / 2, high)
    ]
    return {
        "width": PLOT_WIDTH,
        "height": PLOT_HEIGHT,
        "left": left,
        "tick_x": left - 6,
        "right": right,
        "top": top,
        "bottom": bottom,
        "label_y": bottom + 28,
        "polyline": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots,
        "ticks": ticks,
    }


@never_cache
@login_required
@require_GET
def history(request: HttpRequest, agent_id: int) -> HttpResponse:
    """FA week by week (superseded closings flagged), and the plot of the current ones."""
    agent = _own_agent(request, agent_id)
    checker = SignatureChecker()
    rows = []
    for result in selectors.history(agent_id=agent_id, user=request.user):
        closing = selectors.closing_reference(result.closing)
        rows.append(
            {
                "week": result.closing.week.code,
                "closing": closing,
                "is_current": result.closing.is_current,
                "status_label": _status_label(result.status),
                "fa": result.fa,
                "fa_risk": result.fa_risk,
                "decision_label": exports.decision_label(exports.decision_of(result)),
                "signature": checker.check(result),
                "correction_why": (closing["correction"] or {}).get("why", "")
                or (result.closing.reason if result.closing.sequence > 1 else ""),
            }
        )
    points = [
        (row["week"], row["fa"])
        for row in reversed(rows)
        if row["is_current"] and row["fa"] is not None
    ]
    return render(
        request,
        "closing/agent_history.html",
        {"agent": agent, "rows": rows, "plot": _fa_plot(points)},
    )
