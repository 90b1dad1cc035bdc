"""Pieces shared by the prudencial admin: service-error handling, masked tax-id form fields,
large-table defaults and the read-only admin of simple_history's historical tables.

Every write in the admin goes through prudencial.services; the admin only translates a form into
a service call and a service error into a message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from import_export.formats.base_formats import CSV, XLSX

from prudencial.templatetags.prudencial_format import decimal_br, short_date, short_datetime
from prudencial.validators import normalize_cnpj, normalize_cpf


def error_messages(exc: ValidationError) -> list[str]:
    """A service's ValidationError as readable lines, each naming its field when it has one."""
    if hasattr(exc, "error_dict"):
        return [
            f"{field}: {message}" if field != "__all__" else str(message)
            for field, errors in exc.message_dict.items()
            for message in errors
        ]
    return [str(m) for m in exc.messages]


def add_service_errors(form: forms.BaseForm, exc: ValidationError) -> None:
    """Attach a service's errors to the form fields they name (the rest to the whole form)."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.error_dict.items():
        target = field if field in form.fields else None
        form.add_error(target, errors if target else [f"{field}: {m}" for e in errors for m in e])


def adopt(target: models.Model, saved: models.Model) -> None:
    """Copy what a service saved into the instance the admin holds (pk, derived fields), so the
    admin's log entry and redirect refer to the saved row."""
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class ServiceErrorsMixin:
    """A service that refuses a write at save time (a rule the form could not see, or a race)
    becomes an error message instead of a 500; the admin's transaction is rolled back first.

    History is for reading: simple_history's "revert" would write without the services.
    """

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            for line in error_messages(exc):
                self.message_user(request, line, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as exc:
            for line in error_messages(exc):
                self.message_user(request, line, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class LargeTableMixin:
    """Defaults for tables with many rows: no COUNT(*) of the whole table, modest pages."""

    show_full_result_count = False
    list_per_page = 50


class MaskedCNPJField(forms.CharField):
    """CNPJ typed with or without the mask (12.345.678/0001-95), stored as 14 characters."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 18)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        return normalize_cnpj(super().to_python(value))


class MaskedCPFField(forms.CharField):
    """CPF typed with or without the mask (123.456.789-09), stored as 11 digits."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 14)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str | None:
        return normalize_cpf(super().to_python(value)) or None


# --- history --------------------------------------------------------------------------------


def display_value(field: models.Field | None, value: Any) -> str:
    """A historical value as staff read it: choice labels, dd/mm/aaaa, pt-BR decimals."""
    if value is None or value == "":
        return "—"
    if field is not None and field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, datetime):
        return short_datetime(value)
    if isinstance(value, date):
        return short_date(value)
    if isinstance(value, Decimal):
        return decimal_br(value, max(-value.as_tuple().exponent, 0))
    if isinstance(value, bool):
        return str(_("sim") if value else _("não"))
    return str(value)


class HistoryDiffChangeList(ChangeList):
    """Attaches to each record of the page the record before it, fetched in one query, so the
    "alterações" column does not cost one query per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = list(self.result_list)
        self.model_admin.attach_previous(self.result_list)


class HistoricalRecordAdmin(LargeTableMixin, admin.ModelAdmin):
    """Read-only list of one historical table: who changed what, when, from which value to which.

    `history_key` names the fields that identify "the same thing" across records (the object id,
    or parameters + index for buckets, whose rows are replaced when a week's parameters are set).
    """

    history_key: Sequence[str] = ("id",)
    diff_excluded: Sequence[str] = ("updated_at", "created_at")
    date_hierarchy = "history_date"
    list_filter = ("history_date",)
    list_select_related = ("history_user",)
    search_fields = ("history_user__username",)
    ordering = ("-history_date", "-history_id")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return HistoryDiffChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _key(self, record: Any) -> tuple:
        return tuple(getattr(record, name) for name in self.history_key)

    def attach_previous(self, records: Iterable[Any]) -> None:
        """Find, for each record, the latest earlier record with the same key (one query)."""
        records = list(records)
        if not records:
            return
        model = self.model
        lookup: dict[str, set] = defaultdict(set)
        for record in records:
            for name in self.history_key:
                lookup[f"{name}__in"].add(getattr(record, name))
        latest = max(r.history_date for r in records)
        candidates = model.objects.filter(history_date__lte=latest, **lookup).order_by(
            "history_date", "history_id"
        )
        by_key: dict[tuple, list] = defaultdict(list)
        for candidate in candidates:
            if candidate.history_type != "-":
                by_key[self._key(candidate)].append(candidate)
        for record in records:
            previous = None
            for candidate in by_key[self._key(record)]:
                if (candidate.history_date, candidate.history_id) >= (
                    record.history_date,
                    record.history_id,
                ):
                    break
                previous = candidate
            record._previous_record = previous

    @admin.display(description=_("tipo"), ordering="history_type")
    def kind(self, record: Any) -> str:
        return record.get_history_type_display()

    @admin.display(description=_("quando"), ordering="history_date")
    def when(self, record: Any) -> str:
        return short_datetime(record.history_date)

    @admin.display(description=_("por"), ordering="history_user__username")
    def who(self, record: Any) -> str:
        return record.history_user.get_username() if record.history_user else "—"

    @admin.display(description=_("alterações"))
    def changes(self, record: Any) -> str:
        """Field: old → new for every field that differs from the previous record."""
        if record.history_type == "-":
            return str(_("removido"))
        previous = getattr(record, "_previous_record", None)
        if previous is None:
            return str(_("criado"))
        excluded = [*self.diff_excluded, *(["id"] if "id" not in self.history_key else [])]
        delta = record.diff_against(previous, excluded_fields=excluded)
        if not delta.changes:
            return str(_("sem alteração de valor"))
        fields = {f.name: f for f in self.model.instance_type._meta.fields}
        rows = [
            (
                str(fields[c.field].verbose_name) if c.field in fields else c.field,
                display_value(fields.get(c.field), c.old),
                display_value(fields.get(c.field), c.new),
            )
            for c in delta.changes
        ]
        return format_html(
            "<ul style='margin:0;padding-left:1em'>{}</ul>",
            format_html_join("", "<li><strong>{}</strong>: {} → {}</li>", rows),
        )


class TransactionalImportMixin:
    """XLSX and CSV; the confirmed import also rolls back when any row is invalid (the library
    does so only on the dry run), so a file is imported whole or not at all."""

    formats = [XLSX, CSV]
    import_error_display = ("message", "row")

    def get_import_data_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        data_kwargs = super().get_import_data_kwargs(**kwargs)
        data_kwargs["rollback_on_validation_errors"] = True
        return data_kwargs
