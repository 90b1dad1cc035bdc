"""Weeks (reporting events) and their CCEE parameters: creation, lifecycle and validation.

The lifecycle is scheduled → open → closed → computed → published; only week_transition
changes a status, and it refuses every other move with a message that says what is allowed.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history

from prudencial.exceptions import TransitionError
from prudencial.models import ParameterBucket, RiskParameters, User, Week, WeekStatus
from prudencial.models.weeks import BUCKET_COUNT, SUBMARKETS, add_months

logger = logging.getLogger(__name__)

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    WeekStatus.SCHEDULED: (WeekStatus.OPEN,),
    WeekStatus.OPEN: (WeekStatus.CLOSED,),
    WeekStatus.CLOSED: (WeekStatus.COMPUTED,),
    WeekStatus.COMPUTED: (WeekStatus.PUBLISHED,),
    WeekStatus.PUBLISHED: (),
}

FROZEN_STATUSES = (WeekStatus.COMPUTED, WeekStatus.PUBLISHED)

BUCKET_FIELDS = (
    "volatility",
    "forward_price_se",
    "forward_price_s",
    "forward_price_ne",
    "forward_price_n",
    "stress_price_long",
    "stress_price_short",
)


def next_week_code(month: date) -> str:
    """YYYYMM + the next 3-digit sequence of that month (202303001, 202303002, …)."""
    prefix = f"{month.year:04d}{month.month:02d}"
    last = (
        Week.objects.filter(code__startswith=prefix)
        .order_by("-code")
        .values_list("code", flat=True)
        .first()
    )
    seq = int(last[6:]) + 1 if last else 1
    if seq > 999:
        raise ValidationError(
            {"code": _("O mês %(month)s já tem 999 semanas.") % {"month": prefix}},
            code="week_sequence_full",
        )
    return f"{prefix}{seq:03d}"


def _code_month(code: str) -> date:
    return date(int(code[:4]), int(code[4:6]), 1)


def validate_correlation(matrix: object) -> None:
    """Correlation must be 7×7, symmetric, unit diagonal, entries in [−1, 1] and PSD."""
    from prudencial.risk import validate_correlation as engine_validate

    try:
        engine_validate(matrix)
    except ValueError as exc:
        raise ValidationError({"correlation": str(exc)}, code="correlation_invalid") from exc


def _validate_parameters(parameters: RiskParameters) -> None:
    """The correlation matrix, then the fields and the model's rules (RiskParameters.clean:
    floor < cap, confidence, liquidation days, K and θ), each error keyed to its field."""
    validate_correlation(parameters.correlation)
    parameters.full_clean(exclude=["week"], validate_unique=False, validate_constraints=False)


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
def parameters_copy(
    *, source: RiskParameters, week: Week, first_month: date, by: User | None = None
) -> RiskParameters:
    """Copy a week's parameters (scalars, correlation and the seven buckets) to another week."""
    scalars = {
        f.name: getattr(source, f.name)
        for f in RiskParameters._meta.concrete_fields
        if f.name not in {"id", "week", "updated_at", "first_month"}
    }
    parameters = RiskParameters.objects.create(week=week, first_month=first_month, **scalars)
    bulk_create_with_history(
        [
            ParameterBucket(
                parameters=parameters, index=b.index, **{f: getattr(b, f) for f in BUCKET_FIELDS}
            )
            for b in source.buckets.all()
        ],
        ParameterBucket,
        default_user=by,
    )
    return parameters


