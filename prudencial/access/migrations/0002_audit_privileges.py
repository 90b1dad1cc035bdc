"""The application's database roles may only INSERT and SELECT the access audit (PostgreSQL).

Revokes UPDATE, DELETE and TRUNCATE from PUBLIC, from the role running the migration (when it is
not a superuser: the common case where the application migrates its own database) and from the
roles in ACCESS_AUDIT_APP_DB_ROLES, which get INSERT and SELECT. Not reversible on purpose."""

from django.conf import settings
from django.db import migrations


def restrict(apps, schema_editor):
    from prudencial.access.db import restrict_audit_privileges

    restrict_audit_privileges(schema_editor.connection, settings.ACCESS_AUDIT_APP_DB_ROLES)


class Migration(migrations.Migration):
    dependencies = [("access", "0001_initial")]

    operations = [migrations.RunPython(restrict, migrations.RunPython.noop, elidable=False)]
