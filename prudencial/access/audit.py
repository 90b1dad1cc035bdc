"""The access audit's one writer and its verifier.

Every event goes through :func:`record`: under a lock that serializes writers (a transaction-level
PostgreSQL advisory lock; SQLite serializes writes itself, and ``seq`` being the primary key
stops two writers from both taking the same place), it reads the chain's head, numbers the new
event ``head + 1`` and hashes it over its canonical fields and the head's hash.

:func:`canonical` is the one definition of what is hashed; :func:`verify_chain` recomputes the
chain from the first event and returns the first one that does not match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from prudencial.access.models import AuditEvent

GENESIS = "0" * 64
# Any constant distinct from other advisory locks of this database ("PMPAUDIT" in ASCII).
ADVISORY_LOCK_KEY = 0x504D504155444954 & 0x7FFFFFFFFFFFFFFF
# The fields a hash covers, in order. Changing this list invalidates every stored hash.
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "kind",
    "actor_id",
    "actor_username",
    "username",
    "ip_address",
    "object_type",
    "object_id",
    "object_repr",
    "message",
    "detail",
    "prev_hash",
)


def _value(name: str, value: Any) -> Any:
    if name == "occurred_at":
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def canonical(values: dict[str, Any]) -> bytes:
    """The bytes hashed for one event: a JSON array of HASHED_FIELDS' values, sorted keys in
    ``detail``, no whitespace, UTF-8."""
    return json.dumps(
        [_value(name, values[name]) for name in HASHED_FIELDS],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def event_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(values)).hexdigest()


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])


def _clip(text: Any, length: int) -> str:
    return str(text or "")[:length]


def event(
    kind: str,
    *,
    actor=None,
    username: str = "",
    ip_address: str = "",
    obj=None,
    object_type: str = "",
    object_id: Any = "",
    object_repr: str = "",
    message: str = "",
    detail: dict | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """One event's values, not yet numbered nor hashed (see :func:`append`)."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
        object_repr = object_repr or str(obj)
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    return {
        "occurred_at": occurred_at or timezone.now(),
        "kind": str(kind),
        "actor_id": actor_id,
        "actor_username": _clip(actor.get_username() if actor_id else "", 150),
        "username": _clip(username, 150),
        "ip_address": _clip(ip_address, 45),
        "object_type": _clip(object_type, 100),
        "object_id": _clip(object_id, 64),
        "object_repr": _clip(object_repr, 200),
        "message": str(message or ""),
        # Through JSON once, so what is hashed is what the database gives back.
        "detail": json.loads(json.dumps(detail or {}, default=str)),
    }


def append(events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Number, chain and insert events (one lock, one read of the head, one insert)."""
    if not events:
        return []
    with transaction.atomic():
        _lock_chain()
        head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev = head if head else (0, GENESIS)
        rows = []
        for values in events:
            seq += 1
            values = {**values, "seq": seq, "prev_hash": prev}
            values["hash"] = prev = event_hash(values)
            rows.append(AuditEvent(**values))
        return AuditEvent.objects.bulk_create(rows)


def record(kind: str, **kwargs: Any) -> AuditEvent:
    """Append one event to the chain (in the caller's transaction, if any); the arguments are
    :func:`event`'s."""
    return append([event(kind, **kwargs)])[0]


@dataclass(frozen=True)
class Break:
    """The first event where the chain does not hold, and why."""

    seq: int
    reason: str


def _rows(batch: int = 2000) -> Iterator[dict[str, Any]]:
    fields = (*HASHED_FIELDS, "hash")
    last = 0
    while True:
        rows = list(AuditEvent.objects.filter(seq__gt=last).order_by("seq").values(*fields)[:batch])
        if not rows:
            return
        yield from rows
        last = rows[-1]["seq"]


def verify_chain(rows: Iterable[dict[str, Any]] | None = None) -> tuple[int, Break | None]:
    """Recompute the chain: (events checked, the first break or None)."""
    expected_prev, expected_seq, count = GENESIS, 1, 0
    for row in _rows() if rows is None else rows:
        if row["seq"] != expected_seq:
            return count, Break(
                expected_seq, f"missing: the chain jumps from {expected_seq - 1} to {row['seq']}"
            )
        if row["prev_hash"] != expected_prev:
            return count, Break(row["seq"], "prev_hash is not the previous event's hash")
        if event_hash(row) != row["hash"]:
            return count, Break(row["seq"], "its fields do not match its hash (altered)")
        expected_prev, expected_seq, count = row["hash"], expected_seq + 1, count + 1
    return count, None