@transaction.atomic
def parameters_set(
    *,
    week: Week,
    first_month: date,
    correlation: list[list[float]],
    buckets: list[dict],
    pld_floor: Decimal | float,
    pld_cap: Decimal | float,
    confidence: Decimal | float = Decimal("0.95"),
    liquidation_days: int = 5,
    k: Decimal | float = 0,
    theta: Decimal | float = 0,
    netting: str = RiskParameters.Netting.ABSOLUTE_PER_SOURCE,
    sigma_period: str = RiskParameters.SigmaPeriod.DAILY,
    fa_alert_threshold: Decimal | float = 1,
    by: User | None = None,
) -> RiskParameters:
    """Create or replace a week's parameters whole (used by the demo and the API)."""
    _refuse_frozen(week)
    if len(buckets) != BUCKET_COUNT:
        raise ValidationError(
            {"buckets": _("São necessários %(n)s buckets (M+0 a M+6).") % {"n": BUCKET_COUNT}},
            code="buckets_count",
        )
    values = {
        "first_month": first_month.replace(day=1),
        "correlation": correlation,
        "pld_floor": Decimal(str(pld_floor)),
        "pld_cap": Decimal(str(pld_cap)),
        "confidence": Decimal(str(confidence)),
        "liquidation_days": liquidation_days,
        "k": Decimal(str(k)),
        "theta": Decimal(str(theta)),
        "netting": netting,
        "sigma_period": sigma_period,
        "fa_alert_threshold": Decimal(str(fa_alert_threshold)),
    }
    # Validate everything before writing anything: errors name the field, never a 500.
    parameters = RiskParameters.objects.filter(week=week).first() or RiskParameters(week=week)
    for field, value in values.items():
        setattr(parameters, field, value)
    _validate_parameters(parameters)
    rows = []
    for index, bucket in enumerate(buckets):
        missing = [f for f in BUCKET_FIELDS if bucket.get(f) is None]
        if missing:
            raise ValidationError(
                {
                    f"buckets[{index}]": [
                        _("campo obrigatório ausente: %(fields)s") % {"fields": ", ".join(missing)}
                    ]
                },
                code="bucket_invalid",
            )
        row = ParameterBucket(index=index, **{f: Decimal(str(bucket[f])) for f in BUCKET_FIELDS})
        try:
            row.full_clean(exclude=["parameters"])
        except ValidationError as exc:
            raise ValidationError(
                {f"buckets[{index}]": exc.messages}, code="bucket_invalid"
            ) from exc
        rows.append(row)
    parameters.save()
    parameters.buckets.all().delete()
    for row in rows:
        row.parameters = parameters
    bulk_create_with_history(rows, ParameterBucket, default_user=by)
    return parameters


PARAMETER_FIELDS = (
    "first_month",
    "correlation",
    "pld_floor",
    "pld_cap",
    "confidence",
    "liquidation_days",
    "k",
    "theta",
    "netting",
    "sigma_period",
    "fa_alert_threshold",
)
_DECIMAL_FIELDS = {"pld_floor", "pld_cap", "confidence", "k", "theta", "fa_alert_threshold"}


def _refuse_frozen(week: Week) -> None:
    if week.status in FROZEN_STATUSES:
        raise ValidationError(
            {
                "week": _("A semana %(code)s já foi calculada; seus parâmetros não podem mudar.")
                % {"code": week.code}
            },
            code="parameters_frozen",
        )


