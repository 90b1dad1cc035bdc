"""Weekly reporting events (semanas, e.g. 202303001) and the CCEE risk parameters of each."""

from __future__ import annotations

from datetime import date

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from prudencial.domain import alerts as alert_rules
from prudencial.domain.calendar import WEEK_CODE_PATTERN
from prudencial.domain.formats import CONTRACT_TYPES, DEFAULT_ENERGY_TYPES
from prudencial.domain.market import (  # noqa: F401 (SUBMARKETS, month_label: re-exported)
    BUCKET_COUNT,
    SUBMARKETS,
    add_months,
    month_hours,
    month_label,
)

MSG_WINDOW_ORDER = _("O término para preenchimento deve ser posterior à abertura.")
MSG_OPERATION_ORDER = _("O fim de operação deve ser posterior ao início de operação.")
MSG_PLD_BOUNDS = _("O PLD mínimo deve ser positivo e menor que o PLD máximo.")
MSG_CONFIDENCE = _("O índice de confiança deve estar entre 0 e 1 (exclusive).")
MSG_LIQUIDATION_DAYS = _("Os dias para liquidação devem ser ao menos 1.")
MSG_K_THETA = _("K e θ não podem ser negativos.")
MSG_BUCKET_INDEX = _("O bucket deve estar entre M+0 e M+6.")
MSG_VOLATILITY = _("A volatilidade não pode ser negativa.")
MSG_PRICES = _("Preços futuros e de estresse não podem ser negativos.")
MSG_CONCENTRATION_LIMITS = _(
    "Os limites de concentração devem ser positivos, e o da maior contraparte não pode exceder "
    "o das cinco maiores."
)
MSG_CASE_RESPONSE_DAYS = _("O prazo de resposta de um caso deve ser de 1 a 60 dias úteis.")


def default_energy_types() -> list[str]:
    """The week parameter ``energy_types``' documented default (formats.DEFAULT_ENERGY_TYPES)."""
    return list(DEFAULT_ENERGY_TYPES)


def default_energy_spreads() -> dict[str, list[float]]:
    """Zero for every default energy type: each priced on its submarket's conventional curve."""
    return {t: [0.0] * BUCKET_COUNT for t in DEFAULT_ENERGY_TYPES}


def default_contract_spreads() -> dict[str, list[float]]:
    """Zero for every contract type."""
    return {t: [0.0] * BUCKET_COUNT for t in CONTRACT_TYPES}


def default_fa_bands() -> list[dict]:
    """One "alert" band from the default fa_alert_threshold (1.0): the threshold's meaning."""
    return alert_rules.default_fa_bands()


class WeekStatus(models.TextChoices):
    """Lifecycle: scheduled → open → closed → computed → published (services enforce it)."""

    SCHEDULED = "scheduled", _("Agendada")
    OPEN = "open", _("Aberta")
    CLOSED = "closed", _("Encerrada")
    COMPUTED = "computed", _("Calculada")
    PUBLISHED = "published", _("Publicada")


class Week(models.Model):
    """A reporting event: the operating week the data refers to and the submission window."""

    code = models.CharField(
        _("código"),
        max_length=9,
        unique=True,
        help_text=_("AAAAMM + sequência de 3 dígitos, ex. 202303001."),
    )
    operation_start = models.DateField(_("início de operação"))
    operation_end = models.DateField(_("fim de operação"))
    opens_at = models.DateTimeField(_("abertura para preenchimento"))
    deadline = models.DateTimeField(_("término para preenchimento"))
    status = models.CharField(
        _("situação"), max_length=10, choices=WeekStatus.choices, default=WeekStatus.SCHEDULED
    )
    created_at = models.DateTimeField(_("criada em"), auto_now_add=True)
    updated_at = models.DateTimeField(_("atualizada em"), auto_now=True)

    history = HistoricalRecords(
        verbose_name=_("histórico da semana"), verbose_name_plural=_("históricos de semanas")
    )

    class Meta:
        verbose_name = _("semana")
        verbose_name_plural = _("semanas")
        ordering = ["-code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(code__regex=WEEK_CODE_PATTERN),
                name="week_code_format",
                violation_error_message=_(
                    "O código deve ser AAAAMM + sequência de 3 dígitos, ex. 202303001."
                ),
            ),
            models.CheckConstraint(
                condition=models.Q(opens_at__lt=models.F("deadline")),
                name="week_opens_before_deadline",
                violation_error_message=MSG_WINDOW_ORDER,
            ),
            models.CheckConstraint(
                condition=models.Q(operation_start__lt=models.F("operation_end")),
                name="week_operation_ordered",
                violation_error_message=MSG_OPERATION_ORDER,
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in WeekStatus]),
                name="week_status_valid",
                violation_error_message=_("A situação da semana não é uma das previstas."),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "opens_at"]),
            models.Index(fields=["status", "deadline"]),
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        """The cross-field rules of the constraints, each keyed to the field staff must fix."""
        super().clean()
        errors = {}
        if self.opens_at and self.deadline and self.opens_at >= self.deadline:
            errors["deadline"] = MSG_WINDOW_ORDER
        if (
            self.operation_start
            and self.operation_end
            and self.operation_start >= self.operation_end
        ):
            errors["operation_end"] = MSG_OPERATION_ORDER
        if errors:
            raise ValidationError(errors)


