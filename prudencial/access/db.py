"""Database privileges of the access audit (PostgreSQL): INSERT and SELECT only.

The triggers (``AuditEvent.Meta.triggers``) refuse UPDATE and DELETE for everyone, but a
session may set ``pgtrigger.ignore`` and the table's owner may disable triggers; so the
application's role also loses the UPDATE, DELETE and TRUNCATE privileges on the table. Superusers
are beyond privileges: the application must not connect as one in production.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

TABLE = "access_auditevent"
REVOKED = "UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"


def restrict_audit_privileges(connection, roles: Iterable[str] = ()) -> list[str]:
    """Revoke the writing privileges from PUBLIC, the current role (unless superuser, where it
    means nothing) and ``roles``; grant ``roles`` INSERT and SELECT. Returns the roles touched."""
    if connection.vendor != "postgresql":
        return []
    table = sql.Identifier(TABLE)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        current, is_superuser = cursor.fetchone()
        cursor.execute(sql.SQL(f"REVOKE {REVOKED} ON TABLE {{}} FROM PUBLIC").format(table))
        touched = [] if is_superuser else [current]
        for role in [*touched, *roles]:
            cursor.execute(
                sql.SQL(f"REVOKE {REVOKED} ON TABLE {{}} FROM {{}}").format(
                    table, sql.Identifier(role)
                )
            )
        for role in roles:
            cursor.execute(
                sql.SQL("GRANT SELECT, INSERT ON TABLE {} TO {}").format(
                    table, sql.Identifier(role)
                )
            )
    return [*touched, *roles]
