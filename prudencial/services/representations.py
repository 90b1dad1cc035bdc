"""Representations and the object permissions derived from them.

A representation is *effective* on day d when valid_from ≤ d ≤ valid_until (or no end). The
guardian permissions of a (user, agent) pair are always the union of the permissions of the pair's
effective representations (settings.PRUDENCIAL_PERMISSIONS_BY_ROLE). Every write here re-derives
them at once; a Celery beat task (`expire_representations`) applies starts and ends by date.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history

from prudencial.models import Agent, AgentUserObjectPermission, Representation, User
from prudencial.services.bulk import bulk_update_rows

logger = logging.getLogger(__name__)

# Bulk writes: rows per INSERT/UPDATE statement; ids per IN (...) list (SQLite's variable limit);
# above FULL_SCAN_PAIRS pairs one pass over the whole table beats chunked reads.
BULK_BATCH = 2000
PAIR_CHUNK = 900
FULL_SCAN_PAIRS = 5000


def effective_q(day: date, prefix: str = "") -> Q:
    """Filter for representations in force on `day` (inclusive bounds): the database form of
    prudencial.domain.calendar.in_force. `prefix` reaches them through a relation, e.g.
    "content_object__representations__"."""
    return Q(**{f"{prefix}valid_from__lte": day}) & (
        Q(**{f"{prefix}valid_until__isnull": True}) | Q(**{f"{prefix}valid_until__gte": day})
    )


def _agent_permission_ids() -> dict[str, int]:
    """Codename → id of the agent permissions that roles grant (one query)."""
    ct = ContentType.objects.get_for_model(Agent)
    return dict(Permission.objects.filter(content_type=ct).values_list("codename", "id"))


def _chunks(items: list, size: int = PAIR_CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def permissions_sync_pairs(
    pairs: Iterable[tuple[int, int]] | None = None, *, today: date | None = None
) -> tuple[int, int]:
    """Make the guardian rows of every (user_id, agent_id) pair in `pairs` (every pair when None)
    equal to the union of what its representations in force on `today` grant, in bulk.

    A few queries whatever the number of pairs: one read of the representations in force, one
    of the rows held, one DELETE and one multi-row INSERT per chunk. Returns (added, removed)."""
    today = today or timezone.localdate()
    by_role = settings.PRUDENCIAL_PERMISSIONS_BY_ROLE
    perm_ids = _agent_permission_ids()
    wanted_pairs = None if pairs is None else set(pairs)
    reps = Representation.objects.filter(effective_q(today))
    held_rows = AgentUserObjectPermission.objects.all()
    if wanted_pairs is not None and len(wanted_pairs) <= FULL_SCAN_PAIRS:
        # Few pairs: read only their users' rows (chunked for SQLite's variable limit).
        user_ids = sorted({u for u, _ in wanted_pairs})
        rep_rows = [
            row
            for chunk in _chunks(user_ids)
            for row in reps.filter(user_id__in=chunk).values_list("user_id", "agent_id", "role")
        ]
        held_list = [
            row
            for chunk in _chunks(user_ids)
            for row in held_rows.filter(user_id__in=chunk).values_list(
                "id", "user_id", "content_object_id", "permission_id"
            )
        ]
    else:
        rep_rows = reps.values_list("user_id", "agent_id", "role")
        held_list = held_rows.values_list("id", "user_id", "content_object_id", "permission_id")
    wanted: dict[tuple[int, int], set[int]] = {}
    for user_id, agent_id, role in rep_rows:
        pair = (user_id, agent_id)
        if wanted_pairs is None or pair in wanted_pairs:
            wanted.setdefault(pair, set()).update(perm_ids[c] for c in by_role[role])
    to_delete: list[int] = []
    held: dict[tuple[int, int], set[int]] = {}
    for row_id, user_id, agent_id, perm_id in held_list:
        pair = (user_id, agent_id)
        if wanted_pairs is not None and pair not in wanted_pairs:
            continue
        if perm_id in wanted.get(pair, ()):
            held.setdefault(pair, set()).add(perm_id)
        else:
            to_delete.append(row_id)
    to_create = [
        AgentUserObjectPermission(user_id=u, content_object_id=a, permission_id=p)
        for (u, a), perms in wanted.items()
        for p in perms - held.get((u, a), set())
    ]
    for chunk in _chunks(to_delete):
        AgentUserObjectPermission.objects.filter(id__in=chunk).delete()  # one fast DELETE
    AgentUserObjectPermission.objects.bulk_create(
        to_create, batch_size=BULK_BATCH, ignore_conflicts=True
    )
    return len(to_create), len(to_delete)


def sync_agent_permissions(*, user: User, agent: Agent, today: date | None = None) -> set[str]:
    """Make the pair's guardian permissions equal to what its effective representations grant."""
    today = today or timezone.localdate()
    permissions_sync_pairs({(user.pk, agent.pk)}, today=today)
    roles = set(
        Representation.objects.filter(effective_q(today), user=user, agent=agent).values_list(
            "role", flat=True
        )
    )
    return {code for role in roles for code in settings.PRUDENCIAL_PERMISSIONS_BY_ROLE[role]}


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


