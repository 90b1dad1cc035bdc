"""Helpers for tests that post admin change forms as a browser would: the page's own values,
with the fields a test wants changed."""

from __future__ import annotations

from typing import Any

from django import forms


def _add_form(data: dict[str, Any], form: forms.BaseForm) -> None:
    for bf in form:
        if bf.field.disabled:
            continue
        value = bf.value()
        widget = bf.field.widget
        if isinstance(widget, forms.MultiWidget):
            for i, part in enumerate(widget.decompress(value)):
                data[f"{bf.html_name}_{i}"] = "" if part is None else str(part)
        elif isinstance(value, bool):
            if value:
                data[bf.html_name] = "on"
        elif isinstance(value, (list, tuple)) and not isinstance(bf.field, forms.JSONField):
            data[bf.html_name] = [str(v) for v in value]
        elif value is None:
            data[bf.html_name] = ""
        else:
            data[bf.html_name] = value  # BoundField.value() is already prepared


def change_form_data(response, **changes: Any) -> dict[str, Any]:
    """The POST data of an admin change page as rendered, then `changes` (by html name)."""
    data: dict[str, Any] = {}
    _add_form(data, response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        _add_form(data, formset.management_form)
        for form in formset.forms:
            _add_form(data, form)
    data.update(changes)
    return data
