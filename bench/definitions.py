"""The definition pipeline's speed: validate + compile shop.yaml, push it to a new tenant
until it is live, and plan a one-field change against a 40-entity definition.

    python bench/definitions.py [--repeat 50]

Targets (issue 3): validate + compile < 20 ms; push to live < 300 ms; plan < 50 ms.
Baselines in the same run: YAML parsing alone (the floor under validation), running the
push's DDL by hand in one transaction (the floor under a push), and building the table
model alone (the floor under planning).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _common import ROOT, bench_database, timed


def forty_entities(extra_field: bool = False) -> str:
    lines = ["version: 1", "name: big", "entities:"]
    for i in range(40):
        lines.append(f"  E{i}:")
        lines.append("    fields:")
        lines.append("      name: {type: string, required: true, max_length: 120}")
        lines.append("      amount: {type: decimal, min: 0, default: 0}")
        lines.append("      state: {type: enum, values: [a, b, c], default: a}")
        lines.append("      note: {type: text}")
        if i:
            lines.append(f"      parent: {{type: ref, to: E{i - 1}, on_delete: cascade, related_name: children{i}}}")
        if extra_field and i == 20:
            lines.append("      added: {type: integer}")
        lines.append("    access:")
        lines.append("      read: \"auth != null\"")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    with bench_database("plinth_bench_defs"):
        run(args)
    return 0


def run(args) -> None:
    import yaml
    from django.db import connection, transaction

    from runtime.compile import compile_definition
    from runtime.definition import load_definition
    from runtime.migrations import apply_migration, in_tenant_schema, plan_migration
    from runtime.migrations.tables import tables_of
    from tenants import services
    from tenants.definitions import definition_push
    from tenants.models import User

    shop = (ROOT / "examples" / "shop.yaml").read_text()
    owner = User.objects.create_user("bench@example.com", "bench-password-123")
    actor = services.Actor(owner)

    compile_times = timed(lambda: compile_definition(load_definition(shop)), args.repeat)
    parse_times = timed(lambda: yaml.safe_load(shop), args.repeat)

    tenants = [services.tenant_create(owner=owner, name=f"push {i}")[0] for i in range(2 * args.repeat // 5 or 1)]
    push_times = []
    ddl_times = []
    plan = plan_migration(None, load_definition(shop))
    for i, tenant in enumerate(tenants):
        if i % 2 == 0:
            started = time.perf_counter()
            result = definition_push(tenant=tenant, source=shop, content_type="application/yaml", actor=actor)
            push_times.append(time.perf_counter() - started)
            assert result.status == "applied", result.errors
        else:
            started = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cur, in_tenant_schema(cur, tenant.id):
                apply_migration(cur, plan)
            ddl_times.append(time.perf_counter() - started)

    big, big_changed = load_definition(forty_entities()), load_definition(forty_entities(extra_field=True))
    plan_times = timed(lambda: plan_migration(big, big_changed), args.repeat)
    assert [c.op for c in plan_migration(big, big_changed).changes] == ["add_field"]
    tables_times = timed(lambda: (tables_of(big), tables_of(big_changed)), args.repeat)

    ms = lambda v: statistics.median(v) * 1000  # noqa: E731
    rows = [
        ("validate + compile shop.yaml", ms(compile_times), ms(parse_times), 20, "YAML parse only"),
        ("push shop.yaml to a new tenant, live", ms(push_times), ms(ddl_times), 300, "its DDL by hand"),
        ("plan one field, 40 entities", ms(plan_times), ms(tables_times), 50, "table model only"),
    ]
    print(f"\ndefinitions: medians of {args.repeat} runs ({len(push_times)} pushes)")
    print(f"{'measure':<40} {'ms':>8} {'baseline':>9} {'ratio':>7} {'target':>7}  baseline")
    for name, value, baseline, target, label in rows:
        flag = "ok" if value < target else "MISSED"
        print(f"{name:<40} {value:>8.2f} {baseline:>9.2f} {value / baseline:>7.1f} {target:>5} {flag:>3}  {label}")

    for tenant in tenants:
        services.tenant_delete(tenant=tenant, actor=actor)

if __name__ == "__main__":
    sys.exit(main())
