"""The runtime's login role and a closed `public` schema (see tenants/provisioning.py)."""

from django.db import migrations


def forwards(apps, schema_editor):
    from tenants.provisioning import ensure_runtime_role

    with schema_editor.connection.cursor() as cursor:
        ensure_runtime_role(cursor)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
