"""Alert rules of a week: which FA band a figure falls in, which concentration limit it breaches,
and when a case's answer is due. One definition, without Django: the admin, the exports, the API
and the alerts service all call these.

CCEE publishes neither FA bands nor concentration limits, so both are week parameters
(``RiskParameters.fa_bands``, ``concentration_limit_largest``, ``concentration_limit_top_five``,
``case_response_days``) with documented defaults (docs/alerts.md):

- FA bands: an ordered list ``[{"code": "attention", "from": 0.8}, {"code": "alert", "from": 1.0}]``;
  a figure is in the highest band whose ``from`` it reaches (``fa >= from``: at exactly 1.0 the FA
  is in "alert"); under the lowest band it is in none. The default is one band, "alert" from the
  week's ``fa_alert_threshold`` (1.0), so existing weeks keep their meaning.
- Concentration limits are fractions of PLA (the ratios the enclave computes); a figure breaches
  a limit when it *exceeds* it (``value > limit``: at exactly the limit it does not), as in the
  Basel large-exposure rule ("must not exceed"). Defaults 0.25 for the largest counterparty
  (BCBS LEX 2014 and CMN Resolution 4.677/2018: 25 % of Tier 1 capital for one counterparty) and
  1.0 for the five largest together (their default would consume the whole PLA).
- A case's answer is due ``case_response_days`` business days (default 5: one weekly cycle, so
  the agent answers before the next closing) after the day it opens, counting neither weekends
  nor Brazil's national holidays.

Every refusal is a DomainError naming the field (``fa_bands[1].from``) and the rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from prudencial.domain import values as check
from prudencial.domain.errors import DomainError

#: The figures a case can be about (LeverageResult fields of the same names).
FIGURE_FA = "fa"
FIGURE_CONCENTRATION_LARGEST = "concentration_largest"
FIGURE_CONCENTRATION_TOP_FIVE = "concentration_top_five"
FIGURES = (FIGURE_FA, FIGURE_CONCENTRATION_LARGEST, FIGURE_CONCENTRATION_TOP_FIVE)
#: figure → the week parameter holding its limit.
LIMIT_PARAMETERS = {
    FIGURE_CONCENTRATION_LARGEST: "concentration_limit_largest",
    FIGURE_CONCENTRATION_TOP_FIVE: "concentration_limit_top_five",
}

BAND_CODE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
_BAND_CODE = re.compile(BAND_CODE_PATTERN)
BAND_KEYS = ("code", "from")
MAX_BANDS = 10
#: The band whose start is the week's ``fa_alert_threshold`` (else the highest band's).
ALERT_BAND = "alert"
DEFAULT_FA_ALERT_THRESHOLD = 1.0
DEFAULT_CONCENTRATION_LIMIT_LARGEST = 0.25
DEFAULT_CONCENTRATION_LIMIT_TOP_FIVE = 1.0
#: A ratio over PLA above this is no limit anyone could mean (100 × PLA).
MAX_CONCENTRATION_LIMIT = 100.0
DEFAULT_CASE_RESPONSE_DAYS = 5
MAX_CASE_RESPONSE_DAYS = 60


@dataclass(frozen=True)
class Band:
    """An FA band: figures from ``start`` (inclusive) up to the next band's start."""

    code: str
    start: float

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "from": self.start}


@dataclass(frozen=True)
class AlertParameters:
    """The alert parameters of one week, checked."""

    fa_bands: tuple[Band, ...]
    concentration_limit_largest: float = DEFAULT_CONCENTRATION_LIMIT_LARGEST
    concentration_limit_top_five: float = DEFAULT_CONCENTRATION_LIMIT_TOP_FIVE
    case_response_days: int = DEFAULT_CASE_RESPONSE_DAYS

    def limit(self, figure: str) -> float:
        return float(getattr(self, LIMIT_PARAMETERS[figure]))


