"""Writing agents: creation and update with the class → cadence rule applied."""

from __future__ import annotations

from django.db import transaction

from prudencial.models import Agent
from prudencial.models.agents import cadence_for_class
from prudencial.validators import normalize_cnpj


@transaction.atomic
def agent_create(
    *,
    acronym: str,
    cnpj: str,
    legal_name: str,
    agent_class: str,
    reporting_cadence: str | None = None,
    is_active: bool = True,
) -> Agent:
    """Create an agent after full validation; the cadence follows the class unless given."""
    agent = Agent(
        acronym=acronym.strip().upper(),
        cnpj=normalize_cnpj(cnpj),
        legal_name=legal_name.strip(),
        agent_class=agent_class,
        reporting_cadence=reporting_cadence or cadence_for_class(agent_class),
        is_active=is_active,
    )
    agent.full_clean()
    agent.save()
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, **changes) -> Agent:
    """Update fields of an agent; changing the class re-derives the cadence unless it is given."""
    if "agent_class" in changes and "reporting_cadence" not in changes:
        changes["reporting_cadence"] = cadence_for_class(changes["agent_class"])
    if "cnpj" in changes:
        changes["cnpj"] = normalize_cnpj(changes["cnpj"])
    for field, value in changes.items():
        setattr(agent, field, value)
    agent.full_clean()
    agent.save()
    return agent
