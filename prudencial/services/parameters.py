"""A week's CCEE parameters: one service writes them (parameters_save), one shapes them for the
enclave (parameters_payload), and both run the checks the enclave runs
(prudencial.domain.parameters.check_week_parameters), so the host refuses at once what the
enclave would refuse at the week's deadline.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from simple_history.utils import bulk_create_with_history

from prudencial.domain import alerts as alert_rules
from prudencial.domain.errors import DomainError
from prudencial.domain.market import BUCKET_COUNT, SUBMARKETS, add_months
from prudencial.domain.parameters import check_week_parameters
from prudencial.domain.parameters import validate_correlation as domain_validate_correlation
from prudencial.models import ParameterBucket, RiskParameters, User, Week, WeekStatus

logger = logging.getLogger(__name__)

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
    "fa_bands",
    "concentration_limit_largest",
    "concentration_limit_top_five",
    "case_response_days",
    "pld_history",
    "energy_types",
    "energy_spreads",
    "contract_spreads",
    "forward_curves",
)
REQUIRED_FIELDS = ("first_month", "correlation", "pld_floor", "pld_cap")
_DECIMAL_FIELDS = {
    "pld_floor",
    "pld_cap",
    "confidence",
    "k",
    "theta",
    "fa_alert_threshold",
    "concentration_limit_largest",
    "concentration_limit_top_five",
}

#: The domain's rules (prudencial.domain.errors.RULES) in the host's languages; pt-BR first,
#: English in locale/en. tests/domain checks every rule has its sentence here.
RULE_MESSAGES = {
    "object": gettext_lazy("deve ser um objeto"),
    "required": gettext_lazy("é obrigatório"),
    "number": gettext_lazy("deve ser um número"),
    "finite": gettext_lazy("deve ser finito"),
    "minimum": gettext_lazy("deve ser ≥ %(minimum)s"),
    "minimum_strict": gettext_lazy("deve ser > %(minimum)s"),
    "integer": gettext_lazy("deve ser um número inteiro"),
    "between": gettext_lazy("deve estar entre %(low)s e %(high)s"),
    "text": gettext_lazy("deve ser um texto não vazio"),
    "choice": gettext_lazy("deve ser um de: %(allowed)s"),
    "week_code": gettext_lazy("deve ser AAAAMM + sequência de 3 dígitos, ex. 202303001"),
    "schema": gettext_lazy("deve ser %(expected)s"),
    "list": gettext_lazy("deve ser uma lista"),
    "length": gettext_lazy("deve ter %(n)s valores (M+0 a M+6)"),
    "open_unit_interval": gettext_lazy("deve estar entre 0 e 1 (exclusive)"),
    "bucket_order": gettext_lazy("deve ser %(n)s (buckets em ordem, M+0 a M+6)"),
    "floor_below_cap": gettext_lazy("deve ser menor que o PLD máximo"),
    "matrix": gettext_lazy("deve ser uma matriz %(n)s×%(n)s de números"),
    "correlation_range": gettext_lazy("deve estar entre −1 e 1"),
    "unit_diagonal": gettext_lazy("deve ser 1 (diagonal unitária)"),
    "symmetric": gettext_lazy("deve ser simétrica"),
    "positive_semidefinite": gettext_lazy(
        "deve ser positiva semidefinida (menor autovalor %(smallest)s)"
    ),
    "stress_price_required": gettext_lazy("é obrigatório quando θ > 0"),
    "month_hours": gettext_lazy("deve ser o número de horas de um mês (672, 696, 720 ou 744)"),
    "volatility_range": gettext_lazy("deve ser maior que 0 e no máximo 1"),
    "within_pld_bounds": gettext_lazy("deve estar entre o PLD mínimo e o PLD máximo"),
    "at_most": gettext_lazy("deve ser no máximo %(maximum)s"),
    "price_history": gettext_lazy(
        "deve listar de 1 a %(n)s preços semanais, cada um entre 0 e %(maximum)s R$/MWh"
    ),
    "agent_class": gettext_lazy("deve ser um de: %(allowed)s"),
    "energy_types": gettext_lazy(
        "deve listar códigos de tipo de energia (minúsculas, dígitos e _), cada um uma vez"
    ),
    "curve_key": gettext_lazy(
        "deve ser submercado/tipo_de_energia ou submercado/tipo_de_energia/tipo_de_contrato, "
        "com os tipos de energia da semana"
    ),
    "unpriced_source": gettext_lazy(
        "é obrigatório: a semana não tem curva nem spread para este tipo"
    ),
    "zero_by_definition": gettext_lazy(
        "deve ser 0 (a energia convencional é, por definição, a curva do submercado)"
    ),
    "no_network_class": gettext_lazy(
        "é %(agent_class)s: distribuidores são isentos de envio e não têm classe na rede"
    ),
    "band_count": gettext_lazy("deve listar de 1 a %(n)s faixas"),
    "band_code": gettext_lazy(
        "deve ser um código de faixa (letra minúscula, depois minúsculas, dígitos ou _), "
        "cada um uma vez"
    ),
    "band_order": gettext_lazy("deve ser maior que o início da faixa anterior (%(previous)s)"),
    "alert_band": gettext_lazy(
        "deve manter as faixas em ordem crescente (ele move o início da faixa '%(band)s')"
    ),
    "limit_order": gettext_lazy(
        "não pode exceder o limite das cinco maiores contrapartes (%(other)s)"
    ),
    "threshold_band": gettext_lazy("deve ser igual ao início da faixa '%(band)s' (%(start)s)"),
}

_FORWARD = re.compile(r"^forward_prices\.(SE|S|NE|N)\[(\d)\]$")


def host_field(path: str) -> str:
    """The host's name of a field the domain names: parameters.forward_prices.SE[2] is
    buckets[2].forward_price_se (the host stores curves by bucket); the rest loses "parameters."."""
    path = path.removeprefix("parameters.")
    match = _FORWARD.match(path)
    if match:
        return f"buckets[{match.group(2)}].forward_price_{match.group(1).lower()}"
    return path


def rule_message(exc: DomainError) -> str:
    """The rule a DomainError names, in the active language."""
    return str(RULE_MESSAGES[exc.code]) % exc.params if exc.params else str(RULE_MESSAGES[exc.code])


def domain_validation_error(exc: DomainError) -> ValidationError:
    """A DomainError as the host's ValidationError: keyed by the field, in the active language."""
    return ValidationError({host_field(exc.field): [rule_message(exc)]}, code=exc.code)


