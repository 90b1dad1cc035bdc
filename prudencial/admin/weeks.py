"""Weeks (reporting events) and their CCEE parameters.

A week is scheduled by week_create (which copies the previous week's parameters) and moves
through its lifecycle only by the actions "Abrir semana" / "Encerrar semana" (week_open /
week_close). Parameters are edited with their seven buckets inline; the correlation matrix is
JSON checked by prudencial.services.parameters.validate_correlation. An existing week's parameters
are updated in place, so each changed value is one history entry ("who changed M+2's volatility,
when, from which value to which"); parameters of a computed or published week are read-only.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportMixin
from simple_history.admin import SimpleHistoryAdmin

from prudencial.admin.common import (
    LargeTableMixin,
    ServiceErrorsMixin,
    TransactionalImportMixin,
    adopt,
    error_messages,
)
from prudencial.domain import alerts as alert_rules
from prudencial.domain.errors import DomainError
from prudencial.domain.market import BUCKET_COUNT, month_label
from prudencial.exceptions import TransitionError
from prudencial.models import ParameterBucket, RiskParameters, Week, WeekStatus
from prudencial.resources import ParameterBucketResource
from prudencial.selectors import week_list
from prudencial.services.parameters import (
    BUCKET_FIELDS,
    FROZEN_STATUSES,
    PARAMETER_FIELDS,
    parameters_save,
    rule_message,
    validate_correlation,
)
from prudencial.services.weeks import (
    WEEK_EDITABLE_FIELDS,
    week_close,
    week_create,
    week_open,
    week_update,
)
from prudencial.templatetags.prudencial_format import brl, decimal_br, short_date, short_datetime

# --- weeks ----------------------------------------------------------------------------------


class WeekForm(forms.ModelForm):
    class Meta:
        model = Week
        fields = ("code", "operation_start", "operation_end", "opens_at", "deadline")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "code" in self.fields:
            self.fields["code"].required = False
            self.fields["code"].help_text = _(
                "Em branco: o próximo código do mês do fim de operação (ex. 202303001)."
            )


@admin.register(Week)
class WeekAdmin(ServiceErrorsMixin, LargeTableMixin, SimpleHistoryAdmin):
    form = WeekForm
    list_display = (
        "code",
        "operation_display",
        "opens_display",
        "deadline_display",
        "status",
        "parameters_link",
    )
    list_filter = ("status", "opens_at")
    search_fields = ("code",)
    ordering = ("-code",)
    actions = ["open_weeks", "close_weeks"]
    fieldsets = (
        (None, {"fields": ("code", "status")}),
        (_("Semana de operação"), {"fields": ("operation_start", "operation_end")}),
        (_("Janela de preenchimento (horário de Brasília)"), {"fields": ("opens_at", "deadline")}),
        (_("Parâmetros CCEE"), {"fields": ("parameters_link",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Week]:
        return week_list()

    def get_fieldsets(self, request: HttpRequest, obj: Week | None = None) -> Any:
        if obj is None:
            return (
                (None, {"fields": ("code",)}),
                (_("Semana de operação"), {"fields": ("operation_start", "operation_end")}),
                (
                    _("Janela de preenchimento (horário de Brasília)"),
                    {"fields": ("opens_at", "deadline")},
                ),
            )
        return self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Week | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        if obj.status == WeekStatus.SCHEDULED:
            return ("code", "status", "parameters_link")
        return (
            "code",
            "status",
            "operation_start",
            "operation_end",
            "opens_at",
            "deadline",
            "parameters_link",
        )

    @admin.display(description=_("semana de operação"), ordering="operation_start")
    def operation_display(self, week: Week) -> str:
        return f"{short_date(week.operation_start)} – {short_date(week.operation_end)}"

    @admin.display(description=_("abertura"), ordering="opens_at")
    def opens_display(self, week: Week) -> str:
        return short_datetime(week.opens_at)

    @admin.display(description=_("término para preenchimento"), ordering="deadline")
    def deadline_display(self, week: Week) -> str:
        return short_datetime(week.deadline)

    @admin.display(description=_("parâmetros CCEE"))
    def parameters_link(self, week: Week) -> str:
        try:
            parameters = week.parameters
        except RiskParameters.DoesNotExist:
            if week.pk is None:
                return "—"
            url = reverse("admin:prudencial_riskparameters_add") + f"?week={week.pk}"
            return format_html('<a href="{}">{}</a>', url, gettext("cadastrar"))
        url = reverse("admin:prudencial_riskparameters_change", args=[parameters.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("ver / editar"))

    def save_model(
        self, request: HttpRequest, obj: Week, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            current = Week.objects.get(pk=obj.pk)
            old_code = current.code
            changes = {
                f: form.cleaned_data[f] for f in form.changed_data if f in WEEK_EDITABLE_FIELDS
            }
            adopt(obj, week_update(week=current, by=request.user, **changes))
            if obj.code != old_code:
                self.message_user(
                    request,
                    gettext(
                        "O fim de operação mudou de mês: a semana %(old)s passou a %(new)s "
                        "(e o M+0 dos parâmetros, ao mês do código)."
                    )
                    % {"old": old_code, "new": obj.code},
                    messages.WARNING,
                )
            return
        data = form.cleaned_data
        week = week_create(
            operation_start=data["operation_start"],
            operation_end=data["operation_end"],
            opens_at=data["opens_at"],
            deadline=data["deadline"],
            code=data.get("code") or None,
            by=request.user,
        )
        adopt(obj, week)
        try:
            week.parameters  # noqa: B018 - raises DoesNotExist when nothing was copied
        except RiskParameters.DoesNotExist:
            self.message_user(
                request,
                gettext(
                    "A semana %(code)s não tem semana anterior com parâmetros: "
                    "cadastre os parâmetros CCEE antes de abri-la."
                )
                % {"code": week.code},
                messages.WARNING,
            )
            return
        self.message_user(
            request,
            gettext(
                "Parâmetros CCEE copiados da semana anterior; revise-os antes de abrir %(code)s."
            )
            % {"code": week.code},
            messages.INFO,
        )

    def _transition(
        self, request: HttpRequest, queryset: QuerySet[Week], service: Any, done: str
    ) -> None:
        for week in queryset.order_by("code"):
            try:
                service(week=week, by=request.user)
            except TransitionError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            except ValidationError as exc:
                for line in error_messages(exc):
                    self.message_user(request, f"{week.code}: {line}", messages.ERROR)
            else:
                self.message_user(request, done % {"code": week.code}, messages.SUCCESS)

    @admin.action(description=_("Abrir semana"), permissions=["change"])
    def open_weeks(self, request: HttpRequest, queryset: QuerySet[Week]) -> None:
        self._transition(request, queryset, week_open, gettext("Semana %(code)s aberta."))

    @admin.action(description=_("Encerrar semana"), permissions=["change"])
    def close_weeks(self, request: HttpRequest, queryset: QuerySet[Week]) -> None:
        self._transition(request, queryset, week_close, gettext("Semana %(code)s encerrada."))


# --- parameters -----------------------------------------------------------------------------


class CorrelationField(forms.JSONField):
    """The 7×7 matrix as JSON, one row per line so it reads like the matrix it is."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget",
            forms.Textarea(
                attrs={"rows": BUCKET_COUNT + 2, "cols": 80, "style": "font-family: monospace"}
            ),
        )
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, InvalidJSONInput):
            return value
        if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
            return "[\n" + ",\n".join("  " + json.dumps(row) for row in value) + "\n]"
        return super().prepare_value(value)


