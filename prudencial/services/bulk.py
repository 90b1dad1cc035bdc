"""Multi-row UPDATE for the bulk writes of the registry (feed, imports, demo market).

Django's bulk_update writes one ``CASE WHEN id = … THEN …`` per field and row: a statement whose
planning grows with the square of the batch (minutes for 25,000 rows). On PostgreSQL this writes
``UPDATE … FROM (VALUES …)`` instead, one statement per batch, linear; elsewhere (SQLite, the
demo) it falls back to bulk_update in small batches. History rows are the caller's (simple_history's
bulk_history_create), exactly as bulk_update_with_history writes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models

VALUES_BATCH = 2000


def bulk_update_rows(
    model: type[models.Model], objs: Sequence[models.Model], fields: Sequence[str]
) -> None:
    """Write `fields` of every object (found by pk) in as few statements as the batch allows."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objs, fields, batch_size=200)
        return
    table = connection.ops.quote_name(model._meta.db_table)
    pk = model._meta.pk
    columns = [model._meta.get_field(name) for name in fields]
    casts = [f"::{c.db_type(connection)}" for c in columns]
    assignments = ", ".join(
        f"{connection.ops.quote_name(c.column)} = v.{connection.ops.quote_name(c.column)}{cast}"
        for c, cast in zip(columns, casts, strict=True)
    )
    names = ", ".join(connection.ops.quote_name(c.column) for c in [pk, *columns])
    row = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(objs), VALUES_BATCH):
            chunk = objs[start : start + VALUES_BATCH]
            params: list = []
            for obj in chunk:
                params.append(obj.pk)
                params.extend(
                    c.get_db_prep_save(getattr(obj, c.attname), connection) for c in columns
                )
            first = (
                "("
                + ", ".join([f"%s::{pk.db_type(connection)}", *[f"%s{cast}" for cast in casts]])
                + ")"
            )
            values = ", ".join([first, *[row] * (len(chunk) - 1)])
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v({names}) "
                f"WHERE {table}.{connection.ops.quote_name(pk.column)} = "
                f"v.{connection.ops.quote_name(pk.column)}",
                params,
            )
