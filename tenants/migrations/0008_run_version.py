"""Each run remembers the definition version its worker last claimed it under
(`plinth_jobs.runs.version`): what retrying a dead run compares with the live version
(runtime/jobs/alignment.py, `changed_since_history`). Before, that version was inferred by
comparing the run's last step time (Postgres's clock) with each version's `created_at`
(the control plane's clock, taken before the push committed), which clock skew or a slow
push could get wrong. Runs that may yet be retried (dead ones, and those in progress,
which may end dead without another claim) get the version that inference gives, the best
there is for them; finished ones (most of the table) are left alone, so the update, which
holds the table's lock, is bounded by the others."""

from django.db import migrations

FORWARD = [
    "ALTER TABLE plinth_jobs.runs ADD COLUMN version integer",
    "UPDATE plinth_jobs.runs r SET version = ("
    " SELECT max(v.number) FROM tenants_definitionversion v WHERE v.tenant_id = r.tenant_id"
    " AND v.created_at <= coalesce((SELECT max(s.finished_at) FROM plinth_jobs.steps s WHERE s.run_id = r.id),"
    " r.updated_at)) WHERE r.started_at IS NOT NULL AND r.state NOT IN ('succeeded', 'cancelled')",
]
BACKWARD = ["ALTER TABLE plinth_jobs.runs DROP COLUMN version"]


class Migration(migrations.Migration):
    dependencies = [("tenants", "0007_tenant_guard")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD, elidable=False)]
