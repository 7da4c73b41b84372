"""Schema migrations of tenant schemas, generated from definitions (never Django's
migration framework): `plan_migration` diffs two definitions into labelled changes,
`apply_migration` runs them. See docs/definition.md, Migrations."""

from runtime.migrations.apply import apply_migration, in_tenant_schema
from runtime.migrations.plan import ADDITIVE, BACKFILL, DESTRUCTIVE, RENAME, Change, Plan, plan_migration

__all__ = [
    "ADDITIVE", "BACKFILL", "DESTRUCTIVE", "RENAME", "Change", "Plan", "apply_migration", "in_tenant_schema",
    "plan_migration",
]
