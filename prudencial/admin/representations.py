"""Representations: who controls or represents which agent, and since when.

Grant, change, end and delete go through prudencial.services.representations, which re-derive
the guardian permissions at once; nothing here touches a permission row.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export.admin import ImportExportMixin
from simple_history.admin import SimpleHistoryAdmin

from prudencial.admin.common import (
    LargeTableMixin,
    ServiceErrorsMixin,
    TransactionalImportMixin,
    add_service_errors,
    adopt,
    error_messages,
)
from prudencial.admin.imports import BackgroundImportMixin
from prudencial.domain.calendar import in_force
from prudencial.models import Representation
from prudencial.resources import RepresentationResource
from prudencial.selectors import agent_list, representation_list, representation_search
from prudencial.services import representations as rep_services
from prudencial.templatetags.prudencial_format import short_date


class EffectiveFilter(admin.SimpleListFilter):
    """In force today, ended, or not started yet (the same rule the permissions follow)."""

    title = _("situação")
    parameter_name = "situacao"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("effective", _("Em vigor")),
            ("ended", _("Encerradas")),
            ("future", _("Futuras")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        today = timezone.localdate()
        if self.value() == "effective":
            return queryset.filter(rep_services.effective_q(today))
        if self.value() == "ended":
            return queryset.filter(valid_until__lt=today)
        if self.value() == "future":
            return queryset.filter(valid_from__gt=today)
        return queryset


class RepresentationForm(forms.ModelForm):
    class Meta:
        model = Representation
        fields = ("user", "agent", "role", "valid_from", "valid_until")

    def _post_clean(self) -> None:
        """The service's CPF and overlap rules, so the error appears on the form rather than
        after save."""
        super()._post_clean()
        if not self.errors:
            self.clean_overlap()

    def clean_overlap(self) -> None:
        try:
            if "user" in self.fields:
                rep_services.representation_check_user(self.cleaned_data.get("user"))
            rep_services.representation_check_overlap(self.instance)
        except ValidationError as exc:
            add_service_errors(self, exc)


@admin.register(Representation)
class RepresentationAdmin(
    ServiceErrorsMixin,
    LargeTableMixin,
    TransactionalImportMixin,
    BackgroundImportMixin,
    ImportExportMixin,
    SimpleHistoryAdmin,
):
    form = RepresentationForm
    resource_classes = [RepresentationResource]
    list_display = (
        "agent_acronym",
        "user",
        "user_cpf",
        "role",
        "from_display",
        "until_display",
        "in_force",
        "granted_by",
    )
    list_select_related = ("agent", "user", "granted_by")
    list_filter = (EffectiveFilter, "role", "valid_from", "agent__agent_class")
    search_fields = (
        "agent__acronym",
        "agent__legal_name",
        "user__username",
        "user__first_name",
        "user__last_name",
        "user__cpf",
    )
    search_help_text = _("Sigla ou razão social do agente; nome, usuário ou CPF (só dígitos).")
    autocomplete_fields = ("user", "agent")
    readonly_fields = ("granted_by", "created_at", "updated_at")
    actions = ["end_today"]
    ordering = ("agent__acronym", "user__username", "-valid_from")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Representation]:
        return representation_list(user=request.user)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """search_fields' columns, asked as one subquery per table (selectors.
        representation_search) that the trigram indexes serve; no duplicates to remove."""
        if not search_term.strip():
            return queryset, False
        return representation_search(queryset, search_term), False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        readonly = tuple(self.readonly_fields)
        if obj is not None:
            # A pair recorded in error is deleted and granted again: the history stays readable.
            readonly = ("user", "agent", *readonly)
        return readonly

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "agent":
            kwargs["queryset"] = agent_list(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("agente"), ordering="agent__acronym")
    def agent_acronym(self, rep: Representation) -> str:
        return rep.agent.acronym

    @admin.display(description=_("CPF"), ordering="user__cpf")
    def user_cpf(self, rep: Representation) -> str:
        return rep.user.cpf_display or "—"

    @admin.display(description=_("válida desde"), ordering="valid_from")
    def from_display(self, rep: Representation) -> str:
        return short_date(rep.valid_from)

    @admin.display(description=_("válida até"), ordering="valid_until")
    def until_display(self, rep: Representation) -> str:
        return short_date(rep.valid_until) if rep.valid_until else str(_("sem término"))

    @admin.display(description=_("em vigor"), boolean=True)
    def in_force(self, rep: Representation) -> bool:
        return in_force(rep.valid_from, rep.valid_until, timezone.localdate())

    def save_model(
        self, request: HttpRequest, obj: Representation, form: forms.ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            current = Representation.objects.select_related("user", "agent").get(pk=obj.pk)
            changes = {
                f: data[f] for f in form.changed_data if f in ("role", "valid_from", "valid_until")
            }
            adopt(obj, rep_services.representation_update(representation=current, **changes))
        else:
            saved = rep_services.representation_grant(
                user=data["user"],
                agent=data["agent"],
                role=data["role"],
                valid_from=data["valid_from"],
                valid_until=data.get("valid_until"),
                granted_by=request.user,
            )
            adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Representation) -> None:
        rep_services.representation_delete(representation=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Representation]) -> None:
        for rep in queryset.select_related("user", "agent"):
            rep_services.representation_delete(representation=rep)

    @admin.action(description=_("Encerrar representação hoje"), permissions=["change"])
    def end_today(self, request: HttpRequest, queryset: QuerySet[Representation]) -> None:
        """Access ends at once: the last day in force becomes yesterday. Representations that had
        already ended keep their end date; those not started yet are removed (service rule)."""
        today = timezone.localdate()
        ended = removed = skipped = 0
        for rep in queryset.select_related("user", "agent"):
            if rep.valid_until is not None and rep.valid_until < today:
                skipped += 1
                continue
            try:
                result = rep_services.representation_end(representation=rep, on=today)
            except ValidationError as exc:
                for line in error_messages(exc):
                    self.message_user(request, f"{rep}: {line}", messages.ERROR)
                continue
            if result is None:
                removed += 1
            else:
                ended += 1
        if ended:
            self.message_user(
                request,
                ngettext(
                    "%(n)d representação encerrada: o acesso termina hoje.",
                    "%(n)d representações encerradas: o acesso termina hoje.",
                    ended,
                )
                % {"n": ended},
                messages.SUCCESS,
            )
        if removed:
            self.message_user(
                request,
                ngettext(
                    "%(n)d representação ainda não iniciada foi removida.",
                    "%(n)d representações ainda não iniciadas foram removidas.",
                    removed,
                )
                % {"n": removed},
                messages.WARNING,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(n)d representação já estava encerrada e não foi alterada.",
                    "%(n)d representações já estavam encerradas e não foram alteradas.",
                    skipped,
                )
                % {"n": skipped},
                messages.WARNING,
            )
