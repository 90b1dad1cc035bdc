"""The staff's case queue: filters (situation, overdue, figure, week), ordering, assignment to a
staff member, comments and the closing decision (actions and the case's form), the history
inline (read-only). Every write goes through prudencial.alerts.services; nobody adds or
deletes a case here (the closing opens them) nor edits the history.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from prudencial.admin.common import LargeTableMixin, ServiceErrorsMixin, error_messages
from prudencial.alerts import selectors, services
from prudencial.alerts.models import AlertEmail, Case, CaseEvent, CaseState, Decision, Side
from prudencial.templatetags.prudencial_format import decimal_br, short_datetime


def staff_members() -> QuerySet:
    return get_user_model().objects.filter(is_active=True, is_staff=True).order_by("username")


class OverdueFilter(admin.SimpleListFilter):
    title = _("prazo")
    parameter_name = "prazo"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return (("overdue", _("vencido")), ("in_time", _("no prazo")))

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        if self.value() == "overdue":
            return queryset.filter(state=CaseState.OPEN, response_due__lt=now)
        if self.value() == "in_time":
            return queryset.exclude(state=CaseState.OPEN, response_due__lt=now)
        return queryset


class CaseEventInline(admin.TabularInline):
    """The case's history, as written (append-only)."""

    model = CaseEvent
    fields = ("at_display", "kind", "side", "author", "assignee", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("at", "pk")
    verbose_name_plural = _("histórico")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("em"))
    def at_display(self, event: CaseEvent) -> str:
        return short_datetime(event.at)


