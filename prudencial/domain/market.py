"""The market's names: buckets, submarkets, energy types, agent classes and what each implies.

Registry classes (``AGENT_CLASSES``, the values of ``prudencial.models.AgentClass``) map to the
paper's three network classes (seed 002: CS consumers consume and buy, GE generators generate,
buy and sell, CM traders buy and sell) and to a default reporting cadence
(``settings.PRUDENCIAL_CADENCE_BY_CLASS`` may override the table; ``DEFAULT_CADENCE_BY_CLASS`` is
its documented default).
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Mapping
from datetime import date

from prudencial.domain.errors import DomainError

# --- buckets ---------------------------------------------------------------------------------

BUCKET_COUNT = 7  # M+0 … M+6
BUCKETS = tuple(range(BUCKET_COUNT))
MONTH_LABELS = ("JAN", "FEV", "MAR", "ABR", "MAI", "JUN", "JUL", "AGO", "SET", "OUT", "NOV", "DEZ")


def bucket_name(index: int) -> str:
    """M+0 … M+6."""
    return f"M+{index}"


def add_months(month: date, n: int) -> date:
    """The first day of the month n months after `month`'s."""
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


def month_label(month: date) -> str:
    """Bucket label as CCEE writes it: MAR/2023."""
    return f"{MONTH_LABELS[month.month - 1]}/{month.year}"


def month_hours(month: date) -> int:
    """Hours of the month (energy = MWm × hours): 672, 696, 720 or 744."""
    return _calendar.monthrange(month.year, month.month)[1] * 24


MONTH_HOURS = frozenset({672, 696, 720, 744})  # 28 to 31 days

# --- price sources ----------------------------------------------------------------------------

SUBMARKETS = ("SE", "S", "NE", "N")  # SE is SE/CO (Sudeste/Centro-Oeste)
SUBMARKET_ALIASES = {"SE/CO": "SE", "SECO": "SE"}
ENERGY_TYPES = ("conventional", "incentivized")
ENERGY_TYPE_ALIASES = {"convencional": "conventional", "incentivada": "incentivized"}


def normalize_submarket(value: str) -> str:
    """SE, S, NE, N from any case and the aliases the XLSX accepts (SE/CO, SECO); an unknown
    value is returned as written, so that the schema refuses it by its field."""
    key = value.upper()
    if key in SUBMARKETS:
        return key
    return SUBMARKET_ALIASES.get(key, value)


def normalize_energy_type(value: str) -> str:
    """conventional / incentivized from English or Portuguese, any case; unknown as written."""
    key = value.casefold()
    if key in ENERGY_TYPES:
        return key
    return ENERGY_TYPE_ALIASES.get(key, value)


# --- agent classes ----------------------------------------------------------------------------

GENERATOR = "generator"
TRADER = "trader"
SELF_PRODUCER = "self_producer"
FREE_CONSUMER = "free_consumer"
SPECIAL_CONSUMER = "special_consumer"
DISTRIBUTOR = "distributor"
AGENT_CLASSES = (GENERATOR, TRADER, SELF_PRODUCER, FREE_CONSUMER, SPECIAL_CONSUMER, DISTRIBUTOR)

CONSUMER, GENERATOR_NODE, TRADER_NODE = "CS", "GE", "CM"
NETWORK_CLASSES = (CONSUMER, GENERATOR_NODE, TRADER_NODE)

#: Every registry class, explicitly. Self-producers generate (and may buy and sell) like a
#: generator; free and special consumers consume and buy. Distributors (DI) are exempt from
#: reporting, so none should be in a batch: None, and network_class refuses one naming it.
NETWORK_CLASS_BY_AGENT_CLASS: dict[str, str | None] = {
    GENERATOR: GENERATOR_NODE,
    SELF_PRODUCER: GENERATOR_NODE,
    TRADER: TRADER_NODE,
    FREE_CONSUMER: CONSUMER,
    SPECIAL_CONSUMER: CONSUMER,
    DISTRIBUTOR: None,
}

WEEKLY, MONTHLY, EXEMPT = "weekly", "monthly", "exempt"
REPORTING_CADENCES = (WEEKLY, MONTHLY, EXEMPT)

#: The CCEE presentation shows a weekly event for traders and generators ("Agente
#: comercializador ou gerador"); the rest report monthly; distributors are exempt.
DEFAULT_CADENCE_BY_CLASS: dict[str, str] = {
    GENERATOR: WEEKLY,
    TRADER: WEEKLY,
    SELF_PRODUCER: MONTHLY,
    FREE_CONSUMER: MONTHLY,
    SPECIAL_CONSUMER: MONTHLY,
    DISTRIBUTOR: EXEMPT,
}


def cadence_for_class(
    agent_class: str, table: Mapping[str, str] | None = None, *, field: str = "agent_class"
) -> str:
    """The reporting cadence a class implies (`table` defaults to DEFAULT_CADENCE_BY_CLASS);
    an unknown class is an error naming it, never a silent default."""
    cadences = DEFAULT_CADENCE_BY_CLASS if table is None else table
    try:
        return cadences[agent_class]
    except (KeyError, TypeError):
        raise DomainError(
            field, "agent_class", allowed=", ".join(sorted(cadences)), got=agent_class
        ) from None


def network_class(agent_class: str, *, agent: str, field: str = "agent.class") -> str:
    """CS, GE or CM for a registry class; a distributor or an unknown class is an error naming
    the agent and the class."""
    if agent_class not in NETWORK_CLASS_BY_AGENT_CLASS:
        raise DomainError(
            f"{field} of agent {agent}",
            "agent_class",
            allowed=", ".join(AGENT_CLASSES),
            got=agent_class,
        )
    klass = NETWORK_CLASS_BY_AGENT_CLASS[agent_class]
    if klass is None:
        raise DomainError(f"{field} of agent {agent}", "no_network_class", agent_class=agent_class)
    return klass
