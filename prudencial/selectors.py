"""Selectors read: the one place that decides which agents a user may see or act for.

A list is one query with an `id__in` subquery over guardian's direct-FK permission table
(paperless-ngx style), never a per-object check. CCEE staff hold the global model permission
and see every agent.

The subquery also requires a representation in force today whose role grants the permission, so
a representation that expires by date loses access at once, before the beat task
(`expire_representations`) removes the guardian rows. Starts by date still wait for that task,
which grants the rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from prudencial.domain.identifiers import normalize_acronym, normalize_cnpj
from prudencial.models import Agent, AgentUserObjectPermission, Representation, Week
from prudencial.services.representations import effective_q

AGENT_PERMISSIONS = ("view_agent", "submit_agent_data", "send_leverage_result")


def agent_ids_permitted(*, user, permission: str = "view_agent") -> QuerySet:
    """Subquery of agent ids on which `user` holds `permission` through a representation in
    force today (Brasília date)."""
    today = timezone.localdate()
    roles = [
        r for r, codes in settings.PRUDENCIAL_PERMISSIONS_BY_ROLE.items() if permission in codes
    ]
    return AgentUserObjectPermission.objects.filter(
        effective_q(today, prefix="content_object__representations__"),
        user_id=user.pk,
        permission__codename=permission,
        content_object__representations__user_id=user.pk,
        content_object__representations__role__in=roles,
    ).values("content_object_id")


def agent_list(*, user, permission: str = "view_agent") -> QuerySet[Agent]:
    """Agents that `user` may see (or act on, with another permission)."""
    if permission not in AGENT_PERMISSIONS:
        raise ValueError(f"unknown agent permission {permission!r}")
    if user is None or not user.is_authenticated or not user.is_active:
        return Agent.objects.none()
    if user.is_superuser or user.has_perm(f"prudencial.{permission}"):
        return Agent.objects.all()
    return Agent.objects.filter(id__in=agent_ids_permitted(user=user, permission=permission))


def representation_list(*, user) -> QuerySet[Representation]:
    """Representations of the agents the user may see."""
    qs = Representation.objects.select_related("user", "agent", "granted_by")
    if user.is_superuser or user.has_perm("prudencial.view_representation"):
        return qs
    return qs.filter(agent_id__in=agent_ids_permitted(user=user))


def representation_search(
    queryset: QuerySet[Representation], term: str
) -> QuerySet[Representation]:
    """The staff search of representations: each word of `term` must match the agent (acronym
    or legal name) or the user (username, first or last name, CPF digits). Written as two
    `id IN (subquery)` over one table each, so PostgreSQL serves each with its trigram indexes
    (migration 0008) instead of filtering the three-table join row by row."""
    from django.db.models import Q

    from prudencial.models import User

    for word in term.split():
        agents = Agent.objects.filter(
            Q(acronym__icontains=word) | Q(legal_name__icontains=word)
        ).values("pk")
        people = (
            Q(username__icontains=word)
            | Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
        )
        digits = "".join(ch for ch in word if ch.isdigit())
        if digits and len(digits) >= 3 and not word.strip(".-0123456789"):
            people |= Q(cpf__contains=digits)
        queryset = queryset.filter(
            Q(agent_id__in=agents) | Q(user_id__in=User.objects.filter(people).values("pk"))
        )
    return queryset


def week_list() -> QuerySet[Week]:
    """Weeks (public to every authenticated user), with their parameters' row."""
    return Week.objects.select_related("parameters")


def week_detail_list() -> QuerySet[Week]:
    """Weeks for a detail view, which shows the parameters' seven buckets too."""
    return week_list().prefetch_related("parameters__buckets")


REGISTRY_LOOKUP_MIN_CHARS = 2
REGISTRY_LOOKUP_MAX_CHARS = 100
REGISTRY_LOOKUP_LIMIT = 20
#: The public columns of CCEE's list of agents: all the lookup ever reads or returns.
REGISTRY_LOOKUP_FIELDS = ("acronym", "cnpj", "legal_name")


def registry_lookup(*, q: str, limit: int = REGISTRY_LOOKUP_LIMIT) -> list[dict[str, str]]:
    """The public registry search of the counterparties screen: acronym, CNPJ and legal name
    (razão social) of the active agents, as CCEE's public list of agents shows them, for any
    signed-in user. Matches an acronym prefix, a CNPJ prefix (digits only or masked,
    alphanumeric included) or a part of the legal name; best matches first (the exact acronym,
    then acronym prefixes, then CNPJ prefixes, then names), at most ``limit`` rows. Reads only
    those three columns: no class, cadence, user or representation is reachable from here.

    ``q`` must have been checked by the caller (``REGISTRY_LOOKUP_MIN_CHARS`` ..
    ``REGISTRY_LOOKUP_MAX_CHARS`` characters)."""
    text = " ".join(q.split())
    acronym = normalize_acronym(text)
    cnpj = normalize_cnpj(text)
    match = Q(acronym__istartswith=acronym) | Q(legal_name__icontains=text)
    if cnpj.isalnum() and len(cnpj) >= REGISTRY_LOOKUP_MIN_CHARS:
        match |= Q(cnpj__startswith=cnpj)
    rank = Case(
        When(acronym=acronym, then=Value(0)),
        When(acronym__istartswith=acronym, then=Value(1)),
        When(cnpj__startswith=cnpj, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    rows = (
        Agent.objects.filter(match, is_active=True)
        .annotate(match_rank=rank)
        .order_by("match_rank", "acronym")
        .values_list(*REGISTRY_LOOKUP_FIELDS)[:limit]
    )
    return [dict(zip(REGISTRY_LOOKUP_FIELDS, row, strict=True)) for row in rows]
