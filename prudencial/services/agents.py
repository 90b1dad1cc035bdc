"""Writing agents: creation and update with the class → cadence rule applied.

The cadence is derived here and only here (prudencial.models.agents.cadence_for_class, the
domain's table unless settings override it). Acronym and CNPJ are normalised by their model
fields (AcronymField, CnpjField) when full_clean runs.
"""

from __future__ import annotations

from django.db import transaction

from prudencial.models import Agent, AgentClass
from prudencial.models.agents import cadence_for_class


def _cadence(agent_class: str, given: str | None) -> str:
    """The given cadence, else the class's; an unknown class is left to full_clean, which
    names the field and the allowed classes."""
    if given:
        return given
    return cadence_for_class(agent_class) if agent_class in AgentClass.values else ""


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
        acronym=acronym,
        cnpj=cnpj,
        legal_name=legal_name.strip(),
        agent_class=agent_class,
        reporting_cadence=_cadence(agent_class, reporting_cadence),
        is_active=is_active,
    )
    agent.full_clean()
    agent.save()
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, **changes) -> Agent:
    """Update fields of an agent; changing the class re-derives the cadence unless it is given."""
    if "agent_class" in changes and not changes.get("reporting_cadence"):
        changes["reporting_cadence"] = _cadence(changes["agent_class"], None)
    for field, value in changes.items():
        setattr(agent, field, value)
    agent.full_clean()
    agent.save()
    return agent