@dataclass(frozen=True)
class Breach:
    """A figure beyond the week's rule: in an FA band (``band`` its code, ``threshold`` its
    start) or above a concentration limit (``band`` empty, ``threshold`` the limit)."""

    figure: str
    value: float
    band: str
    threshold: float


def default_fa_bands(threshold: float = DEFAULT_FA_ALERT_THRESHOLD) -> list[dict[str, Any]]:
    """The bands that mean what ``fa_alert_threshold`` meant: one "alert" band from it."""
    return [{"code": ALERT_BAND, "from": float(threshold)}]


def parse_bands(raw: Any, field: str = "fa_bands") -> tuple[Band, ...]:
    """Check a band list: 1 to MAX_BANDS objects {code, from}, codes unique and lower case,
    starts finite, > 0 and strictly increasing."""
    if isinstance(raw, Band):
        raw = [raw]
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise DomainError(field, "list", got=type(raw).__name__)
    if not 1 <= len(raw) <= MAX_BANDS:
        raise DomainError(field, "band_count", n=MAX_BANDS, got=len(raw))
    bands: list[Band] = []
    for n, item in enumerate(raw):
        where = f"{field}[{n}]"
        if isinstance(item, Band):
            item = item.to_dict()
        item = check.require_mapping(item, where)
        unknown = sorted(set(item) - set(BAND_KEYS), key=str)
        if unknown:
            raise DomainError(f"{where}.{unknown[0]}", "schema", expected="code, from")
        code = check.require_key(item, "code", where)
        if not isinstance(code, str) or not _BAND_CODE.match(code):
            raise DomainError(f"{where}.code", "band_code", got=code)
        if any(b.code == code for b in bands):
            raise DomainError(f"{where}.code", "band_code", got=code)
        start = check.number(
            check.require_key(item, "from", where), f"{where}.from", minimum=0, strict=True
        )
        if bands and start <= bands[-1].start:
            raise DomainError(
                f"{where}.from", "band_order", previous=f"{bands[-1].start:g}", got=start
            )
        bands.append(Band(code, start))
    return tuple(bands)


def alert_threshold(bands: Iterable[Band] | Sequence[Mapping[str, Any]]) -> float:
    """The FA from which a week alerts in the old single-threshold sense: the "alert" band's
    start, else the highest band's."""
    parsed = parse_bands(list(bands))
    for band in parsed:
        if band.code == ALERT_BAND:
            return band.start
    return parsed[-1].start


def bands_with_threshold(
    bands: Iterable[Band] | Sequence[Mapping[str, Any]], threshold: float
) -> list[dict[str, Any]]:
    """The bands with the "alert" band (else the highest) moved to ``threshold``; a move that
    breaks the order is refused naming ``fa_alert_threshold``."""
    parsed = list(parse_bands(list(bands)))
    index = next((i for i, b in enumerate(parsed) if b.code == ALERT_BAND), len(parsed) - 1)
    parsed[index] = Band(parsed[index].code, float(threshold))
    try:
        return [b.to_dict() for b in parse_bands(parsed)]
    except DomainError as exc:
        raise DomainError("fa_alert_threshold", "alert_band", band=parsed[index].code) from exc


def _limit(data: Mapping[str, Any], name: str, default: float) -> float:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool) and not isinstance(value, int | float):
        try:  # Decimal from the database
            value = float(value)
        except (TypeError, ValueError):
            raise DomainError(name, "number", got=value) from None
    value = check.number(value, name, minimum=0, strict=True)
    if value > MAX_CONCENTRATION_LIMIT:
        raise DomainError(name, "at_most", maximum=f"{MAX_CONCENTRATION_LIMIT:g}", got=value)
    return value