class RiskParameters(models.Model):
    """Parâmetros CCEE of one week. Open regulatory points are fields with documented defaults."""

    class Netting(models.TextChoices):
        ABSOLUTE_PER_SOURCE = (
            "absolute_per_source",
            _("Valor absoluto por fonte de preço (planilha CCEE)"),
        )
        NET_PER_BUCKET = "net_per_bucket", _("Compensação entre fontes no mesmo bucket")

    class SigmaPeriod(models.TextChoices):
        DAILY = "daily", _("Diária (σ·√D)")
        HORIZON = "horizon", _("Já no horizonte de liquidação (σ)")

    week = models.OneToOneField(
        Week, on_delete=models.CASCADE, related_name="parameters", verbose_name=_("semana")
    )
    confidence = models.DecimalField(
        _("índice de confiança"), max_digits=5, decimal_places=4, default=0.95
    )
    liquidation_days = models.PositiveSmallIntegerField(_("dias para liquidação"), default=5)
    first_month = models.DateField(_("mês do bucket M+0"), help_text=_("Primeiro dia do mês M+0."))
    correlation = models.JSONField(_("matriz de correlação 7×7"))
    pld_history = models.JSONField(
        _("histórico semanal do PLD (R$/MWh)"),
        default=list,
        blank=True,
        help_text=_(
            "Os preços semanais de que o modelo de rede sorteia seus cenários (bootstrap), "
            "do mais antigo ao mais recente. Enviado ao enclave com a semana; sem ele, o risco "
            "sistêmico da semana não é calculado."
        ),
    )
    energy_types = models.JSONField(
        _("tipos de energia"),
        default=default_energy_types,
        help_text=_("Códigos dos tipos de energia que os agentes declaram nesta semana."),
    )
    energy_spreads = models.JSONField(
        _("spreads por tipo de energia (R$/MWh)"),
        default=default_energy_spreads,
        blank=True,
        help_text=_(
            "JSON {tipo: [7 valores M+0 a M+6]} somados à curva convencional do submercado; "
            "0 por padrão (período sombra). A energia convencional é 0 por definição."
        ),
    )
    contract_spreads = models.JSONField(
        _("spreads por tipo de contrato (R$/MWh)"),
        default=default_contract_spreads,
        blank=True,
        help_text=_("JSON {tipo de contrato: [7 valores]}; 0 por padrão."),
    )
    forward_curves = models.JSONField(
        _("curvas publicadas por fonte (R$/MWh)"),
        default=dict,
        blank=True,
        help_text=_(
            'JSON {"SE/incentivized_50": [7 preços]} ou {"SE/incentivized_50/derivative": '
            "[7 preços]}; quando presente, prevalece sobre curva + spread."
        ),
    )
    pld_floor = models.DecimalField(_("PLD mínimo (R$/MWh)"), max_digits=10, decimal_places=2)
    pld_cap = models.DecimalField(_("PLD máximo (R$/MWh)"), max_digits=10, decimal_places=2)
    k = models.DecimalField(
        _("K"), max_digits=8, decimal_places=4, default=0, help_text=_("0 no período sombra.")
    )
    theta = models.DecimalField(
        _("θ"), max_digits=8, decimal_places=4, default=0, help_text=_("0 no período sombra.")
    )
    netting = models.CharField(
        _("convenção de compensação"),
        max_length=32,
        choices=Netting.choices,
        default=Netting.ABSOLUTE_PER_SOURCE,
    )
    sigma_period = models.CharField(
        _("período da volatilidade"),
        max_length=10,
        choices=SigmaPeriod.choices,
        default=SigmaPeriod.DAILY,
    )
    fa_alert_threshold = models.DecimalField(
        _("limiar de alerta do FA"),
        max_digits=8,
        decimal_places=4,
        default=1,
        help_text=_("Sem faixas oficiais publicadas: a CCEE define o alerta aqui."),
    )
    # Alerts and cases (prudencial.domain.alerts, docs/alerts.md): CCEE publishes no bands nor
    # limits, so they are week parameters with documented defaults.
    fa_bands = models.JSONField(
        _("faixas do FA"),
        default=default_fa_bands,
        help_text=_(
            'JSON em ordem crescente, ex. [{"code": "attention", "from": 0.8}, '
            '{"code": "alert", "from": 1.0}]: o FA está na maior faixa cujo início alcança '
            "(FA ≥ início). O início da faixa 'alert' é o limiar de alerta do FA."
        ),
    )
    concentration_limit_largest = models.DecimalField(
        _("limite de concentração na maior contraparte (fração do PLA)"),
        max_digits=8,
        decimal_places=4,
        default=alert_rules.DEFAULT_CONCENTRATION_LIMIT_LARGEST,
        help_text=_("Excedido quando a exposição à maior contraparte / PLA é maior que ele; 0,25."),
    )
    concentration_limit_top_five = models.DecimalField(
        _("limite de concentração nas cinco maiores contrapartes (fração do PLA)"),
        max_digits=8,
        decimal_places=4,
        default=alert_rules.DEFAULT_CONCENTRATION_LIMIT_TOP_FIVE,
        help_text=_("Excedido quando a soma das cinco maiores exposições / PLA é maior; 1,0."),
    )
    case_response_days = models.PositiveSmallIntegerField(
        _("prazo de resposta de um caso (dias úteis)"),
        default=alert_rules.DEFAULT_CASE_RESPONSE_DAYS,
        help_text=_("Dias úteis (sem fins de semana nem feriados nacionais) após a abertura."),
    )
    updated_at = models.DateTimeField(_("data de atualização dos parâmetros"), auto_now=True)

    history = HistoricalRecords(
        verbose_name=_("histórico dos parâmetros"),
        verbose_name_plural=_("históricos de parâmetros CCEE"),
    )

    class Meta:
        verbose_name = _("parâmetros CCEE")
        verbose_name_plural = _("parâmetros CCEE")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(confidence__gt=0, confidence__lt=1),
                name="parameters_confidence_range",
                violation_error_message=MSG_CONFIDENCE,
            ),
            models.CheckConstraint(
                condition=models.Q(liquidation_days__gte=1),
                name="parameters_liquidation_days_positive",
                violation_error_message=MSG_LIQUIDATION_DAYS,
            ),
            models.CheckConstraint(
                condition=models.Q(pld_floor__gt=0, pld_floor__lt=models.F("pld_cap")),
                name="parameters_pld_bounds",
                violation_error_message=MSG_PLD_BOUNDS,
            ),
            models.CheckConstraint(
                condition=models.Q(k__gte=0, theta__gte=0),
                name="parameters_k_theta_nonnegative",
                violation_error_message=MSG_K_THETA,
            ),
            models.CheckConstraint(
                condition=models.Q(
                    concentration_limit_largest__gt=0,
                    concentration_limit_largest__lte=models.F("concentration_limit_top_five"),
                ),
                name="parameters_concentration_limits",
                violation_error_message=MSG_CONCENTRATION_LIMITS,
            ),
            models.CheckConstraint(
                condition=models.Q(
                    case_response_days__gte=1,
                    case_response_days__lte=alert_rules.MAX_CASE_RESPONSE_DAYS,
                ),
                name="parameters_case_response_days_range",
                violation_error_message=MSG_CASE_RESPONSE_DAYS,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.week.code}"

    def clean(self) -> None:
        """The constraints' rules keyed to their fields (the floor for floor < cap)."""
        super().clean()
        errors = {}
        if self.confidence is not None and not (0 < self.confidence < 1):
            errors["confidence"] = MSG_CONFIDENCE
        if self.liquidation_days is not None and self.liquidation_days < 1:
            errors["liquidation_days"] = MSG_LIQUIDATION_DAYS
        if self.pld_floor is not None and (
            self.pld_floor <= 0 or (self.pld_cap is not None and self.pld_floor >= self.pld_cap)
        ):
            errors["pld_floor"] = MSG_PLD_BOUNDS
        for name in ("k", "theta"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                errors[name] = MSG_K_THETA
        largest, top_five = self.concentration_limit_largest, self.concentration_limit_top_five
        if largest is not None and (largest <= 0 or (top_five is not None and largest > top_five)):
            errors["concentration_limit_largest"] = MSG_CONCENTRATION_LIMITS
        if top_five is not None and top_five <= 0:
            errors["concentration_limit_top_five"] = MSG_CONCENTRATION_LIMITS
        days = self.case_response_days
        if days is not None and not 1 <= days <= alert_rules.MAX_CASE_RESPONSE_DAYS:
            errors["case_response_days"] = MSG_CASE_RESPONSE_DAYS
        if errors:
            raise ValidationError(errors)


PRICE_FIELDS = (
    "forward_price_se",
    "forward_price_s",
    "forward_price_ne",
    "forward_price_n",
    "stress_price_long",
    "stress_price_short",
)


class ParameterBucket(models.Model):
    """One month bucket M+i: volatility, stress prices and forward prices per submarket."""

    parameters = models.ForeignKey(RiskParameters, on_delete=models.CASCADE, related_name="buckets")
    index = models.PositiveSmallIntegerField(_("bucket (M+i)"))
    volatility = models.DecimalField(_("volatilidade"), max_digits=10, decimal_places=6)
    forward_price_se = models.DecimalField(_("preço futuro SE/CO"), max_digits=10, decimal_places=2)
    forward_price_s = models.DecimalField(_("preço futuro S"), max_digits=10, decimal_places=2)
    forward_price_ne = models.DecimalField(_("preço futuro NE"), max_digits=10, decimal_places=2)
    forward_price_n = models.DecimalField(_("preço futuro N"), max_digits=10, decimal_places=2)
    stress_price_long = models.DecimalField(
        _("preço de estresse (comprado)"), max_digits=10, decimal_places=2
    )
    stress_price_short = models.DecimalField(
        _("preço de estresse (vendido)"), max_digits=10, decimal_places=2
    )

    history = HistoricalRecords(
        verbose_name=_("histórico do bucket"),
        verbose_name_plural=_("históricos de buckets de risco"),
    )

    class Meta:
        verbose_name = _("bucket de risco")
        verbose_name_plural = _("buckets de risco")
        ordering = ["parameters", "index"]
        constraints = [
            models.UniqueConstraint(fields=["parameters", "index"], name="bucket_unique_index"),
            models.CheckConstraint(
                condition=models.Q(index__lte=BUCKET_COUNT - 1),
                name="bucket_index_range",
                violation_error_message=MSG_BUCKET_INDEX,
            ),
            models.CheckConstraint(
                condition=models.Q(volatility__gte=0),
                name="bucket_volatility_nonnegative",
                violation_error_message=MSG_VOLATILITY,
            ),
            models.CheckConstraint(
                condition=models.Q(
                    forward_price_se__gte=0,
                    forward_price_s__gte=0,
                    forward_price_ne__gte=0,
                    forward_price_n__gte=0,
                    stress_price_long__gte=0,
                    stress_price_short__gte=0,
                ),
                name="bucket_prices_nonnegative",
                violation_error_message=MSG_PRICES,
            ),
        ]

    def __str__(self) -> str:
        return f"M+{self.index} ({self.label})"

    def clean(self) -> None:
        """The constraints' rules keyed to the cell staff must fix."""
        super().clean()
        errors = {}
        if self.index is not None and self.index > BUCKET_COUNT - 1:
            errors["index"] = MSG_BUCKET_INDEX
        if self.volatility is not None and self.volatility < 0:
            errors["volatility"] = MSG_VOLATILITY
        for name in PRICE_FIELDS:
            value = getattr(self, name)
            if value is not None and value < 0:
                errors[name] = MSG_PRICES
        if errors:
            raise ValidationError(errors)

    @property
    def month(self) -> date:
        return add_months(self.parameters.first_month, self.index)

    @property
    def label(self) -> str:
        return month_label(self.month)

    @property
    def hours(self) -> int:
        return month_hours(self.month)

    def forward_price(self, submarket: str) -> float:
        return float(getattr(self, f"forward_price_{submarket.lower()}"))