def validate_correlation(matrix: object) -> None:
    """Correlation must be 7×7, symmetric, unit diagonal, entries in [−1, 1] and PSD; the error
    is the field's and names the entry (correlation[3][3]) when one entry is at fault."""
    try:
        domain_validate_correlation(matrix)
    except DomainError as exc:
        where = exc.field.removeprefix("correlation")
        message = rule_message(exc)
        raise ValidationError(
            {"correlation": [f"correlation{where}: {message}"]},
            code="correlation_invalid",
        ) from exc


def refuse_frozen(week: Week) -> None:
    """A computed or published week's parameters never change (its results depend on them)."""
    if week.status in FROZEN_STATUSES:
        raise ValidationError(
            {
                "week": _("A semana %(code)s já foi calculada; seus parâmetros não podem mudar.")
                % {"code": week.code}
            },
            code="parameters_frozen",
        )


def _payload(parameters: RiskParameters, buckets: Sequence[ParameterBucket]) -> dict:
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
        # The weekly PLD the network model bootstraps from (None until staff set it).
        "pld_history": list(parameters.pld_history or []) or None,
        # Price sources (docs/formats.md): the week's energy types, spreads and curves.
        "energy_types": list(parameters.energy_types),
        "energy_spreads": dict(parameters.energy_spreads or {}),
        "contract_spreads": dict(parameters.contract_spreads or {}),
        "forward_curves": dict(parameters.forward_curves or {}),
    }