@transaction.atomic
def parameters_update(
    *,
    parameters: RiskParameters,
    by: User | None = None,
    fields: dict,
    buckets: dict[int, dict],
) -> RiskParameters:
    """Change some of a week's parameters and buckets in place (the admin and the import).

    Validated exactly as parameters_set (a computed or published week is frozen; correlation,
    ranges and floor < cap), everything before anything is written. Only rows whose values change
    are saved, so each change is one history entry, recorded with `by`.
    """
    current = (
        RiskParameters.objects.select_for_update().select_related("week").get(pk=parameters.pk)
    )
    _refuse_frozen(current.week)
    unknown = sorted(set(fields) - set(PARAMETER_FIELDS))
    if unknown:
        raise ValidationError(
            {f: _("Este campo não pode ser alterado nos parâmetros.") for f in unknown},
            code="parameters_field_unknown",
        )
    changed = False
    for field, value in fields.items():
        if field in _DECIMAL_FIELDS and value is not None:
            value = Decimal(str(value))
        elif field == "first_month" and value is not None:
            value = value.replace(day=1)
        if getattr(current, field) != value:
            setattr(current, field, value)
            changed = True
    _validate_parameters(current)

    existing = {b.index: b for b in current.buckets.all()}
    errors: dict[str, list[str]] = {}
    changed_buckets = []
    for index, values in sorted(buckets.items()):
        key = f"buckets[{index}]"
        bucket = existing.get(index)
        if bucket is None:
            errors[key] = [
                _("A semana %(code)s não tem o bucket M+%(index)s.")
                % {"code": current.week.code, "index": index}
            ]
            continue
        unknown = sorted(set(values) - set(BUCKET_FIELDS))
        if unknown:
            errors[key] = [_("campo desconhecido: %(fields)s") % {"fields": ", ".join(unknown)}]
            continue
        before = {f: getattr(bucket, f) for f in BUCKET_FIELDS}
        for field, value in values.items():
            setattr(bucket, field, None if value is None else Decimal(str(value)))
        try:
            bucket.full_clean(exclude=["parameters"], validate_unique=False)
        except ValidationError as exc:
            errors[key] = [
                f"{ParameterBucket._meta.get_field(f).verbose_name}: {m}"
                if f in BUCKET_FIELDS
                else str(m)
                for f, messages in exc.message_dict.items()
                for m in messages
            ]
            continue
        if {f: getattr(bucket, f) for f in BUCKET_FIELDS} != before:
            changed_buckets.append(bucket)
    if errors:
        raise ValidationError(errors, code="bucket_invalid")

    if changed or changed_buckets:
        current._history_user = by  # simple_history: who changed it
        current.save()
    for bucket in changed_buckets:
        bucket._history_user = by
        bucket.save()
    logger.info(
        "parameters of week %s updated (%s fields, %s buckets) by user=%s",
        current.week.code,
        len(fields),
        len(changed_buckets),
        getattr(by, "pk", None),
    )
    return current


def parameters_payload(parameters: RiskParameters) -> dict:
    """The week's parameters in the risk engine's format (prudencial/risk, docs/risk.md)."""
    buckets = sorted(parameters.buckets.all(), key=lambda b: b.index)
    if len(buckets) != BUCKET_COUNT:
        raise ValidationError(
            {
                "buckets": _("A semana %(code)s tem %(got)s buckets; são necessários %(n)s.")
                % {"code": parameters.week.code, "got": len(buckets), "n": BUCKET_COUNT}
            },
            code="buckets_count",
        )
    first = parameters.first_month
    return {
        "week": parameters.week.code,
        "confidence": float(parameters.confidence),
        "liquidation_days": parameters.liquidation_days,
        "sigma_period": parameters.sigma_period,
        "netting": parameters.netting,
        "buckets": [
            {
                "index": b.index,
                "label": b.label,
                "month": add_months(first, b.index).isoformat(),
                "hours": b.hours,
                "volatility": float(b.volatility),
                "stress_price_long": float(b.stress_price_long),
                "stress_price_short": float(b.stress_price_short),
            }
            for b in buckets
        ],
        "correlation": parameters.correlation,
        "forward_prices": {s: [b.forward_price(s) for b in buckets] for s in SUBMARKETS},
        "pld_floor": float(parameters.pld_floor),
        "pld_cap": float(parameters.pld_cap),
        "k": float(parameters.k),
        "theta": float(parameters.theta),
    }


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
    if parameters.buckets.count() != BUCKET_COUNT:
        raise TransitionError(
            _("A semana %(code)s precisa dos %(n)s buckets (M+0 a M+6) antes de abrir.")
            % {"code": week.code, "n": BUCKET_COUNT},
            code="parameters_incomplete",
        )


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
        except TransitionError as exc:
            logger.warning("week %s not opened: %s", week.code, exc.message)
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
