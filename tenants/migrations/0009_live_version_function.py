"""`plinth_jobs.live_version(tenant)`: the tenant's live definition version as committed
when it is called, for the engine's claims (runtime/jobs/engine.py, `_CLAIM`).

A claim tries the tenant's push lock (alignment.py) and records the live version in one
statement. Read by a subquery, that version came from the statement's snapshot, taken
before the lock was tried: a push that committed in between (releasing its lock) was not
seen, and the run was claimed, and its steps run, under the version the push had replaced.
A VOLATILE function takes a snapshot of its own for each query it runs (in READ COMMITTED),
so called after the lock was granted it sees every push that has released it."""

from django.db import migrations

FORWARD = [
    "CREATE FUNCTION plinth_jobs.live_version(tenant text) RETURNS integer"
    " LANGUAGE plpgsql VOLATILE AS $$"
    " BEGIN RETURN (SELECT max(v.number) FROM tenants_definitionversion v WHERE v.tenant_id = tenant); END $$",
]
BACKWARD = ["DROP FUNCTION plinth_jobs.live_version(text)"]


class Migration(migrations.Migration):
    dependencies = [("tenants", "0008_run_version")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD, elidable=False)]