class RiskParametersForm(forms.ModelForm):
    correlation = CorrelationField(
        label=_("matriz de correlação 7×7"),
        help_text=_("JSON: 7 linhas de 7 números, simétrica, diagonal 1, valores em [−1, 1], PSD."),
    )

    class Meta:
        model = RiskParameters
        fields = (
            "week",
            "first_month",
            "confidence",
            "liquidation_days",
            "correlation",
            "pld_floor",
            "pld_cap",
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

    def clean_first_month(self) -> Any:
        value = self.cleaned_data["first_month"]
        return value.replace(day=1) if value else value

    def clean_pld_history(self) -> Any:
        """Blank means "no history yet" (an empty list); the service checks the prices."""
        return self.cleaned_data.get("pld_history") or []

    def clean_fa_bands(self) -> Any:
        """The bands' rule at the field (prudencial.domain.alerts), naming the band at fault."""
        value = self.cleaned_data.get("fa_bands")
        try:
            bands = alert_rules.parse_bands(value)
        except DomainError as exc:
            raise ValidationError(f"{exc.field}: {rule_message(exc)}") from None
        return [b.to_dict() for b in bands]

    def clean_correlation(self) -> Any:
        value = self.cleaned_data.get("correlation")
        try:
            validate_correlation(value)
        except ValidationError as exc:
            raise ValidationError(
                exc.message_dict.get("correlation", exc.messages)
                if hasattr(exc, "error_dict")
                else exc.messages
            ) from None
        return value


class ParameterBucketInline(admin.TabularInline):
    """The seven buckets M+0 … M+6; month label and hours follow from M+0's month."""

    model = ParameterBucket
    fields = (
        "bucket_name",
        "month_label",
        "month_hours",
        *BUCKET_FIELDS,
    )
    readonly_fields = ("bucket_name", "month_label", "month_hours")
    extra = 0
    min_num = BUCKET_COUNT
    max_num = BUCKET_COUNT
    validate_min = True
    validate_max = True
    can_delete = False
    ordering = ("index",)
    verbose_name = _("bucket")
    verbose_name_plural = _(
        "buckets M+0 … M+6 (volatilidade, preços futuros e de estresse em R$/MWh)"
    )

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Volatility and prices are never negative: say so on the cell, not as a constraint."""
        if db_field.name in BUCKET_FIELDS:
            kwargs["min_value"] = 0
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("bucket"))
    def bucket_name(self, bucket: ParameterBucket) -> str:
        return f"M+{bucket.index}" if bucket.index is not None else "—"

    @admin.display(description=_("mês"))
    def month_label(self, bucket: ParameterBucket) -> str:
        if bucket.pk is None or bucket.index is None:
            return "—"
        return bucket.label

    @admin.display(description=_("horas"))
    def month_hours(self, bucket: ParameterBucket) -> str:
        if bucket.pk is None or bucket.index is None:
            return "—"
        return str(bucket.hours)


class WeekStatusFilter(admin.SimpleListFilter):
    title = _("situação da semana")
    parameter_name = "situacao"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return WeekStatus.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(week__status=self.value()) if self.value() else queryset


@admin.register(RiskParameters)
class RiskParametersAdmin(
    ServiceErrorsMixin,
    LargeTableMixin,
    TransactionalImportMixin,
    ImportExportMixin,
    SimpleHistoryAdmin,
):
    form = RiskParametersForm
    inlines = [ParameterBucketInline]
    resource_classes = [ParameterBucketResource]
    object_history_template = "admin/prudencial/riskparameters/object_history.html"
    list_display = (
        "week",
        "week_status",
        "first_month_label",
        "confidence_display",
        "liquidation_days",
        "pld_floor_display",
        "pld_cap_display",
        "updated_display",
    )
    list_select_related = ("week",)
    list_filter = (WeekStatusFilter, "netting", "sigma_period")
    search_fields = ("week__code",)
    autocomplete_fields = ("week",)
    ordering = ("-week__code",)
    fieldsets = (
        (None, {"fields": ("week", "first_month", "updated_at")}),
        (_("Risco"), {"fields": ("confidence", "liquidation_days", "sigma_period", "netting")}),
        (_("Correlação entre buckets"), {"fields": ("correlation",)}),
        (_("Preços regulatórios"), {"fields": ("pld_floor", "pld_cap", "pld_history")}),
        (
            _("Fontes de preço"),
            {
                "fields": ("energy_types", "energy_spreads", "contract_spreads", "forward_curves"),
                "description": _(
                    "F_base = curva publicada sm/tipo, senão curva convencional do submercado + "
                    "spread do tipo de energia; F = curva sm/tipo/contrato, senão F_base + spread "
                    "do tipo de contrato (docs/formats.md)."
                ),
            },
        ),
        (_("Período sombra"), {"fields": ("k", "theta")}),
        (
            _("Alertas e casos"),
            {
                "fields": (
                    "fa_alert_threshold",
                    "fa_bands",
                    "concentration_limit_largest",
                    "concentration_limit_top_five",
                    "case_response_days",
                ),
                "description": _(
                    "Sem faixas nem limites oficiais publicados: um FA numa faixa ou uma "
                    "concentração acima do limite abre um caso (docs/alerts.md)."
                ),
            },
        ),
        (_("Resumo da curva"), {"fields": ("curve_summary", "bucket_history_link")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[RiskParameters]:
        return super().get_queryset(request).select_related("week")

    def get_readonly_fields(
        self, request: HttpRequest, obj: RiskParameters | None = None
    ) -> tuple[str, ...]:
        readonly = ("updated_at", "curve_summary", "bucket_history_link")
        return ("week", *readonly) if obj is not None else readonly

    def get_fieldsets(self, request: HttpRequest, obj: RiskParameters | None = None) -> Any:
        if obj is None:
            return [
                (name, {"fields": [f for f in opts["fields"] if f not in ("updated_at",)]})
                for name, opts in self.fieldsets[:-1]
            ]
        return self.fieldsets

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        initial.setdefault(
            "correlation",
            [[1.0 if i == j else 0.0 for j in range(BUCKET_COUNT)] for i in range(BUCKET_COUNT)],
        )
        return initial

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "week":
            kwargs["queryset"] = Week.objects.filter(parameters__isnull=True).exclude(
                status__in=FROZEN_STATUSES
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(
        self, request: HttpRequest, obj: RiskParameters | None = None
    ) -> bool:
        if obj is not None and obj.week.status in FROZEN_STATUSES:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description=_("situação"), ordering="week__status")
    def week_status(self, parameters: RiskParameters) -> str:
        return parameters.week.get_status_display()

    @admin.display(description=_("M+0"), ordering="first_month")
    def first_month_label(self, parameters: RiskParameters) -> str:
        return month_label(parameters.first_month)

    @admin.display(description=_("confiança"), ordering="confidence")
    def confidence_display(self, parameters: RiskParameters) -> str:
        return decimal_br(parameters.confidence, 2)

    @admin.display(description=_("PLD mínimo"), ordering="pld_floor")
    def pld_floor_display(self, parameters: RiskParameters) -> str:
        return brl(parameters.pld_floor)

    @admin.display(description=_("PLD máximo"), ordering="pld_cap")
    def pld_cap_display(self, parameters: RiskParameters) -> str:
        return brl(parameters.pld_cap)

    @admin.display(description=_("atualizados em"), ordering="updated_at")
    def updated_display(self, parameters: RiskParameters) -> str:
        return short_datetime(parameters.updated_at)

    @admin.display(description=_("curva (R$/MWh)"))
    def curve_summary(self, parameters: RiskParameters) -> str:
        buckets = sorted(parameters.buckets.all(), key=lambda b: b.index)
        if not buckets:
            return "—"
        header = format_html_join(
            "",
            "<th>{}</th>",
            [
                (h,)
                for h in (
                    gettext("bucket"),
                    gettext("mês"),
                    gettext("horas"),
                    gettext("volatilidade"),
                    "SE/CO",
                    "S",
                    "NE",
                    "N",
                    gettext("estresse comprado"),
                    gettext("estresse vendido"),
                )
            ],
        )
        rows = format_html_join(
            "",
            "<tr><td>M+{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            [
                (
                    b.index,
                    b.label,
                    b.hours,
                    decimal_br(b.volatility, 4),
                    brl(b.forward_price_se),
                    brl(b.forward_price_s),
                    brl(b.forward_price_ne),
                    brl(b.forward_price_n),
                    brl(b.stress_price_long),
                    brl(b.stress_price_short),
                )
                for b in buckets
            ],
        )
        return format_html(
            "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", header, rows
        )

    @admin.display(description=_("histórico dos buckets"))
    def bucket_history_link(self, parameters: RiskParameters) -> str:
        url = reverse("admin:prudencial_riskparameters_history", args=[parameters.pk])
        return format_html(
            '<a href="{}">{}</a>', url, gettext("alterações dos parâmetros e dos buckets")
        )

    def save_model(
        self, request: HttpRequest, obj: RiskParameters, form: forms.ModelForm, change: bool
    ) -> None:
        """Deferred to save_related: the parameters and their buckets are written together."""

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool
    ) -> None:
        obj = form.instance
        bucket_formset = next(fs for fs in formsets if fs.model is ParameterBucket)
        if not change:
            forms_in_order = [f for f in bucket_formset.forms if f.cleaned_data]
            data = form.cleaned_data
            saved = parameters_save(
                week=data["week"],
                fields={f: data[f] for f in PARAMETER_FIELDS if f in data},
                buckets=[{f: bf.cleaned_data[f] for f in BUCKET_FIELDS} for bf in forms_in_order],
                by=request.user,
            )
            adopt(obj, saved)
            # The admin's change message reads what formset.save() would have recorded.
            bucket_formset.new_objects = list(saved.buckets.all())
            bucket_formset.changed_objects = []
            bucket_formset.deleted_objects = []
            return
        # In place, one history entry per changed value.
        # form.changed_data compares the submitted text with the initial one: an empty JSON
        # field ("" against "[]") counts as changed although its value is not.
        fields = {
            f: form.cleaned_data[f]
            for f in form.changed_data
            if f in PARAMETER_FIELDS and form.cleaned_data[f] != form.initial.get(f)
        }
        changed_forms = [
            bf for bf in bucket_formset.forms if bf.has_changed() and bf.instance.pk is not None
        ]
        buckets = {
            bf.instance.index: {
                f: bf.cleaned_data[f] for f in bf.changed_data if f in BUCKET_FIELDS
            }
            for bf in changed_forms
        }
        saved = parameters_save(week=obj.week, fields=fields, buckets=buckets, by=request.user)
        adopt(obj, saved)
        bucket_formset.new_objects = []
        bucket_formset.changed_objects = [(bf.instance, bf.changed_data) for bf in changed_forms]
        bucket_formset.deleted_objects = []

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        """The parameters' own history plus the changes of their buckets, value by value."""
        bucket_history_model = ParameterBucket.history.model
        bucket_admin = self.admin_site._registry.get(bucket_history_model)
        records = list(
            bucket_history_model.objects.filter(parameters_id=object_id)
            .select_related("history_user")
            .order_by("-history_date", "-history_id")[:300]
        )
        rows = []
        if bucket_admin is not None:
            bucket_admin.attach_previous(records)
            rows = [
                {
                    "when": short_datetime(r.history_date),
                    "who": r.history_user.get_username() if r.history_user else "—",
                    "bucket": f"M+{r.index}",
                    "changes": bucket_admin.changes(r),
                }
                for r in records
            ]
        context = {"bucket_history": rows, **(extra_context or {})}
        return super().history_view(request, object_id, extra_context=context)
