"""`plinth_jobs.live_version(tenant)`: the tenant's live definition version as committed
when it is called, for the engine's claims (runtime/jobs/engine.py, `_CLAIM`).

A claim tries the tenant's push lock (alignment.py) and records the live version in one
statement. Read by a subquery, that version came from the statement's snapshot, taken
before the lock was tried: a push that committed in between (releasing its lock) was not
seen, and the run was claimed, and its steps run, under the version the push had replaced.
A VOLATILE function takes a snapshot of its own for each query it runs under READ
COMMITTED (the control plane's isolation level; under REPEATABLE READ it would reuse the
transaction's), so called after the lock was granted it sees every push that released it.

Its search path is fixed, as the guard's is (0007), and only its owner (the control plane)
may call it.
"""

from django.db import migrations
from psycopg import sql

FUNCTION_SQL = """
CREATE FUNCTION plinth_jobs.live_version(p_tenant text) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = {schema}, pg_temp
AS $$
BEGIN
    RETURN (SELECT max(v.number) FROM tenants_definitionversion v WHERE v.tenant_id = p_tenant);
END
$$
"""


def forwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
        cursor.execute(sql.SQL(FUNCTION_SQL).format(schema=sql.Identifier(schema)))
        cursor.execute("REVOKE ALL ON FUNCTION plinth_jobs.live_version(text) FROM PUBLIC")


def backwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DROP FUNCTION plinth_jobs.live_version(text)")


class Migration(migrations.Migration):
    dependencies = [("tenants", "0008_run_version")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
