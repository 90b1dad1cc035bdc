"""Weeks (reporting events): creation, dates and lifecycle. Their parameters are written by
prudencial.services.parameters.

The lifecycle is scheduled → open → closed → computed → published; only week_transition
changes a status, and it refuses every other move with a message that says what is allowed.
A week opens only with parameters that pass the enclave's own checks.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from prudencial.domain import calendar
from prudencial.domain.errors import DomainError
from prudencial.domain.market import BUCKET_COUNT
from prudencial.exceptions import TransitionError
from prudencial.models import RiskParameters, User, Week, WeekStatus
from prudencial.services.parameters import (
    check_parameters,
    parameters_copy,
)

logger = logging.getLogger(__name__)

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    WeekStatus.SCHEDULED: (WeekStatus.OPEN,),
    WeekStatus.OPEN: (WeekStatus.CLOSED,),
    WeekStatus.CLOSED: (WeekStatus.COMPUTED,),
    WeekStatus.COMPUTED: (WeekStatus.PUBLISHED,),
    WeekStatus.PUBLISHED: (),
}


def next_week_code(month: date) -> str:
    """YYYYMM + the next 3-digit sequence of that month (202303001, 202303002, …)."""
    prefix = calendar.week_code_prefix(month)
    last = (
        Week.objects.filter(code__startswith=prefix)
        .order_by("-code")
        .values_list("code", flat=True)
        .first()
    )
    try:
        return calendar.next_week_code(month, last)
    except DomainError:
        raise ValidationError(
            {"code": _("O mês %(month)s já tem 999 semanas.") % {"month": prefix}},
            code="week_sequence_full",
        ) from None


def _code_month(code: str) -> date:
    return calendar.parse_week_code(code, "code")[0]


@transaction.atomic
def week_create(
    *,
    operation_start: date,
    operation_end: date,
    opens_at: datetime,
    deadline: datetime,
    code: str | None = None,
    by: User | None = None,
) -> Week:
    """Schedule a week. Its parameters start as a copy of the latest earlier week's, with M+0 the
    month of the code; CCEE staff then adjust them. The code's month is the operation end's."""
    code_month = date(operation_end.year, operation_end.month, 1)
    if code and code[:6] != f"{code_month:%Y%m}":
        raise ValidationError(
            {
                "code": _("O código %(code)s deve começar por %(month)s, o mês do fim de operação.")
                % {"code": code, "month": f"{code_month:%Y%m}"}
            },
            code="week_code_month",
        )
    week = Week(
        code=code or next_week_code(code_month),
        operation_start=operation_start,
        operation_end=operation_end,
        opens_at=opens_at,
        deadline=deadline,
        status=WeekStatus.SCHEDULED,
    )
    week.full_clean()
    week.save()
    previous = (
        RiskParameters.objects.filter(week__code__lt=week.code)
        .order_by("-week__code")
        .select_related("week")
        .first()
    )
    if previous is not None:
        parameters_copy(
            source=previous,
            week=week,
            first_month=_code_month(week.code),
            by=by,
        )
    logger.info("week %s scheduled by user=%s", week.code, getattr(by, "pk", None))
    return week


WEEK_EDITABLE_FIELDS = ("operation_start", "operation_end", "opens_at", "deadline", "code")


@transaction.atomic
def week_update(*, week: Week, by: User | None = None, **changes) -> Week:
    """Change a scheduled week's operation dates, window or code, validated as week_create does.

    Only a scheduled week may change (once open, agents rely on its window). The code stays of
    the operation end's month: an explicit code must be of that month, and when the operation
    end moves to another month without one, the week takes that month's next code. The
    parameters' M+0 follows the code's month, as week_create sets it.
    """
    unknown = sorted(set(changes) - set(WEEK_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(
            {f: _("Este campo não pode ser alterado na semana.") for f in unknown},
            code="week_field_not_editable",
        )
    locked = Week.objects.select_for_update().get(pk=week.pk)
    if locked.status != WeekStatus.SCHEDULED:
        raise ValidationError(
            {
                "status": _(
                    "A semana %(code)s está %(status)s: "
                    "só semanas agendadas podem ter datas ou janela alteradas."
                )
                % {"code": locked.code, "status": WeekStatus(locked.status).label}
            },
            code="week_not_scheduled",
        )
    old_code = locked.code
    for field, value in changes.items():
        setattr(locked, field, value)
    end_month = date(locked.operation_end.year, locked.operation_end.month, 1)
    if changes.get("code"):
        if locked.code[:6] != f"{end_month:%Y%m}":
            raise ValidationError(
                {
                    "code": _(
                        "O código %(code)s deve começar por %(month)s, o mês do fim de operação."
                    )
                    % {"code": locked.code, "month": f"{end_month:%Y%m}"}
                },
                code="week_code_month",
            )
    elif old_code[:6] != f"{end_month:%Y%m}":
        locked.code = next_week_code(end_month)
    locked.full_clean()
    locked._history_user = by  # simple_history: who changed it
    locked.save()
    if locked.code != old_code:
        parameters = RiskParameters.objects.filter(week=locked).first()
        if parameters is not None and parameters.first_month != _code_month(locked.code):
            parameters.first_month = _code_month(locked.code)
            parameters._history_user = by  # simple_history records who moved M+0
            parameters.save(update_fields=["first_month", "updated_at"])
    logger.info(
        "week %s updated (%s) by user=%s",
        locked.code,
        ", ".join(sorted(changes)),
        getattr(by, "pk", None),
    )
    for field in WEEK_EDITABLE_FIELDS + ("updated_at",):
        setattr(week, field, getattr(locked, field))
    return locked


@transaction.atomic
def week_transition(*, week: Week, to: str, by: User | None = None) -> Week:
    """Move a week to the next status; any other move is refused with a clear message."""
    locked = Week.objects.select_for_update().get(pk=week.pk)
    current = WeekStatus(locked.status)
    target = WeekStatus(to)
    if target not in ALLOWED_TRANSITIONS[current]:
        allowed = (
            ", ".join(str(WeekStatus(s).label) for s in ALLOWED_TRANSITIONS[current])
            # Translators: no transition is allowed ("Transição permitida: nenhuma.").
            or _("nenhuma")
        )
        raise TransitionError(
            _(
                "A semana %(code)s está %(status)s: não pode passar para %(target)s. "
                "Transição permitida: %(allowed)s."
            )
            % {
                "code": locked.code,
                "status": current.label,
                "target": target.label,
                "allowed": allowed,
            },
            code="invalid_transition",
        )
    if target == WeekStatus.OPEN:
        _check_ready_to_open(locked)
    locked.status = target
    if by is not None:
        locked._history_user = by  # simple_history: who moved it (beat moves it as nobody)
    locked.save(update_fields=["status", "updated_at"])
    logger.info(
        "week %s: %s → %s by user=%s", locked.code, current, target, getattr(by, "pk", None)
    )
    week.status = locked.status
    return locked


def _check_ready_to_open(week: Week) -> None:
    try:
        parameters = week.parameters
    except RiskParameters.DoesNotExist:
        raise TransitionError(
            _("A semana %(code)s não tem parâmetros CCEE: cadastre-os antes de abrir.")
            % {"code": week.code},
            code="parameters_missing",
        ) from None
    buckets = list(parameters.buckets.all())
    if len(buckets) != BUCKET_COUNT:
        raise TransitionError(
            _("A semana %(code)s precisa dos %(n)s buckets (M+0 a M+6) antes de abrir.")
            % {"code": week.code, "n": BUCKET_COUNT},
            code="parameters_incomplete",
        )
    # The checks the enclave will run on these parameters at the deadline, run now: a
    # ValidationError naming the field (e.g. buckets[0].volatility).
    parameters.week = week
    check_parameters(parameters, buckets)


def week_open(*, week: Week, by: User | None = None) -> Week:
    return week_transition(week=week, to=WeekStatus.OPEN, by=by)


def week_close(*, week: Week, by: User | None = None) -> Week:
    return week_transition(week=week, to=WeekStatus.CLOSED, by=by)


def open_due_weeks(*, now: datetime | None = None) -> list[str]:
    """Open every scheduled week whose window has started (idempotent; used by Celery beat)."""
    now = now or timezone.now()
    opened = []
    for week in Week.objects.filter(
        status=WeekStatus.SCHEDULED, opens_at__lte=now, deadline__gt=now
    ):
        try:
            week_open(week=week)
            opened.append(week.code)
        except ValidationError as exc:  # TransitionError, or parameters the enclave would refuse
            logger.warning("week %s not opened: %s", week.code, "; ".join(exc.messages))
    for code in Week.objects.filter(status=WeekStatus.SCHEDULED, deadline__lte=now).values_list(
        "code", flat=True
    ):
        # Never opened (e.g. parameters missing) and now past its deadline: staff must decide.
        logger.error("week %s missed its whole window without opening; CCEE staff must act", code)
    return opened


def close_due_weeks(*, now: datetime | None = None) -> list[str]:
    """Close every open week whose deadline has passed (idempotent; used by Celery beat)."""
    now = now or timezone.now()
    closed = []
    for week in Week.objects.filter(status=WeekStatus.OPEN, deadline__lte=now):
        try:
            week_close(week=week)
            closed.append(week.code)
        except TransitionError as exc:  # changed meanwhile (e.g. closed by hand): the next one
            logger.warning("week %s not closed: %s", week.code, exc.message)
    return closed
