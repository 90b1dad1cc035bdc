"""Formatting of money and dates the way CCEE staff read them: "R$ 1.234,56" and dd/mm/aaaa
in pt-BR (the active language decides the separators, so English shows "R$ 1,234.56").

The functions are plain callables too, so admin display methods use the same formatting as the
templates (`{% load prudencial_format %}{{ value|brl }}`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django import template
from django.utils import timezone
from django.utils.formats import date_format, number_format

register = template.Library()

EMPTY = "—"


@register.filter
def brl(value: Decimal | float | int | str | None, decimal_places: int = 2) -> str:
    """Money in reais with thousands grouping of the active language; "—" when there is none."""
    if value is None or value == "":
        return EMPTY
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    sign = "-" if amount < 0 else ""
    text = number_format(
        abs(amount), decimal_pos=decimal_places, use_l10n=True, force_grouping=True
    )
    return f"{sign}R$ {text}"


@register.filter
def decimal_br(value: Decimal | float | int | None, decimal_places: int = 4) -> str:
    """A plain number (volatility, confidence) with the active language's decimal separator."""
    if value is None or value == "":
        return EMPTY
    return number_format(
        Decimal(str(value)), decimal_pos=decimal_places, use_l10n=True, force_grouping=True
    )


@register.filter
def short_date(value: date | datetime | None) -> str:
    """dd/mm/aaaa in pt-BR (Django's pt-BR DATE_FORMAT spells the month out, which lists avoid)."""
    if value is None:
        return EMPTY
    if isinstance(value, datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    return date_format(value, "SHORT_DATE_FORMAT")


@register.filter
def short_datetime(value: datetime | None) -> str:
    """dd/mm/aaaa hh:mm in Brasília time (settings.TIME_ZONE)."""
    if value is None:
        return EMPTY
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return date_format(value, "SHORT_DATETIME_FORMAT")
