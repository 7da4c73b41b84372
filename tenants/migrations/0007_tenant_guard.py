"""`plinth_api.tenant_guard`: what the runtime checks, inside each request's own first
message, instead of looking the tenant up on a connection of its own (runtime/api/context.py,
"Remembered facts").

The runtime role may not read the control-plane tables (`public` is closed); this one
function, run with its owner's rights, tells it whether the facts a worker process remembers
about a tenant and a key still hold: the tenant with that slug has that id, is active, has
that live definition version and signing secret, and the key (by its hash) is a live key of
that kind. If not, it raises SQLSTATE PLT01, which aborts the transaction it begins, before
the request's statements run. Only the runtime role may call it; tenant roles cannot even
see its schema.
"""

from django.conf import settings
from django.db import migrations
from psycopg import sql

GUARD_SQL = """
CREATE FUNCTION plinth_api.tenant_guard(
    p_slug text, p_key_hash text, p_tenant text, p_version integer, p_kind text, p_secret bytea)
RETURNS void LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = {schema}, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM tenants_tenant t
        WHERE t.slug = p_slug AND t.id = p_tenant AND t.status = 'active' AND t.auth_secret = p_secret
          AND (SELECT max(v.number) FROM tenants_definitionversion v WHERE v.tenant_id = t.id)
              IS NOT DISTINCT FROM p_version
          AND (SELECT k.kind FROM tenants_apikey k
               WHERE k.tenant_id = t.id AND k.key_hash = p_key_hash AND k.revoked_at IS NULL)
              IS NOT DISTINCT FROM p_kind)
    THEN
        RAISE EXCEPTION 'the tenant''s facts changed' USING ERRCODE = 'PLT01';
    END IF;
END
$$
"""


def forwards(apps, schema_editor):
    runtime = sql.Identifier(settings.PLINTH_RUNTIME_ROLE)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
        cursor.execute("CREATE SCHEMA plinth_api")
        cursor.execute("REVOKE ALL ON SCHEMA plinth_api FROM PUBLIC")
        cursor.execute(sql.SQL(GUARD_SQL).format(schema=sql.Identifier(schema)))
        cursor.execute("REVOKE ALL ON FUNCTION plinth_api.tenant_guard(text, text, text, integer, text, bytea)"
                       " FROM PUBLIC")
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA plinth_api TO {}").format(runtime))
        cursor.execute(sql.SQL("GRANT EXECUTE ON FUNCTION plinth_api.tenant_guard(text, text, text, integer, text,"
                               " bytea) TO {}").format(runtime))


def backwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA IF EXISTS plinth_api CASCADE")


class Migration(migrations.Migration):
    dependencies = [("tenants", "0006_secrets_ai")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
