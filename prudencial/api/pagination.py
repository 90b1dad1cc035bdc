"""Limit/offset pagination with bounds: a page is 1–500 rows, an offset 0 to 2^31 − 1.

DRF's LimitOffsetPagination passes any integer to the database (a limit of 2^63 is a 500 on SQLite
and PostgreSQL) and silently ignores values that are not integers. Here a value out of range, not a decimal
integer, or given twice is a 400 that names the parameter and the rule.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.translation import gettext
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 2**31 - 1
_DECIMAL = re.compile(r"[0-9]{1,12}")


def _bounded_int(request, name: str, default: int, low: int, high: int) -> int:
    values = request.query_params.getlist(name)
    if not values:
        return default
    if len(values) > 1:  # which one would count is a guess: say so instead
        raise ValidationError({name: [gettext("informe este parâmetro uma vez só.")]})
    if _DECIMAL.fullmatch(values[0]) and low <= int(values[0]) <= high:
        return int(values[0])
    raise ValidationError(
        {name: [gettext("deve ser um inteiro de %(low)s a %(high)s.") % {"low": low, "high": high}]}
    )


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """``?limit=`` 1 to PRUDENCIAL_API_MAX_LIMIT (default 500; 100 when absent), ``?offset=`` ≥ 0."""

    @property
    def max_limit(self) -> int:
        return settings.PRUDENCIAL_API_MAX_LIMIT

    def get_limit(self, request) -> int:
        return _bounded_int(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request) -> int:
        return _bounded_int(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