def representations_overlapping(candidates: list[Representation]) -> list[Representation]:
    """The candidates (new or changed representations, not saved yet) whose period overlaps
    another representation of the same user, agent and role: among the candidates themselves
    or in the database (a changed candidate replaces its stored row). Bulk form of
    representation_check_overlap: one read per chunk of users, then a sort per triple."""
    if not candidates:
        return []
    by_pk = {c.pk: c for c in candidates if c.pk is not None}
    triples = {(c.user_id, c.agent_id, c.role) for c in candidates}
    periods: dict[tuple[int, int, str], list[tuple[date, date, Representation | None]]] = {}
    user_ids = sorted({u for u, _, _ in triples})
    for chunk in _chunks(user_ids):
        for pk, user_id, agent_id, role, start, end in Representation.objects.filter(
            user_id__in=chunk
        ).values_list("pk", "user_id", "agent_id", "role", "valid_from", "valid_until"):
            key = (user_id, agent_id, role)
            if key in triples and pk not in by_pk:
                periods.setdefault(key, []).append((start, end or date.max, None))
    for c in candidates:
        key = (c.user_id, c.agent_id, c.role)
        periods.setdefault(key, []).append((c.valid_from, c.valid_until or date.max, c))
    clashing: list[Representation] = []
    for spans in periods.values():
        if len(spans) < 2:
            continue
        spans.sort(key=lambda s: (s[0], s[1]))
        latest_end, latest_owner = spans[0][1], spans[0][2]
        for start, end, owner in spans[1:]:
            if start <= latest_end:
                clashing.extend(o for o in (owner, latest_owner) if o is not None)
            if end > latest_end:
                latest_end, latest_owner = end, owner
    seen: set[int] = set()
    return [c for c in clashing if not (id(c) in seen or seen.add(id(c)))]


@transaction.atomic
def representations_bulk_write(
    *,
    creates: list[Representation] = (),
    updates: list[Representation] = (),
    deletes: list[Representation] = (),
    by: User | None,
    reason: str | None = None,
    today: date | None = None,
) -> tuple[int, int]:
    """Write many representations at once, already validated by the caller (the registry feed,
    the admin import, the demo loader): multi-row INSERT/UPDATE with their history rows (who
    sent them: `by`, and `reason`), then the permissions of every pair touched re-derived in
    bulk in the same transaction, so an ended representation loses access at once. A
    representation never changes its user or agent here. Returns (permissions added, removed)."""
    creates, updates, deletes = list(creates), list(updates), list(deletes)
    now = timezone.now()
    for rep in creates:
        rep.granted_by = rep.granted_by or by
        rep.created_at = rep.updated_at = now
    for rep in updates:
        rep.updated_at = now
    if creates:
        bulk_create_with_history(
            creates,
            Representation,
            batch_size=BULK_BATCH,
            default_user=by,
            default_change_reason=reason,
            default_date=now,
        )
    if updates:
        bulk_update_rows(
            Representation,
            updates,
            ["role", "valid_from", "valid_until", "external_id", "updated_at"],
        )
        Representation.history.bulk_history_create(
            updates,
            batch_size=BULK_BATCH,
            update=True,
            default_user=by,
            default_change_reason=reason,
            default_date=now,
        )
    for rep in deletes:  # rare (a representation cancelled before its start): one by one
        rep._history_user = by
        rep._change_reason = reason
        rep.delete()
    pairs = {(r.user_id, r.agent_id) for r in (*creates, *updates, *deletes)}
    return permissions_sync_pairs(pairs, today=today) if pairs else (0, 0)


def expire_representations(*, today: date | None = None) -> int:
    """Apply starts and ends by date, exactly and idempotently, in bulk.

    Compares, for every (user, agent) pair, the permissions its representations in force grant
    today with the guardian rows it holds and fixes the difference (permissions_sync_pairs: a
    handful of queries whatever the number of pairs), so a missed run of any length is caught
    up by the next one. Returns the number of pairs whose rows changed."""
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
    if pairs:
        with transaction.atomic():
            added, removed = permissions_sync_pairs(pairs, today=today)
        logger.info(
            "representations: %s user/agent pairs re-derived for %s (+%s −%s rows)",
            len(pairs),
            today.isoformat(),
            added,
            removed,
        )
    return len(pairs)
