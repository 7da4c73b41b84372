"""`runtime.db`: the transaction a tenant's work runs in, begun with the role switch in one
message, and `tenant_statement`, a read in one message with its statement prepared once
per pooled connection."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from runtime import db
from runtime.db import tenant_statement, tenant_transaction

# (a literal `%`, doubled, as psycopg's placeholders want it)
QUERY = ("SELECT current_user::text, current_setting('search_path'), current_setting('request.jwt.claims', true),"
         " (SELECT string_agg(body, ',' ORDER BY id) FROM notes WHERE body <> %(skip)s AND body NOT LIKE '%%zz%%'), %(skip)s")


@pytest.fixture
def two_tenants(committed_tenants, alice, bob):
    a, _ = committed_tenants(alice, "Tenant A")
    b, _ = committed_tenants(bob, "Tenant B")
    for tenant, secret in ((a, "a-secret"), (b, "b-secret")):
        with tenant_transaction(tenant.id) as conn:
            conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
            conn.execute("INSERT INTO notes (body) VALUES (%s), ('50%% off')", [secret])
    return a, b


def _leftovers() -> tuple:
    with db.runtime_pool().connection() as conn:
        return conn.execute("SELECT current_user::text, current_setting('request.jwt.claims', true),"
                            " current_setting('statement_timeout'), pg_current_xact_id_if_assigned()").fetchone()


def test_a_statement_runs_under_the_tenant_role_and_leaves_nothing_behind(two_tenants):
    a, b = two_tenants
    for _ in range(3):   # prepared on first use, executed after
        assert tenant_statement(a.id, {"sub": "u1"}, QUERY, {"skip": "x"}) == (
            a.schema, a.schema, '{"sub":"u1"}', "a-secret,50% off", "x")
        # the same text for another tenant reads the other tenant's table
        assert tenant_statement(b.id, {"sub": "u2"}, QUERY, {"skip": "b-secret"})[:4] == (
            b.schema, b.schema, '{"sub":"u2"}', "50% off")
    assert _leftovers()[:2] == ("plinth_runtime", "")


def test_values_are_bound_as_values(two_tenants):
    a, _ = two_tenants
    nasty = "x'); DROP TABLE notes; --"
    assert tenant_statement(a.id, {"sub": "o'brien"}, QUERY, {"skip": nasty})[2:] == (
        '{"sub":"o\'brien"}', "a-secret,50% off", nasty)
    with tenant_transaction(a.id) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 2


def test_a_failing_statement_rolls_back_and_the_connection_stays_usable(two_tenants):
    a, _ = two_tenants
    bad = "SELECT CAST(%(v)s AS uuid)"
    for _ in range(2):
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            tenant_statement(a.id, {}, bad, {"v": "not-a-uuid"})
    assert _leftovers() == ("plinth_runtime", "", "0", None)
    assert tenant_statement(a.id, {}, bad, {"v": "a5b6a2b4-7a4f-4b36-9a11-9e9b4c3f1f00"}) is not None


@pytest.fixture
def one_connection(monkeypatch):
    """A pool of one connection, so that every call below uses the same one."""
    pool = ConnectionPool(db.runtime_conninfo(), min_size=1, max_size=1, open=True, kwargs={"autocommit": True},
                          connection_class=db.RuntimeConnection)
    monkeypatch.setattr(db, "runtime_pool", lambda: pool)
    yield pool
    pool.close()


def test_prepared_statements_lost_by_the_connection_are_prepared_again(two_tenants, one_connection):
    a, _ = two_tenants
    assert tenant_statement(a.id, {}, QUERY, {"skip": "x"})[3] == "a-secret,50% off"
    with db.runtime_pool().connection() as conn:
        conn.execute("DEALLOCATE ALL")       # as psycopg did after any rollback
    assert tenant_statement(a.id, {}, QUERY, {"skip": "x"})[3] == "a-secret,50% off"
    with db.runtime_pool().connection() as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM pg_prepared_statements").fetchall()]
        assert sorted(db._reads(conn).values()) == sorted(n for n in names if n.startswith("plinth_r"))


def test_a_transaction_whose_prepared_switch_was_lost_prepares_it_again(two_tenants, one_connection):
    a, _ = two_tenants
    with tenant_transaction(a.id) as conn:
        assert conn.execute("SELECT current_user::text").fetchone() == (f"t_{a.id}",)
    with db.runtime_pool().connection() as conn:
        conn.execute("DEALLOCATE ALL")       # as psycopg did after any rollback
    with tenant_transaction(a.id, {"sub": "x"}) as conn:
        assert conn.execute("SELECT current_user::text, current_setting('request.jwt.claims')").fetchone() == \
            (f"t_{a.id}", '{"sub":"x"}')
    assert _leftovers()[:2] == ("plinth_runtime", "")


def _prepared_names(conn) -> set[str]:
    return {n for (n,) in conn.execute("SELECT name FROM pg_prepared_statements", prepare=False).fetchall()}


PSYCOPG_PREPARES = ("SELECT count(*) FROM notes WHERE id > %s", "SELECT max(body) FROM notes WHERE id > %s")


def _psycopg_prepares(conn) -> set[str]:
    """psycopg prepares a statement it has run `prepare_threshold` times on a connection:
    these two, whose names it answers."""
    for query in PSYCOPG_PREPARES:
        for _ in range(conn.prepare_threshold + 1):
            conn.execute(query, [0])
    return {n for n in _prepared_names(conn) if n.startswith("_pg3_")}


def _count_resyncs(monkeypatch) -> list:
    resyncs: list = []
    resync = db._resync
    monkeypatch.setattr(db, "_resync", lambda conn: (resyncs.append(1), resync(conn))[1])
    return resyncs


def _runtimes_in_line(conn) -> bool:
    """The runtime's list of its prepared statements is exactly what Postgres has."""
    return set(db._reads(conn).values()) == {n for n in _prepared_names(conn) if n.startswith("plinth_r")}