def check_alert_parameters(data: Mapping[str, Any]) -> AlertParameters:
    """Parse and check a week's alert parameters (absent ones take their defaults); the largest
    counterparty's limit may not exceed the five largest's (one counterparty is one of five)."""
    data = check.require_mapping(data, "parameters")
    raw_bands = data.get("fa_bands")
    if raw_bands is None:
        raw_bands = default_fa_bands(data.get("fa_alert_threshold") or DEFAULT_FA_ALERT_THRESHOLD)
    bands = parse_bands(raw_bands)
    largest = _limit(data, "concentration_limit_largest", DEFAULT_CONCENTRATION_LIMIT_LARGEST)
    top_five = _limit(data, "concentration_limit_top_five", DEFAULT_CONCENTRATION_LIMIT_TOP_FIVE)
    if largest > top_five:
        raise DomainError(
            "concentration_limit_largest", "limit_order", other=f"{top_five:g}", got=largest
        )
    days = data.get("case_response_days")
    days = (
        DEFAULT_CASE_RESPONSE_DAYS
        if days is None
        else check.integer(days, "case_response_days", low=1, high=MAX_CASE_RESPONSE_DAYS)
    )
    return AlertParameters(bands, largest, top_five, days)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def classify_fa(
    fa: float | None, bands: Iterable[Band] | Sequence[Mapping[str, Any]]
) -> Band | None:
    """The band an FA falls in (the highest whose start it reaches, ``fa >= start``), or None
    under the lowest band or with no FA (None, NaN)."""
    value = _finite(fa)
    if value is None:
        return None
    found = None
    for band in parse_bands(list(bands)):
        if value >= band.start:
            found = band
    return found


def exceeds(value: float | None, limit: float) -> bool:
    """Whether a concentration ratio breaches its limit (strictly above it)."""
    value = _finite(value)
    return value is not None and value > float(limit)


def breaches(
    result_figures: Mapping[str, Any], params: AlertParameters | Mapping[str, Any]
) -> list[Breach]:
    """The breaches of one agent's result: ``result_figures`` maps figure names (``fa``,
    ``concentration_largest``, ``concentration_top_five``; others are ignored) to values, None
    when not computed; ``params`` is an AlertParameters or a mapping check_alert_parameters
    reads. In FIGURES order."""
    if not isinstance(params, AlertParameters):
        params = check_alert_parameters(params)
    found: list[Breach] = []
    band = classify_fa(result_figures.get(FIGURE_FA), params.fa_bands)
    if band is not None:
        found.append(Breach(FIGURE_FA, float(result_figures[FIGURE_FA]), band.code, band.start))
    for figure in (FIGURE_CONCENTRATION_LARGEST, FIGURE_CONCENTRATION_TOP_FIVE):
        limit = params.limit(figure)
        if exceeds(result_figures.get(figure), limit):
            found.append(Breach(figure, float(result_figures[figure]), "", limit))
    return found


# --- response deadline -----------------------------------------------------------------------


def easter(year: int) -> date:
    """Easter Sunday (Gregorian; the anonymous algorithm of Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * el) // 433
    month = (h + el - 7 * m + 90) // 25
    return date(year, month, (h + el - 7 * m + 33 * month + 19) % 32)


#: Brazil's national holidays by (month, day): Laws 662/1949, 6.802/1980 and 14.759/2023.
FIXED_HOLIDAYS = ((1, 1), (4, 21), (5, 1), (9, 7), (10, 12), (11, 2), (11, 15), (11, 20), (12, 25))


def national_holidays(year: int) -> frozenset[date]:
    """The fixed national holidays and Good Friday (the one national movable holiday)."""
    return frozenset(
        {date(year, m, d) for m, d in FIXED_HOLIDAYS} | {easter(year) - timedelta(days=2)}
    )


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in national_holidays(day.year)


def add_business_days(start: date, days: int) -> date:
    """The ``days``-th business day after ``start`` (``start`` itself never counts)."""
    if days < 0:
        raise ValueError("days must be >= 0")
    day = start
    while days:
        day += timedelta(days=1)
        if is_business_day(day):
            days -= 1
    return day
