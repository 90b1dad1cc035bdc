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
from django.db.models import QuerySet
from django.utils import timezone

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


def week_list() -> QuerySet[Week]:
    """Weeks (public to every authenticated user), with their parameters' row."""
    return Week.objects.select_related("parameters")


def week_detail_list() -> QuerySet[Week]:
    """Weeks for a detail view, which shows the parameters' seven buckets too."""
    return week_list().prefetch_related("parameters__buckets")
