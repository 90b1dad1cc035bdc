"""Representations and the object permissions derived from them.

A representation is *effective* on day d when valid_from ≤ d ≤ valid_until (or no end). The
guardian permissions of a (user, agent) pair are always the union of the permissions of the pair's
effective representations (settings.PRUDENCIAL_PERMISSIONS_BY_ROLE). Every write here re-derives
them at once; a Celery beat task (`expire_representations`) applies starts and ends by date.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from prudencial.models import Agent, AgentUserObjectPermission, Representation, User

logger = logging.getLogger(__name__)


def effective_q(day: date, prefix: str = "") -> Q:
    """Filter for representations in force on `day` (inclusive bounds): the database form of
    prudencial.domain.calendar.in_force. `prefix` reaches them through a relation, e.g.
    "content_object__representations__"."""
    return Q(**{f"{prefix}valid_from__lte": day}) & (
        Q(**{f"{prefix}valid_until__isnull": True}) | Q(**{f"{prefix}valid_until__gte": day})
    )


def _agent_permissions(codenames: set[str]) -> dict[str, Permission]:
    ct = ContentType.objects.get_for_model(Agent)
    return {
        p.codename: p for p in Permission.objects.filter(content_type=ct, codename__in=codenames)
    }


def sync_agent_permissions(*, user: User, agent: Agent, today: date | None = None) -> set[str]:
    """Make the pair's guardian permissions equal to what its effective representations grant."""
    today = today or timezone.localdate()
    roles = set(
        Representation.objects.filter(effective_q(today), user=user, agent=agent).values_list(
            "role", flat=True
        )
    )
    wanted = {code for role in roles for code in settings.PRUDENCIAL_PERMISSIONS_BY_ROLE[role]}
    current = {
        row.permission.codename: row
        for row in AgentUserObjectPermission.objects.filter(
            user=user, content_object=agent
        ).select_related("permission")
    }
    for codename in set(current) - wanted:
        current[codename].delete()
    missing = wanted - set(current)
    if missing:
        perms = _agent_permissions(missing)
        AgentUserObjectPermission.objects.bulk_create(
            [
                AgentUserObjectPermission(user=user, content_object=agent, permission=perms[c])
                for c in missing
            ],
            ignore_conflicts=True,
        )
    return wanted


def representation_check_user(user: User | None) -> None:
    """Whoever controls or represents an agent is a person identified by a (validated) CPF."""
    if user is not None and not user.cpf:
        raise ValidationError(
            {
                "user": _(
                    "O usuário “%(username)s” não tem CPF cadastrado: quem controla "
                    "ou representa um agente é identificado pelo CPF. Cadastre o CPF do usuário "
                    "antes de conceder a representação."
                )
                % {"username": user.get_username()}
            },
            code="user_without_cpf",
        )


def representation_check_overlap(rep: Representation) -> None:
    """Two representations of the same user, agent and role may not overlap in time."""
    others = Representation.objects.filter(
        user_id=rep.user_id, agent_id=rep.agent_id, role=rep.role
    ).exclude(pk=rep.pk)
    end = rep.valid_until or date.max
    overlapping = others.filter(
        Q(valid_until__isnull=True) | Q(valid_until__gte=rep.valid_from), valid_from__lte=end
    )
    if overlapping.exists():
        raise ValidationError(
            {
                "valid_from": _(
                    "Já existe representação do mesmo usuário, agente e papel nesse período."
                )
            },
            code="representation_overlap",
        )


@transaction.atomic
def representation_grant(
    *,
    user: User,
    agent: Agent,
    role: str,
    valid_from: date,
    valid_until: date | None = None,
    granted_by: User | None = None,
) -> Representation:
    """Record that `user` may act for `agent` and grant the permissions at once if in force."""
    rep = Representation(
        user=user,
        agent=agent,
        role=role,
        valid_from=valid_from,
        valid_until=valid_until,
        granted_by=granted_by,
    )
    rep.full_clean()
    representation_check_user(user)
    representation_check_overlap(rep)
    rep.save()
    sync_agent_permissions(user=user, agent=agent)
    logger.info(
        "representation granted id=%s user=%s agent=%s role=%s", rep.pk, user.pk, agent.pk, role
    )
    return rep


@transaction.atomic
def representation_update(*, representation: Representation, **changes) -> Representation:
    """Change a representation (role, dates); permissions of old and new pairs follow at once."""
    old_pair = (representation.user, representation.agent)
    for field, value in changes.items():
        setattr(representation, field, value)
    representation.full_clean()
    if "user" in changes:
        representation_check_user(representation.user)
    representation_check_overlap(representation)
    representation.save()
    sync_agent_permissions(user=old_pair[0], agent=old_pair[1])
    if (representation.user_id, representation.agent_id) != (old_pair[0].pk, old_pair[1].pk):
        sync_agent_permissions(user=representation.user, agent=representation.agent)
    return representation


@transaction.atomic
def representation_end(
    *, representation: Representation, on: date | None = None
) -> Representation | None:
    """End a representation so that access is lost at once: its last day in force becomes the
    day before `on` (default today). One that had not started by then never takes effect and is
    removed (its history stays)."""
    on = on or timezone.localdate()
    if representation.valid_from >= on:
        representation_delete(representation=representation)
        return None
    last_day = on - timedelta(days=1)
    if representation.valid_until is not None and representation.valid_until <= last_day:
        # Already ends by then: ending "later" must never prolong it.
        sync_agent_permissions(user=representation.user, agent=representation.agent)
        return representation
    representation.valid_until = last_day
    representation.full_clean()
    representation.save(update_fields=["valid_until", "updated_at"])
    sync_agent_permissions(user=representation.user, agent=representation.agent)
    return representation


@transaction.atomic
def representation_delete(*, representation: Representation) -> None:
    """Remove a representation recorded in error; permissions follow at once."""
    user, agent = representation.user, representation.agent
    representation.delete()
    sync_agent_permissions(user=user, agent=agent)


def expire_representations(*, today: date | None = None) -> int:
    """Apply starts and ends by date, exactly and idempotently.

    Compares, for every (user, agent) pair, the permissions its representations in force grant
    today with the guardian rows it holds, and re-derives only the pairs that differ, so a missed
    run of any length is caught up by the next one.
    """
    today = today or timezone.localdate()
    by_role = settings.PRUDENCIAL_PERMISSIONS_BY_ROLE
    wanted: dict[tuple[int, int], set[str]] = {}
    for user_id, agent_id, role in Representation.objects.filter(effective_q(today)).values_list(
        "user_id", "agent_id", "role"
    ):
        wanted.setdefault((user_id, agent_id), set()).update(by_role[role])
    held: dict[tuple[int, int], set[str]] = {}
    for user_id, agent_id, codename in AgentUserObjectPermission.objects.values_list(
        "user_id", "content_object_id", "permission__codename"
    ):
        held.setdefault((user_id, agent_id), set()).add(codename)
    pairs = {
        pair
        for pair in wanted.keys() | held.keys()
        if wanted.get(pair, set()) != held.get(pair, set())
    }
    users = User.objects.in_bulk({u for u, _ in pairs})
    agents = Agent.objects.in_bulk({a for _, a in pairs})
    for user_id, agent_id in sorted(pairs):
        with transaction.atomic():
            sync_agent_permissions(user=users[user_id], agent=agents[agent_id], today=today)
    if pairs:
        logger.info(
            "representations: %s user/agent pairs re-derived for %s", len(pairs), today.isoformat()
        )
    return len(pairs)
