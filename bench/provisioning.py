"""Tenant provisioning latency, and query latency in one tenant as tenants pile up.

    python bench/provisioning.py [--tenants 5000] [--sample 500]

Runs against its own database (`plinth_bench`, created and dropped) on the server of
DATABASE_URL. Prints, measured in this one run:

- `tenant_create` (row, owner, keys, role, schema, audit: the whole service) p50/p95 over
  the first --sample tenants, beside a baseline of the bare DDL (CREATE ROLE, GRANT,
  CREATE SCHEMA in one transaction) timed the same way;
- a query in one tenant (transaction, role switch, primary-key lookup) when it is the only
  tenant, and again once --tenants exist: the ratio is what many tenants cost a request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _common import bench_database, pct


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=5000)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()

    with bench_database("plinth_bench"):
        run(args)
    return 0


def run(args) -> None:
    from django.db import connection, transaction
    from psycopg import sql

    from runtime.db import tenant_transaction
    from tenants import services
    from tenants.models import Tenant, User, new_tenant_id

    owner = User.objects.create_user("bench@example.com", "bench-password-123")
    made: list = []

    def create(i: int) -> float:
        started = time.perf_counter()
        tenant, _ = services.tenant_create(owner=owner, name=f"Tenant {i}", slug=f"tenant-{i}")
        made.append(tenant)
        return time.perf_counter() - started

    def bare_ddl() -> float:
        name = sql.Identifier(f"t_{new_tenant_id()}")
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(name))
            cur.execute(sql.SQL("GRANT {} TO plinth_runtime").format(name))
            cur.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(name, name))
        elapsed = time.perf_counter() - started
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(name))
            cur.execute(sql.SQL("DROP ROLE {}").format(name))
        return elapsed

    def query_latencies(tenant) -> list[float]:
        out = []
        for i in range(args.queries):
            started = time.perf_counter()
            with tenant_transaction(tenant.id, {"sub": "bench"}) as conn:
                conn.execute("SELECT body FROM notes WHERE id = %s", [i % 1000 + 1]).fetchone()
            out.append(time.perf_counter() - started)
        return out

    # the tenant we query, with a table of 1,000 rows
    first_time = create(0)
    probe = made[0]
    with tenant_transaction(probe.id) as conn:
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 1000) g")
    query_latencies(probe)  # warm the pool and caches

    create_times = [first_time]
    ddl_times = []
    progress_every = max(1, args.tenants // 10)
    for i in range(1, args.tenants):
        elapsed = create(i)
        if i < args.sample:
            create_times.append(elapsed)
            ddl_times.append(bare_ddl())
        if i % progress_every == 0:
            print(f"  ... {i} tenants", file=sys.stderr, flush=True)
    many = query_latencies(probe)

    print("cleaning up ...", file=sys.stderr)
    for tenant in Tenant.objects.exclude(pk=probe.pk):
        services.tenant_delete(tenant=tenant, actor=services.Actor(None))
    # The lone-tenant baseline is taken again now, warm, with the others gone: measuring it
    # only first (cold) would flatter the many-tenants figure.
    alone = query_latencies(probe)

    ms = lambda v: v * 1000  # noqa: E731
    rows = [
        ("tenant_create p50 (ms)", ms(statistics.median(create_times)), ms(statistics.median(ddl_times))),
        ("tenant_create p95 (ms)", ms(pct(create_times, 95)), ms(pct(ddl_times, 95))),
        (f"query p50 with {args.tenants} tenants (ms)", ms(statistics.median(many)), ms(statistics.median(alone))),
        (f"query p95 with {args.tenants} tenants (ms)", ms(pct(many, 95)), ms(pct(alone, 95))),
    ]
    print(f"\nprovisioning: {len(create_times)} creates sampled, {args.tenants} tenants, {args.queries} queries each side")
    print(f"{'measure':<40} {'plinth':>10} {'baseline':>10} {'ratio':>7}   baseline")
    labels = ["bare DDL", "bare DDL", "1 tenant", "1 tenant"]
    for (name, value, baseline), label in zip(rows, labels):
        print(f"{name:<40} {value:>10.2f} {baseline:>10.2f} {value / baseline:>7.2f}   {label}")

    services.tenant_delete(tenant=probe, actor=services.Actor(None))

if __name__ == "__main__":
    sys.exit(main())