def parameters_payload(parameters: RiskParameters) -> dict:
    """The week's parameters as the host ships them to the enclave (docs/risk.md)."""
    buckets = sorted(parameters.buckets.all(), key=lambda b: b.index)
    if len(buckets) != BUCKET_COUNT:
        raise ValidationError(
            {
                "buckets": _("A semana %(code)s tem %(got)s buckets; são necessários %(n)s.")
                % {"code": parameters.week.code, "got": len(buckets), "n": BUCKET_COUNT}
            },
            code="buckets_count",
        )
    return _payload(parameters, buckets)


def check_parameters(parameters: RiskParameters, buckets: Sequence[ParameterBucket]) -> None:
    """Run the enclave's checks on what would be shipped; a ValidationError names the field."""
    try:
        check_week_parameters(_payload(parameters, sorted(buckets, key=lambda b: b.index)))
    except DomainError as exc:
        raise domain_validation_error(exc) from exc


def _threshold(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.0001"))


def alert_parameters(parameters: RiskParameters) -> alert_rules.AlertParameters:
    """The week's alert parameters, checked by the domain's rules (prudencial.domain.alerts);
    a ValidationError names the field (fa_bands[1].from) and the rule."""
    try:
        return alert_rules.check_alert_parameters(
            {
                "fa_bands": parameters.fa_bands,
                "concentration_limit_largest": parameters.concentration_limit_largest,
                "concentration_limit_top_five": parameters.concentration_limit_top_five,
                "case_response_days": parameters.case_response_days,
            }
        )
    except DomainError as exc:
        raise domain_validation_error(exc) from exc


def sync_alert_threshold(parameters: RiskParameters, fields: Mapping[str, Any]) -> None:
    """fa_alert_threshold and fa_bands say one thing: the threshold is the start of the "alert"
    band (else of the highest). Changing the bands moves the threshold; changing only the
    threshold moves that band; changing both so they disagree is refused, naming the threshold."""
    try:
        if "fa_bands" in fields:
            bands = alert_rules.parse_bands(parameters.fa_bands)
            parameters.fa_bands = [b.to_dict() for b in bands]  # as floats, in one shape
            derived = _threshold(alert_rules.alert_threshold(bands))
            given = fields.get("fa_alert_threshold")
            if given is not None and _threshold(given) != derived:
                band = next((b for b in bands if b.code == alert_rules.ALERT_BAND), bands[-1])
                raise DomainError(
                    "fa_alert_threshold", "threshold_band", band=band.code, start=f"{band.start:g}"
                )
            parameters.fa_alert_threshold = derived
        elif "fa_alert_threshold" in fields and parameters.fa_alert_threshold is not None:
            parameters.fa_bands = alert_rules.bands_with_threshold(
                parameters.fa_bands, float(parameters.fa_alert_threshold)
            )
    except DomainError as exc:
        raise domain_validation_error(exc) from exc


def _bucket_errors(exc: ValidationError) -> list[str]:
    return [
        f"{ParameterBucket._meta.get_field(f).verbose_name}: {m}" if f in BUCKET_FIELDS else str(m)
        for f, messages in exc.message_dict.items()
        for m in messages
    ]


@transaction.atomic
def parameters_save(
    *,
    week: Week,
    fields: Mapping[str, Any],
    buckets: Mapping[int, Mapping[str, Any]] | Sequence[Mapping[str, Any]],
    by: User | None = None,
) -> RiskParameters:
    """Create or change a week's parameters and buckets: the admin, the import, the demo and
    the API all call this.

    `fields` are RiskParameters fields (PARAMETER_FIELDS); `buckets` maps an index M+i to its
    values (a list is read as M+0, M+1, …). New parameters need REQUIRED_FIELDS and all seven
    buckets whole; existing ones change in place. A computed or published week is frozen.
    Everything is validated before anything is written: the model's rules, the correlation
    matrix, then the enclave's own checks (check_week_parameters) on the seven buckets. Only
    what changes is saved, so each change is one history entry, recorded with `by`.
    """
    locked = Week.objects.select_for_update().get(pk=week.pk)
    refuse_frozen(locked)
    unknown = sorted(set(fields) - set(PARAMETER_FIELDS))
    if unknown:
        raise ValidationError(
            {f: _("Este campo não pode ser alterado nos parâmetros.") for f in unknown},
            code="parameters_field_unknown",
        )
    if not isinstance(buckets, Mapping):
        buckets = dict(enumerate(buckets))
    current = RiskParameters.objects.select_for_update().filter(week=locked).first()
    creating = current is None
    if creating:
        missing = [f for f in REQUIRED_FIELDS if fields.get(f) is None]
        if missing:
            raise ValidationError(
                {f: _("Este campo é obrigatório.") for f in missing}, code="parameters_required"
            )
        if sorted(buckets) != list(range(BUCKET_COUNT)):
            raise ValidationError(
                {"buckets": _("São necessários %(n)s buckets (M+0 a M+6).") % {"n": BUCKET_COUNT}},
                code="buckets_count",
            )
        current = RiskParameters(week=locked)
        for name in _DECIMAL_FIELDS:  # the model's defaults are floats (0.95): as written
            value = getattr(current, name)
            if isinstance(value, float | int):
                setattr(current, name, Decimal(str(value)))
    else:
        current.week = locked
    changed = creating
    for field, value in fields.items():
        if field in _DECIMAL_FIELDS and value is not None:
            value = Decimal(str(value))
        elif field == "first_month" and value is not None:
            value = value.replace(day=1)
        if getattr(current, field) != value:
            setattr(current, field, value)
            changed = True
    validate_correlation(current.correlation)
    sync_alert_threshold(current, fields)
    alert_parameters(current)
    current.full_clean(exclude=["week"], validate_unique=False, validate_constraints=False)

    existing = {} if creating else {b.index: b for b in current.buckets.all()}
    errors: dict[str, list[str]] = {}
    changed_buckets: list[ParameterBucket] = []
    for index, values in sorted(buckets.items()):
        key = f"buckets[{index}]"
        unknown = sorted(set(values) - set(BUCKET_FIELDS))
        if unknown:
            errors[key] = [_("campo desconhecido: %(fields)s") % {"fields": ", ".join(unknown)}]
            continue
        bucket = existing.get(index)
        if bucket is None:
            missing = [f for f in BUCKET_FIELDS if values.get(f) is None]
            if missing:
                errors[key] = [
                    _("campo obrigatório ausente: %(fields)s") % {"fields": ", ".join(missing)}
                ]
                continue
            bucket = ParameterBucket(index=index)
        before = {f: getattr(bucket, f) for f in BUCKET_FIELDS}
        for field, value in values.items():
            setattr(bucket, field, None if value is None else Decimal(str(value)))
        try:
            bucket.full_clean(exclude=["parameters"], validate_unique=False)
        except ValidationError as exc:
            errors[key] = _bucket_errors(exc)
            continue
        if bucket.pk is None or {f: getattr(bucket, f) for f in BUCKET_FIELDS} != before:
            changed_buckets.append(bucket)
        existing[index] = bucket
    if errors:
        raise ValidationError(errors, code="bucket_invalid")
    for bucket in existing.values():
        bucket.parameters = current  # the label and hours follow the (new) first month
    if len(existing) == BUCKET_COUNT:
        check_parameters(current, list(existing.values()))

    if changed:
        current._history_user = by  # simple_history: who changed it
        current.save()
    new = [b for b in changed_buckets if b.pk is None]
    for bucket in changed_buckets:
        bucket.parameters = current
        if bucket.pk is not None:
            bucket._history_user = by
            bucket.save()
    if new:
        bulk_create_with_history(new, ParameterBucket, default_user=by)
    logger.info(
        "parameters of week %s %s (%s fields, %s buckets) by user=%s",
        locked.code,
        "created" if creating else "updated",
        len(fields),
        len(changed_buckets),
        getattr(by, "pk", None),
    )
    week.status = locked.status
    return current


@transaction.atomic
def parameters_copy(
    *, source: RiskParameters, week: Week, first_month: date, by: User | None = None
) -> RiskParameters:
    """Copy a week's parameters (scalars, correlation and the seven buckets) to another week
    (a new week starts from the previous one's; staff then adjust them through parameters_save)."""
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
