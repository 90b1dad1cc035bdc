"""Dates of the regulation: the week code (semana, e.g. 202303001), "in force on day d" and
which weeks are a reporting cadence's events."""

from __future__ import annotations

import re
from datetime import date

from prudencial.domain.errors import DomainError
from prudencial.domain.market import EXEMPT, MONTHLY, REPORTING_CADENCES, WEEKLY

#: YYYYMM + a 3-digit sequence; the month is the operating week's end month. The model's
#: constraint and the JSON Schemas use this very pattern (tests/domain checks they do).
WEEK_CODE_PATTERN = r"^[0-9]{4}(0[1-9]|1[0-2])[0-9]{3}$"
_WEEK_CODE = re.compile(WEEK_CODE_PATTERN)
MAX_WEEK_SEQUENCE = 999


def is_week_code(value: object) -> bool:
    return isinstance(value, str) and _WEEK_CODE.match(value) is not None


def check_week_code(value: object, field: str = "week") -> str:
    """The code itself, or a DomainError naming the field."""
    if not is_week_code(value):
        raise DomainError(field, "week_code", got=value)
    return value  # type: ignore[return-value]


def parse_week_code(code: str, field: str = "week") -> tuple[date, int]:
    """(first day of the code's month, sequence): 202303002 → (2023-03-01, 2)."""
    check_week_code(code, field)
    return date(int(code[:4]), int(code[4:6]), 1), int(code[6:])


def week_code_prefix(month: date) -> str:
    """YYYYMM of a month: the prefix of its weeks' codes."""
    return f"{month.year:04d}{month.month:02d}"


def week_code(month: date, sequence: int) -> str:
    if not 1 <= sequence <= MAX_WEEK_SEQUENCE:
        raise DomainError("code", "between", low=1, high=MAX_WEEK_SEQUENCE, got=sequence)
    return f"{week_code_prefix(month)}{sequence:03d}"


def next_week_code(month: date, last: str | None) -> str:
    """The code after `last` (the month's latest code, or None for its first week); a month
    holds at most 999 weeks (DomainError on ``code``)."""
    sequence = parse_week_code(last, "code")[1] + 1 if last else 1
    return week_code(month, sequence)


def in_force(valid_from: date, valid_until: date | None, day: date) -> bool:
    """A period valid_from … valid_until (inclusive; None: no end) is in force on `day`.
    The database filter of the same rule is prudencial.services.representations.effective_q."""
    return valid_from <= day and (valid_until is None or day <= valid_until)


#: The week of its month (the code's 3-digit sequence) in which a monthly reporter reports:
#: documented default 1, the month's first event (settings.PRUDENCIAL_MONTHLY_EVENT_SEQUENCE).
DEFAULT_MONTHLY_EVENT_SEQUENCE = 1


def has_cadence_event(
    cadence: str,
    week: str,
    *,
    monthly_sequence: int = DEFAULT_MONTHLY_EVENT_SEQUENCE,
    field: str = "agent.reporting_cadence",
) -> bool:
    """Whether an agent of this reporting cadence reports in the week with this code: weekly
    reporters every week; monthly ones only in the week whose sequence is ``monthly_sequence``
    (202303001 with the default 1); exempt agents (distributors) never. An unknown cadence is a
    DomainError naming it, never a silent answer."""
    sequence = parse_week_code(week)[1]
    if cadence == WEEKLY:
        return True
    if cadence == MONTHLY:
        return sequence == monthly_sequence
    if cadence == EXEMPT:
        return False
    raise DomainError(field, "choice", allowed=", ".join(REPORTING_CADENCES), got=cadence)
