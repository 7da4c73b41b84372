"""Pushing a definition to a tenant: the one service behind the admin API, the console, the
management command and the CLI.

All or nothing: under a lock on the tenant row, the new definition is validated, planned
against the live one (row counts read in the same transaction), and either refused, or
applied together with its version row and audit event. A dry run, a refusal or any
failure rolls the transaction back: the schema and the live version are untouched. Every
push, applied or not, is recorded in the control-plane audit log (in its own transaction
when the push itself rolled back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import psycopg
from django.db import DatabaseError, connection, transaction

from runtime.compile import compile_definition
from runtime.definition import load_definition, validate_definition
from runtime.definition.model import Definition, DefinitionError, DefinitionInvalid
from runtime.migrations import apply_migration, in_tenant_schema, plan_migration
from runtime.jobs.alignment import hold_runs_for_push, settle_runs
from runtime.jobs.schedules import sync_schedules
from runtime.jobs.wake import wake_runs
from tenants.models import DefinitionVersion, Tenant
from tenants.services import Actor, audit

MAX_SOURCE_BYTES = 1_000_000


@dataclass
class PushResult:
    status: str                      # applied | unchanged | planned | invalid | destructive | failed
    version: int | None = None
    plan: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        return {"applied": 200, "unchanged": 200, "planned": 200, "invalid": 422, "destructive": 409, "failed": 409}[
            self.status
        ]

    def as_dict(self) -> dict:
        body: dict = {"status": self.status, "version": self.version, "plan": self.plan}
        if self.errors:
            body["errors"] = self.errors
        return body


class _Rollback(Exception):
    def __init__(self, result: PushResult):
        self.result = result


def live_version(tenant: Tenant) -> DefinitionVersion | None:
    return DefinitionVersion.objects.filter(tenant=tenant).order_by("-number").first()


def live_definition(tenant: Tenant) -> tuple[DefinitionVersion | None, Definition | None]:
    version = live_version(tenant)
    return version, (validate_definition(version.definition) if version else None)


def definition_push(
    *,
    tenant: Tenant,
    source: str | bytes,
    content_type: str | None = None,
    dry_run: bool = False,
    allow_destructive: bool = False,
    actor: Actor,
) -> PushResult:
    result = _push(tenant, source, content_type, dry_run, allow_destructive, actor)
    if result.status != "applied":  # applied pushes were audited inside their transaction
        _audit_push(actor, tenant, result, dry_run, allow_destructive)
    return result


def _push(tenant, source, content_type, dry_run, allow_destructive, actor) -> PushResult:
    if isinstance(source, bytes):
        if len(source) > MAX_SOURCE_BYTES:
            return _invalid("parse.too_large", f"A definition is at most {MAX_SOURCE_BYTES} bytes.")
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError:
            return _invalid("parse.encoding", "A definition must be UTF-8 text.")
    try:
        new = load_definition(source, content_type)
        # what the runtime will serve must compile now, not fail on the first request
        compile_definition(new)
    except DefinitionInvalid as exc:
        return PushResult("invalid", errors=[e.as_dict() for e in exc.errors])
    try:
        with transaction.atomic():
            locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
            version, old = live_definition(locked)
            if version is not None and version.definition == new.source:
                return PushResult("unchanged", version=version.number)
            with connection.cursor() as cur:
                with in_tenant_schema(cur, locked.id):
                    plan = plan_migration(old, new, probe=_probe(cur))
                    if plan.errors:
                        raise _Rollback(PushResult("invalid", plan=plan.as_list(), errors=[e.as_dict() for e in plan.errors]))
                    if plan.destructive and not allow_destructive:
                        raise _Rollback(PushResult("destructive", plan=plan.as_list(), errors=_destructive_errors(plan)))
                    if dry_run:
                        _settle_runs(cur, locked.id, old, new, plan, lock=False)
                        raise _Rollback(PushResult("planned", version=version.number if version else None, plan=plan.as_list()))
                    hold_runs_for_push(cur, locked.id)    # no run is claimed until this push ends
                    apply_migration(cur, plan)
                    # after the DDL (which may wait for a worker's step), so the push never
                    # holds a run a worker waits for while it waits for that worker
                    _settle_runs(cur, locked.id, old, new, plan, lock=True)
            number = (version.number + 1) if version else 1
            DefinitionVersion.objects.create(
                tenant=locked,
                number=number,
                definition=new.source,
                source=source,
                content_type=_normal_content_type(content_type, source),
                plan=plan.as_list(),
                author=actor.user,
                author_email=actor.user.email if actor.user else "",
            )
            sync_schedules(locked.id, new)
            result = PushResult("applied", version=number, plan=plan.as_list())
            _audit_push(actor, locked, result, dry_run, allow_destructive)
            return result
    except _Rollback as rollback:
        return rollback.result
    except (DatabaseError, psycopg.Error) as exc:
        # The plan passed every check but Postgres refused a statement (a lock timeout, a
        # row that changed since it was counted): nothing was applied.
        cause = exc.__cause__ if isinstance(exc.__cause__, psycopg.Error) else exc
        message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return PushResult("failed", errors=[{"code": "migration.failed", "path": "", "message": f"The migration failed and nothing was changed: {message}"}])


def _settle_runs(cur, tenant_id, old, new, plan, *, lock: bool) -> None:
    """409 (`failed`, nothing changed) if the push would put runs in progress out of step
    with their history; else, with `lock`, runs of removed jobs and workflows end and
    running runs of changed ones are taken back, woken once the push commits
    (runtime/jobs/alignment.py)."""
    settled = settle_runs(cur, tenant_id, old, new, lock=lock)
    if settled.errors:
        raise _Rollback(PushResult("failed", plan=plan.as_list(), errors=settled.errors))
    if settled.resumed:
        resumed = settled.resumed
        transaction.on_commit(lambda: wake_runs(resumed))


def _probe(cursor):
    def count(query: str) -> int:
        cursor.execute(query)
        return int(cursor.fetchone()[0])

    return count


def _invalid(code: str, message: str) -> PushResult:
    return PushResult("invalid", errors=[DefinitionError(code, "", message).as_dict()])


def _destructive_errors(plan) -> list[dict]:
    return [
        {
            "code": "migration.destructive",
            "path": change.path,
            "message": f"{change.description} ({change.rows_affected or 0} rows affected): push with allow_destructive to apply",
        }
        for change in plan.destructive
    ]


def _normal_content_type(content_type: str | None, source: str) -> str:
    if content_type and "json" in content_type:
        return "application/json"
    if not content_type and source.lstrip().startswith("{"):
        return "application/json"
    return "application/yaml"


def _audit_push(actor: Actor, tenant: Tenant, result: PushResult, dry_run: bool, allow_destructive: bool) -> None:
    audit(
        actor,
        "definition.push",
        tenant,
        status=result.status,
        version=result.version,
        dry_run=dry_run,
        allow_destructive=allow_destructive,
        changes=len(result.plan),
        errors=[e["code"] for e in result.errors][:20],
    )


def version_diff(tenant: Tenant, a: int, b: int) -> str:
    """A unified diff between two versions' documents (normalised to YAML so that a JSON
    push and a YAML push of the same tree compare equal)."""
    import difflib

    import yaml

    versions = {v.number: v for v in DefinitionVersion.objects.filter(tenant=tenant, number__in=[a, b])}
    if a not in versions or b not in versions:
        raise KeyError("no such version")

    def text(v):
        return yaml.safe_dump(json.loads(json.dumps(v.definition)), sort_keys=False, allow_unicode=True).splitlines()

    return "\n".join(difflib.unified_diff(text(versions[a]), text(versions[b]), f"v{a}", f"v{b}", lineterm=""))
