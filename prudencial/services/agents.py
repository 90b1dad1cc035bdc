"""Writing agents: creation and update with the class → cadence rule applied.

The cadence is derived here and only here (prudencial.models.agents.cadence_for_class, the
domain's table unless settings override it). Acronym and CNPJ are normalised by their model
fields (AcronymField, CnpjField) when full_clean runs.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from prudencial.models import Agent, AgentClass
from prudencial.models.agents import cadence_for_class
from prudencial.services.bulk import bulk_update_rows


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


def agents_bulk_write(
    *,
    creates: list[Agent] = (),
    updates: list[Agent] = (),
    fields: tuple[str, ...] = (
        "acronym",
        "cnpj",
        "legal_name",
        "agent_class",
        "reporting_cadence",
        "is_active",
    ),
    by=None,
    reason: str | None = None,
) -> None:
    """Create and update many agents at once (imports, the demo market): the cadence rule and
    full validation per agent as agent_create applies them, the unique acronym and CNPJ checked
    for the whole set in one query (not two per agent), then multi-row writes with their history
    rows (`by`, `reason`). Raises ValidationError {"<index>": errors} naming each wrong agent by
    its position (creates first, then updates)."""
    creates, updates = list(creates), list(updates)
    everyone = [*creates, *updates]
    errors: dict[str, list[str]] = {}
    for i, agent in enumerate(everyone):
        agent.legal_name = (agent.legal_name or "").strip()
        agent.reporting_cadence = _cadence(agent.agent_class, agent.reporting_cadence)
        try:
            # Field validators and clean() hold the check constraints' rules (CNPJ form,
            # distributors exempt): no SELECT per constraint and agent.
            agent.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            errors[str(i)] = exc.messages
    for agent in everyone:  # the stored form, for the uniqueness checks
        for name in ("acronym", "cnpj"):
            setattr(agent, name, agent._meta.get_field(name).to_python(getattr(agent, name)))
    first_at: dict[tuple[str, str], int] = {}
    for i, agent in enumerate(everyone):
        for name in ("acronym", "cnpj"):
            key = (name, getattr(agent, name))
            if key in first_at:
                errors.setdefault(str(i), []).append(
                    f"{name}: repetido (também na posição {first_at[key]})"
                )
            first_at.setdefault(key, i)
    for start in range(0, len(everyone), 900):
        chunk = everyone[start : start + 900]
        holders: dict[tuple[str, str], int] = {}
        for pk, acronym, cnpj in Agent.objects.filter(
            Q(acronym__in=[a.acronym for a in chunk]) | Q(cnpj__in=[a.cnpj for a in chunk])
        ).values_list("pk", "acronym", "cnpj"):
            holders[("acronym", acronym)] = pk
            holders[("cnpj", cnpj)] = pk
        for i, agent in enumerate(chunk, start=start):
            for name in ("acronym", "cnpj"):
                holder = holders.get((name, getattr(agent, name)))
                if holder is not None and holder != agent.pk:
                    errors.setdefault(str(i), []).append(f"{name}: já cadastrado")
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        for agent in creates:
            agent.created_at = agent.updated_at = now
        for agent in updates:
            agent.updated_at = now
        if creates:
            bulk_create_with_history(
                creates,
                Agent,
                batch_size=2000,
                default_user=by,
                default_change_reason=reason,
                default_date=now,
            )
        if updates:
            bulk_update_rows(Agent, updates, [*fields, "updated_at"])
            Agent.history.bulk_history_create(
                updates,
                batch_size=2000,
                update=True,
                default_user=by,
                default_change_reason=reason,
                default_date=now,
            )