class CaseForm(forms.ModelForm):
    """Nothing of the case is edited directly: staff assign, comment or close it."""

    assign_to = forms.ModelChoiceField(
        label=_("atribuir a"), queryset=staff_members(), required=False
    )
    comment = forms.CharField(
        label=_("comentário"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=services.COMMENT_MAX_CHARS,
    )
    decision = forms.ChoiceField(
        label=_("decisão"), choices=[("", "—"), *Decision.choices], required=False
    )
    decision_text = forms.CharField(
        label=_("fundamentação da decisão"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=services.COMMENT_MAX_CHARS,
    )

    class Meta:
        model = Case
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assign_to"].queryset = staff_members()
        if self.instance.pk:
            self.fields["assign_to"].initial = self.instance.assignee_id

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("decision") and not (data.get("decision_text") or "").strip():
            self.add_error("decision_text", _("Escreva a fundamentação da decisão."))
        if (data.get("decision_text") or "").strip() and not data.get("decision"):
            self.add_error("decision", _("Escolha a decisão."))
        return data


class CloseForm(forms.Form):
    decision = forms.ChoiceField(label=_("decisão"), choices=Decision.choices)
    decision_text = forms.CharField(
        label=_("fundamentação da decisão"),
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=services.COMMENT_MAX_CHARS,
    )


@admin.register(Case)
class CaseAdmin(ServiceErrorsMixin, LargeTableMixin, admin.ModelAdmin):
    form = CaseForm
    inlines = [CaseEventInline]
    list_display = (
        "id",
        "agent",
        "week",
        "figure",
        "rule_display",
        "value_display",
        "state",
        "overdue_display",
        "due_display",
        "assignee",
    )
    list_filter = (
        "state",
        OverdueFilter,
        "figure",
        ("week", admin.RelatedOnlyFieldListFilter),
        ("assignee", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("agent__acronym", "week__code")
    ordering = ("response_due", "pk")
    sortable_by = ("id", "agent", "week", "figure", "state", "due_display", "assignee")
    actions = ["assign_to_me", "close_cases"]
    readonly_fields = (
        "agent",
        "week",
        "closing",
        "figure",
        "rule_display",
        "value_display",
        "opened_display",
        "due_display",
        "state",
        "assignee",
        "decision",
        "decision_text",
        "decided_by",
        "decided_at",
    )
    fieldsets = (
        (None, {"fields": ("agent", "week", "closing", "figure", "rule_display", "value_display")}),
        (_("Andamento"), {"fields": ("opened_display", "due_display", "state", "assignee")}),
        (_("Decisão"), {"fields": ("decision", "decision_text", "decided_by", "decided_at")}),
    )
    #: Shown instead of "Decisão" while the case is open: the form's fields.
    act_fieldset = (
        _("Agir"),
        {
            "fields": ("assign_to", "comment", "decision", "decision_text"),
            "description": _(
                "Atribua o caso, comente (o comentário aparece aos usuários do agente) ou "
                "encerre-o com uma decisão e sua fundamentação (final)."
            ),
        },
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Case]:
        return selectors.case_queue(user=request.user)

    def get_fieldsets(self, request: HttpRequest, obj: Case | None = None) -> Any:
        if (
            obj is None
            or obj.state == CaseState.CLOSED
            or not self.has_change_permission(request, obj)
        ):
            return self.fieldsets
        return (*self.fieldsets[:2], self.act_fieldset)

    def get_readonly_fields(self, request: HttpRequest, obj: Case | None = None) -> Any:
        if obj is not None and obj.state != CaseState.CLOSED:
            return tuple(f for f in self.readonly_fields if f not in ("decision", "decision_text"))
        return self.readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("faixa / limite"))
    def rule_display(self, case: Case) -> str:
        if case.band:
            return gettext("%(band)s (FA ≥ %(start)s)") % {
                "band": case.band_display,
                "start": decimal_br(case.threshold, 2),
            }
        return gettext("> %(limit)s do PLA") % {"limit": decimal_br(case.threshold * 100, 1) + " %"}

    @admin.display(description=_("valor"))
    def value_display(self, case: Case) -> str:
        if selectors.value_visible(case, None):  # case_queue annotated who asks
            return decimal_br(case.value, 4)
        return gettext("oculto até o envio pelo agente")

    @admin.display(description=_("vencido"), boolean=True)
    def overdue_display(self, case: Case) -> bool:
        return case.is_overdue

    @admin.display(description=_("prazo de resposta"), ordering="response_due")
    def due_display(self, case: Case) -> str:
        return short_datetime(case.response_due)

    @admin.display(description=_("aberto em"), ordering="opened_at")
    def opened_display(self, case: Case) -> str:
        return short_datetime(case.opened_at)

    def save_model(
        self, request: HttpRequest, obj: Case, form: forms.ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        case = obj
        assignee = data.get("assign_to")
        if assignee is not None and assignee.pk != case.assignee_id:
            case = services.case_assign(case=case, assignee=assignee, by=request.user)
        if (data.get("comment") or "").strip():
            services.case_comment(case=case, by=request.user, text=data["comment"], side=Side.STAFF)
        if data.get("decision"):
            case = services.case_close(
                case=case, by=request.user, decision=data["decision"], text=data["decision_text"]
            )
        obj.refresh_from_db()

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """The history inline is read-only: nothing to save (the change message reads these)."""
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    @admin.action(description=_("Atribuir a mim"), permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        done = 0
        for case in queryset.order_by("pk"):
            try:
                services.case_assign(case=case, assignee=request.user, by=request.user)
                done += 1
            except ValidationError as exc:
                for line in error_messages(exc):
                    self.message_user(request, f"#{case.pk}: {line}", messages.ERROR)
        if done:
            self.message_user(
                request, gettext("%(n)s casos atribuídos a você.") % {"n": done}, messages.SUCCESS
            )

    @admin.action(description=_("Encerrar com uma decisão"), permissions=["change"])
    def close_cases(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        form = CloseForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            done = 0
            for case in queryset.order_by("pk"):
                try:
                    services.case_close(
                        case=case,
                        by=request.user,
                        decision=form.cleaned_data["decision"],
                        text=form.cleaned_data["decision_text"],
                    )
                    done += 1
                except ValidationError as exc:
                    for line in error_messages(exc):
                        self.message_user(request, f"#{case.pk}: {line}", messages.ERROR)
            if done:
                self.message_user(
                    request, gettext("%(n)s casos encerrados.") % {"n": done}, messages.SUCCESS
                )
            return None
        return TemplateResponse(
            request,
            "admin/alerts/close_cases.html",
            {
                **self.admin_site.each_context(request),
                "title": gettext("Encerrar casos com uma decisão"),
                "form": form,
                "cases": queryset.order_by("pk"),
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(AlertEmail)
class AlertEmailAdmin(LargeTableMixin, admin.ModelAdmin):
    """Which e-mails went out (read-only): to whom, about what, when."""

    list_display = ("kind", "recipient", "case", "closing", "created_at", "sent_at")
    list_filter = ("kind", "sent_at")
    search_fields = ("recipient",)
    ordering = ("-created_at", "pk")
    list_select_related = ("case", "closing")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
