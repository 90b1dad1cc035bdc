"""API tokens: create (the key is returned once), list, revoke; and the lookup used by the
authentication class. Only the SHA-256 digest of a key is stored: a key is 256 random bits, so
a fast hash is enough (nobody can search that space), and the lookup is one indexed query."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from prudencial.access import audit
from prudencial.access.models import AccessToken, AuditKind


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def default_lifetime() -> timedelta:
    return settings.ACCESS_TOKEN_LIFETIME


def token_list(*, user) -> QuerySet[AccessToken]:
    """The owner's tokens, newest first (active, expired and revoked)."""
    return AccessToken.objects.filter(user=user).order_by("-created_at", "-id")


@transaction.atomic
def token_create(
    *, user, name: str = "", lifetime: timedelta | None = None, ip_address: str = ""
) -> tuple[AccessToken, str]:
    """A new token for ``user``; returns the row and the key (never stored, shown only now).

    Refused past ACCESS_TOKEN_LIMIT_PER_USER tokens in force: revoke one first."""
    now = timezone.now()
    lifetime = lifetime or default_lifetime()
    in_force = AccessToken.objects.filter(user=user, revoked_at=None, expires_at__gt=now)
    limit = settings.ACCESS_TOKEN_LIMIT_PER_USER
    if in_force.count() >= limit:
        raise ValidationError(
            {
                "name": _(
                    "Você já tem %(limit)s tokens em vigor, o máximo: revogue um em "
                    "DELETE /api/v1/auth/tokens/<id>/ antes de criar outro."
                )
                % {"limit": limit}
            },
            code="token_limit",
        )
    key = secrets.token_urlsafe(32)
    token = AccessToken.objects.create(
        user=user,
        name=name[:100],
        prefix=key[:8],
        digest=digest(key),
        created_at=now,
        expires_at=now + lifetime,
    )
    audit.record(
        AuditKind.TOKEN_CREATED,
        actor=user,
        ip_address=ip_address,
        obj=token,
        detail={"expires_at": token.expires_at.isoformat(), "name": token.name},
    )
    return token, key


@transaction.atomic
def token_revoke(*, token: AccessToken, by, ip_address: str = "") -> AccessToken:
    """End a token now (idempotent: revoking a revoked token changes nothing)."""
    token = AccessToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.revoked_by = by
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit.record(
        AuditKind.TOKEN_REVOKED,
        actor=by,
        ip_address=ip_address,
        obj=token,
        detail={"owner": token.user.get_username()},
    )
    return token


def token_for_key(key: str) -> AccessToken | None:
    return AccessToken.objects.select_related("user").filter(digest=digest(key)).first()