@pytest.mark.parametrize("rollback", ["transaction", "savepoint"])
def test_after_psycopg_deallocates_all_the_runtime_prepares_its_own_again_at_once(two_tenants, one_connection,
                                                                                   monkeypatch, rollback):
    """psycopg sends `DEALLOCATE ALL` after a rollback (a refused write's), or a
    savepoint's, on a connection where it holds prepared statements of its own. That takes
    the runtime's too; the runtime is told, and its next message prepares them again.
    Before, that message met 26000, and the request paid for a resync and the message
    again. A rollback that deallocates nothing leaves the runtime's list as it was."""
    a, _ = two_tenants
    assert tenant_statement(a.id, {}, QUERY, {"skip": "x"})[3] == "a-secret,50% off"
    with pytest.raises(psycopg.errors.DivisionByZero), tenant_transaction(a.id) as conn:
        conn.execute("SELECT 1 / 0")        # psycopg holds none of its own: nothing deallocated
    with db.runtime_pool().connection() as conn:
        assert db._reads(conn) and _runtimes_in_line(conn)
    if rollback == "transaction":
        with pytest.raises(psycopg.errors.DivisionByZero), tenant_transaction(a.id) as conn:
            assert len(_psycopg_prepares(conn)) == 2
            conn.execute("SELECT 1 / 0")
    else:
        with tenant_transaction(a.id) as conn:      # committed
            assert len(_psycopg_prepares(conn)) == 2
            with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
                conn.execute("INSERT INTO notes (id, body) VALUES (1, 'again')")
    with db.runtime_pool().connection() as conn:
        assert _prepared_names(conn) == set() and not db._reads(conn)
    resyncs = _count_resyncs(monkeypatch)
    assert tenant_statement(a.id, {}, QUERY, {"skip": "y"})[3] == "a-secret,50% off"
    with tenant_transaction(a.id, {"sub": "x"}) as conn:
        assert conn.execute("SELECT current_setting('request.jwt.claims')").fetchone() == ('{"sub":"x"}',)
    assert resyncs == []
    with db.runtime_pool().connection() as conn:
        assert db._reads(conn) and _runtimes_in_line(conn)


def test_psycopg_repairs_what_a_failed_pipeline_left(two_tenants, one_connection):
    """A statement psycopg prepares in a pipeline that had already failed is never
    prepared; psycopg repairs its cache at the rollback (left unrepaired, each later run of
    that statement on the connection failed with 26000)."""
    a, _ = two_tenants
    query = PSYCOPG_PREPARES[0]
    with tenant_transaction(a.id) as conn:
        for _ in range(conn.prepare_threshold):
            conn.execute(query, [0])
    with pytest.raises(psycopg.errors.DivisionByZero), tenant_transaction(a.id) as conn:
        with conn.pipeline():
            conn.execute("SELECT 1 / 0")
            conn.execute(query, [0])        # its sixth run: prepared, had the pipeline not failed
    with tenant_transaction(a.id) as conn:
        assert conn.execute(query, [0]).fetchone() == (2,)
        assert conn.execute(query, [0]).fetchone() == (2,)


