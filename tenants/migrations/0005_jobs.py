"""The shared job and workflow tables (runtime/jobs/schema.py)."""

from django.db import migrations

from runtime.jobs.schema import CREATE, DROP


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_tenant_auth_secret")]
    operations = [migrations.RunSQL(CREATE, DROP, elidable=False)]