def test_a_deallocate_all_clears_psycopgs_statements_and_the_runtimes(two_tenants, one_connection, monkeypatch):
    """psycopg forgets its own (or its next use of one would fail); the runtime, told,
    prepares its own again without a failed message first."""
    a, _ = two_tenants
    resyncs = _count_resyncs(monkeypatch)
    assert tenant_statement(a.id, {}, QUERY, {"skip": "x"})[3] == "a-secret,50% off"
    with tenant_transaction(a.id) as conn:
        before = _psycopg_prepares(conn)
    with db.runtime_pool().connection() as conn:
        conn.execute("DEALLOCATE ALL")
        assert _prepared_names(conn) == set()
    with tenant_transaction(a.id) as conn:
        after = _psycopg_prepares(conn)
    assert len(after) == 2 and not after & before
    assert tenant_statement(a.id, {}, QUERY, {"skip": "y"})[3] == "a-secret,50% off"
    assert resyncs == []


def test_a_statement_with_server_side_binding_is_never_prepared_by_psycopg(two_tenants, one_connection):
    """It runs in a pipeline outside a transaction (`_execute_bound`): prepared there by
    psycopg after a failed statement before it (the guard refusing), it would be recorded
    as prepared but not be, with no rollback to repair that."""
    a, _ = two_tenants
    for n in range(8):
        assert tenant_statement(a.id, {}, "SELECT %(a)s + %(b)s", {"a": n, "b": 1}) == (n + 1,)
    with db.runtime_pool().connection() as conn:
        assert not any(name.startswith("_pg3_") for name in _prepared_names(conn)), _prepared_names(conn)


def test_a_connection_keeps_a_bounded_number_of_prepared_reads(two_tenants, one_connection, monkeypatch):
    a, _ = two_tenants
    monkeypatch.setattr(db, "READS_PER_CONNECTION", 3)
    for n in range(6):
        assert tenant_statement(a.id, {}, f"SELECT {n}, %(v)s::int", {"v": n}) == (n, n)
    with db.runtime_pool().connection() as conn:
        count = conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'plinth_r%%'").fetchone()[0]
    assert count <= 3


def test_a_text_postgres_cannot_prepare_runs_with_server_side_binding(two_tenants):
    a, _ = two_tenants
    # untyped, `$1 + $2` is ambiguous: PREPARE refuses; psycopg's typed parameters settle it
    query = "SELECT %(a)s + %(b)s, %(c)s::text"
    for _ in range(2):
        assert tenant_statement(a.id, {}, query, {"a": 2, "b": 3, "c": "x"}) == (5, "x")
    assert db._positional[query] is None
    with pytest.raises(psycopg.errors.UndefinedColumn):     # an error either way is answered as it is
        tenant_statement(a.id, {}, "SELECT nope, %(a)s::int", {"a": 1})


def test_the_statement_timeout_applies_to_the_statement(two_tenants, monkeypatch):
    a, _ = two_tenants
    monkeypatch.setattr(db, "_SWITCH", db._SWITCH.replace(f"'{db.STATEMENT_TIMEOUT}'", "'50ms'"))
    with pytest.raises(psycopg.errors.QueryCanceled):
        tenant_statement(a.id, {}, "SELECT pg_sleep(%(s)s::float8)", {"s": 1})
    assert _leftovers()[:3] == ("plinth_runtime", "", "0")


def test_a_transaction_commits_or_rolls_back_as_a_whole(two_tenants):
    a, _ = two_tenants
    with pytest.raises(RuntimeError):
        with tenant_transaction(a.id) as conn:
            conn.execute("INSERT INTO notes (body) VALUES ('lost')")
            raise RuntimeError
    with tenant_transaction(a.id, {"sub": "u1"}) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.transaction():         # a savepoint
                conn.execute("INSERT INTO notes (id, body) VALUES (1, 'dup')")
        conn.execute("INSERT INTO notes (body) VALUES ('kept')")
        assert conn.execute("SELECT current_user::text").fetchone()[0] == a.schema
    with tenant_transaction(a.id) as conn:
        assert [b for (b,) in conn.execute("SELECT body FROM notes ORDER BY id").fetchall()] == [
            "a-secret", "50% off", "kept"]
    assert _leftovers() == ("plinth_runtime", "", "0", None)
