"""What one insert sends, and when: the anchor lock goes with the INSERT, and for a caller
that writes once and then finishes (the data API) the invariant goes with them too, in one
round trip; the answers keep their order (the rule and the checks before the invariant, even
when evaluating the invariant fails); a later write makes `finish()` evaluate the invariant
again; and the invariant's statement keeps a generic plan (not planned on every insert), as do
an update's of one row."""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal

import pytest
from psycopg import sql

from runtime.api.backends import backend_for
from runtime.api.context import Caller, resolve_tenant
from runtime.api.errors import ApiError
from runtime.api.integrity import WriteSession
from runtime.db import TenantChanged, tenant_transaction
from tenants.provisioning import schema_name
from write_support import CHARGES, backend_with

# Evaluating `heavy` fails (bigint out of range) once a box holds two items.
BOXES = """
version: 1
auth: {roles: [member]}
entities:
  Box:
    fields:
      owner: {type: user, required: true}
      label: {type: string}
    access: {read: "true"}
  Item:
    fields:
      box: {type: ref, to: Box, required: true, related_name: items}
      name: {type: string, required: true}
    checks:
      - name: lowercase
        rule: "record.name == lower(record.name)"
    access:
      read: "true"
      create: "record.box.owner == auth.id"
invariants:
  heavy:
    for: Box
    rule: "record.items.size() * 4611686018427387904 > 0"
"""

# the benchmark's (bench/data_api.py)
TODOS = """
version: 1
auth: {roles: [member]}
entities:
  Project:
    fields:
      owner: {type: user, required: true, default: auth.id}
    access: {read: "record.owner == auth.id", create: "record.owner == auth.id"}
  Todo:
    fields:
      owner: {type: user, required: true, default: auth.id}
      project: {type: ref, to: Project, required: true, related_name: todos}
      title: {type: string, required: true, min_length: 1, max_length: 200}
    checks:
      - name: title_not_shouting
        rule: "record.title != upper(record.title)"
    access:
      read: "record.owner == auth.id"
      create: "record.owner == auth.id && record.project.owner == auth.id"
      update: "record.owner == auth.id"
invariants:
  project_cap:
    for: Project
    rule: "size(record.todos) <= 100000"
"""


class Recording:
    """A connection that notes the statements of each round trip: one statement, or all
    those of one pipeline."""

    def __init__(self, conn):
        self._conn = conn
        self.trips: list[list[str]] = []
        self._pipeline: list[str] | None = None

    def execute(self, query, params=None, **kwargs):
        text = query if isinstance(query, str) else query.as_string(self._conn)
        if self._pipeline is not None:
            self._pipeline.append(text)
        else:
            self.trips.append([text])
        return self._conn.execute(query, params, **kwargs)

    @contextmanager
    def pipeline(self):
        self._pipeline = []
        try:
            with self._conn.pipeline() as pipeline:
                yield pipeline
        finally:
            self.trips.append(self._pipeline)
            self._pipeline = None

    def run_first(self, statements):
        """A deferred opening's: the opening and the statements in one message (a trip that
        starts with "opening"), unless it answers None (nothing sent, or all rolled back)."""
        run_first = getattr(self._conn, "run_first", None)
        if run_first is None:
            return None
        trip = ["opening", *(q if isinstance(q, str) else q.as_string(None) for q, _ in statements)]
        self.trips.append(trip)
        rows = run_first(statements)
        if rows is None:
            trip.append("(undone)")
        return rows

    def __getattr__(self, name):
        return getattr(self._conn, name)


def kinds(trips: list[list[str]]) -> list[list[str]]:
    """Each statement by what it does."""
    def kind(text: str) -> str:
        if text.startswith('SELECT 1 FROM "Account"') and "FOR UPDATE" in text:
            return "lock"
        if text.startswith('WITH _ins AS (INSERT INTO "Charge"'):
            return "insert"
        if text.startswith('SELECT "r".id FROM "Account"'):
            return "invariant"
        if text in ("BEGIN", "opening", "(undone)"):
            return text.lower()
        if text.startswith("SELECT plinth_api.tenant_guard("):
            return "guard"
        if text.startswith("SELECT set_config('search_path'"):
            return "switch"
        return text[:60]
    return [[kind(t) for t in trip] for trip in trips]


def refused_insert(tenant_id, caller, backend, entity: str, row: dict, error, **transaction):
    """An insert, in a data API transaction (its opening deferred), that fails with
    `error`: what was raised, and the statements of each round trip it sent (`kinds`)."""
    trips: list[list[str]] = []
    with pytest.raises(error) as raised, tenant_transaction(tenant_id, caller.db_claims(), deferred=True,
                                                            **transaction) as conn:
        recording = Recording(conn)
        try:
            WriteSession(recording, backend, caller, single_write=True).insert(entity, [row])
        finally:
            trips.extend(kinds(recording.trips))
    return raised, trips


@pytest.fixture
def charges(committed_tenants, alice):
    b = backend_with(committed_tenants, alice, CHARGES, "Charges")
    ann = b.user("ann", "member")
    r = b.as_user("ann").post("Account", {"credit_limit": 100}, prefer="return=representation")
    assert r.status_code == 201, r.body
    account = r.body[0]["id"]
    backend = backend_for(b.tenant.id, resolve_tenant(b.slug).version)
    return b, backend, Caller("member", user_id=ann, email="ann@x.io"), account


@pytest.mark.parametrize("single_write", [True, False])
def test_the_lock_the_insert_and_the_invariant_share_one_round_trip(charges, single_write):
    b, backend, ann, account = charges
    with tenant_transaction(b.tenant.id) as conn:
        recording = Recording(conn)
        session = WriteSession(recording, backend, ann, single_write=single_write)
        session.insert("Charge", [{"account": account, "amount": Decimal(30)}])
        inserted = kinds(recording.trips)
        recording.trips.clear()
        session.finish()
        finished = kinds(recording.trips)
    if single_write:
        assert inserted == [["lock", "insert", "invariant"]]
        assert finished == []            # evaluated already, nothing written since
    else:
        assert inserted == [["lock", "insert"]]
        assert finished == [["invariant"]]
    assert b.sql('SELECT sum(amount) FROM "Charge"') == [(30,)]


def test_the_data_api_refuses_an_insert_breaking_the_invariant_and_keeps_nothing(charges):
    b, _backend, _ann, account = charges
    ann = b.as_user("ann")
    assert ann.post("Charge", {"account": account, "amount": 60}).status_code == 201
    r = ann.post("Charge", {"account": account, "amount": 50})
    assert r.status_code == 409 and "within_credit_limit" in r.body["message"], r.body
    assert b.sql('SELECT count(*), sum(amount) FROM "Charge"') == [(1, 60)]
    assert b.sql("SELECT count(*) FROM _audit WHERE entity = 'Charge'") == [(1,)]


def test_a_write_after_an_evaluated_insert_makes_finish_evaluate_the_invariant_again(charges):
    b, backend, ann, account = charges
    with pytest.raises(ApiError) as raised, tenant_transaction(b.tenant.id) as conn:
        session = WriteSession(conn, backend, ann, single_write=True)
        charge = session.insert("Charge", [{"account": account, "amount": Decimal(60)}])[0].row.id
        # the insert's invariant held (60 <= 100); the update breaks it at the same account
        session.update("Charge", (sql.SQL("r.id = %(c)s::uuid"), {"c": charge}), {"amount": Decimal(160)})
        session.finish()
    assert raised.value.status == 409 and "within_credit_limit" in raised.value.message
    assert b.sql('SELECT count(*) FROM "Charge"') == [(0,)]


def test_the_invariant_statement_keeps_a_generic_plan(charges):
    """`r.id = <one id>`, not `= ANY(<array>)`: Postgres prices an array parameter at ten
    elements, so the prepared ANY form was planned again (a custom plan) on every insert."""
    b, backend, _ann, account = charges
    b.sql('UPDATE "Account" SET credit_limit = 1000')
    with tenant_transaction(b.tenant.id) as conn:
        session = WriteSession(conn, backend, Caller("service"), single_write=True)
        for _ in range(20):
            session.insert("Charge", [{"account": account, "amount": Decimal(1)}])
        plans = conn.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE 'SELECT \"r\".id FROM \"Account\"%'").fetchall()
    assert len(plans) == 1, plans           # prepared (psycopg prepares a statement it repeats)
    generic, custom = plans[0]
    assert generic > 0 and custom <= 5, plans


@pytest.mark.parametrize("statement", [
    pytest.param("SELECT d.denied%", id="the rule and checks"),
    pytest.param('UPDATE "Todo"%', id="the update itself"),
])
def test_an_update_of_one_row_keeps_generic_plans(committed_tenants, alice, statement):
    """The same for `_verify` (after an update, or an insert whose rule reads its own
    entity), and for the UPDATE of one row, `r.id = <id>`, not `= ANY(<array>)`."""
    b = backend_with(committed_tenants, alice, TODOS, "Todos")
    ann = b.user("ann", "member")
    project = b.sql("INSERT INTO \"Project\" (owner) VALUES (%s) RETURNING id::text", [ann])[0][0]
    todo = b.sql("INSERT INTO \"Todo\" (owner, project, title) VALUES (%s, %s, 't') RETURNING id::text",
                 [ann, project])[0][0]
    # rows and statistics like the benchmark's: the planner's choice depends on them
    b.sql("INSERT INTO \"Todo\" (owner, project, title) SELECT %s, %s, 'todo ' || g FROM generate_series(1, 5000) g",
          [ann, project])
    b.sql('ANALYZE "Todo"')
    backend = backend_for(b.tenant.id, resolve_tenant(b.slug).version)
    caller = Caller("member", user_id=ann, email="ann@x.io")
    with tenant_transaction(b.tenant.id, caller.db_claims()) as conn:
        session = WriteSession(conn, backend, caller)
        for n in range(20):
            written = session.update("Todo", (sql.SQL("r.id = %(t)s::uuid"), {"t": todo}), {"title": f"title {n}"})
            assert len(written) == 1
        session.finish()
        plans = conn.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            [statement]).fetchall()
    assert len(plans) == 1, plans
    generic, custom = plans[0]
    assert generic > 0 and custom <= 5, plans


def test_the_rule_and_the_checks_answer_before_an_invariant_that_cannot_be_evaluated(committed_tenants, alice):
    b = backend_with(committed_tenants, alice, BOXES, "Boxes")
    bob = b.user("bob", "member")
    b.user("eve", "member")
    box = b.sql("INSERT INTO \"Box\" (owner, label) VALUES (%s, 'b') RETURNING id::text", [bob])[0][0]
    b.sql("INSERT INTO \"Item\" (box, name) VALUES (%s, 'first')", [box])
    # eve may not add to bob's box: 403, although evaluating `heavy` would fail
    r = b.as_user("eve").post("Item", {"box": box, "name": "second"})
    assert r.status_code == 403 and r.body["code"] == "42501", r.body
    # bob may, but not a name in capitals: 422 naming the check
    r = b.as_user("bob").post("Item", {"box": box, "name": "SECOND"})
    assert r.status_code == 422 and "lowercase" in r.body["message"], r.body
    # and a good item reaches the invariant, whose evaluation fails: nothing is kept
    r = b.as_user("bob").post("Item", {"box": box, "name": "second"})
    assert r.status_code == 400 and r.body["code"] == "22003", r.body
    assert b.sql('SELECT name FROM "Item"') == [("first",)]


def test_the_data_apis_insert_sends_its_transactions_opening_in_the_same_message(charges):
    """With the opening deferred (the data API's writes), BEGIN, the guard and the switch
    lead the insert's statements in one message: two round trips in all, that one and
    COMMIT."""
    b, backend, ann, account = charges
    tenant = resolve_tenant(b.slug)
    guard = (b.slug, "no-key-hash", str(b.tenant.id), tenant.version, "anon", b"")
    audit_sequence = b.sql("SELECT last_value, is_called FROM _audit_id_seq")
    _, refused = refused_insert(b.tenant.id, ann, backend, "Charge", {"account": account, "amount": Decimal(30)},
                                TenantChanged, guard=guard)
    # one round trip, led by the opening; the guard does not hold, so nothing after it ran
    # (a message stops at its first error)
    assert refused == [["opening", "lock", "insert", "invariant"]], refused
    assert b.sql('SELECT count(*) FROM "Charge"') == [(0,)]
    # the INSERT (which writes its audit row) never ran: a sequence is not rolled back
    assert b.sql("SELECT last_value, is_called FROM _audit_id_seq") == audit_sequence

    opened: list[bool] = []
    with tenant_transaction(b.tenant.id, ann.db_claims(), deferred=True, on_open=lambda: opened.append(True)) as conn:
        recording = Recording(conn)
        session = WriteSession(recording, backend, ann, single_write=True)
        assert opened == []                              # nothing sent yet
        session.insert("Charge", [{"account": account, "amount": Decimal(30)}])
        session.finish()
        trips = kinds(recording.trips)
    assert trips == [["opening", "lock", "insert", "invariant"]] and opened == [True]
    assert b.sql('SELECT sum(amount) FROM "Charge"') == [(30,)]


def test_a_deferred_opening_goes_first_on_its_own_before_any_other_statement(charges):
    b, backend, ann, account = charges
    with tenant_transaction(b.tenant.id, ann.db_claims(), deferred=True) as conn:
        # not a pipeline: the opening is sent first, so this runs in the transaction, as the
        # tenant's role, in its schema
        assert conn.execute("SELECT current_user, current_schema(), now() = statement_timestamp()").fetchone() == (
            schema_name(b.tenant.id), schema_name(b.tenant.id), False)
        session = WriteSession(conn, backend, Caller("service"))
        session.update("Account", (sql.SQL("r.id = %(a)s::uuid"), {"a": account}), {"credit_limit": Decimal(7)})
        session.finish()
    assert b.sql('SELECT credit_limit FROM "Account"') == [(7,)]
    # a transaction that ends before sending anything sends nothing (not even its opening:
    # `on_open` is never called) and ends without error
    opened: list[bool] = []
    with tenant_transaction(b.tenant.id, ann.db_claims(), deferred=True, on_open=lambda: opened.append(True)):
        pass
    assert opened == []


def test_a_first_message_that_fails_is_undone_and_sent_again_as_a_pipeline(committed_tenants, alice):
    """A message stops at its first error and answers only that error, not which statement
    raised it. So when the statements sent with the opening fail, they are rolled back and
    sent again in a pipeline, whose answers tell: here the rule (eve may not add to bob's
    box) still answers 403 before the invariant, whose evaluation fails."""
    b = backend_with(committed_tenants, alice, BOXES, "Boxes")
    bob, eve = b.user("bob", "member"), b.user("eve", "member")
    box = b.sql("INSERT INTO \"Box\" (owner, label) VALUES (%s, 'b') RETURNING id::text", [bob])[0][0]
    b.sql("INSERT INTO \"Item\" (box, name) VALUES (%s, 'first')", [box])
    backend = backend_for(b.tenant.id, resolve_tenant(b.slug).version)
    caller = Caller("member", user_id=eve, email="eve@x.io")
    refused, trips = refused_insert(b.tenant.id, caller, backend, "Item", {"box": box, "name": "second"}, ApiError)
    assert refused.value.status == 403, refused.value.message
    assert len(trips) == 2 and trips[0][0] == "opening" and trips[0][-1] == "(undone)", trips
    assert trips[1] == ["begin", "switch", *trips[0][1:-1]], trips      # the same statements
    assert b.sql('SELECT name FROM "Item"') == [("first",)]


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_an_update_or_delete_locks_its_rows_in_the_message_that_opens_the_transaction(charges, operation):
    """The lock of the rows an update or a delete matches is the transaction's first
    statement: it goes with BEGIN and the switch in one message, not in a round trip of its own."""
    b, backend, ann, account = charges
    where = (sql.SQL("r.id = %(a)s::uuid"), {"a": account})
    with tenant_transaction(b.tenant.id, ann.db_claims(), deferred=True) as conn:
        recording = Recording(conn)
        session = WriteSession(recording, backend, Caller("service"), single_write=True)
        if operation == "update":
            assert len(session.update("Account", where, {"credit_limit": Decimal(7)})) == 1
        else:
            assert len(session.delete("Account", where)) == 1
        session.finish()
        trips = recording.trips
    assert trips[0][0] == "opening" and len(trips[0]) == 2 and "FOR UPDATE" in trips[0][1], trips
    expected = [(Decimal(7),)] if operation == "update" else []
    assert b.sql('SELECT credit_limit FROM "Account"') == expected


def test_a_first_message_refused_by_a_constraint_is_not_sent_again(charges):
    """Only the INSERT can break a constraint, and nothing of it answers then: the error is
    the answer, with no second trip (a unique id used twice); the opening counts as run."""
    import psycopg

    b, backend, ann, account = charges
    with tenant_transaction(b.tenant.id, ann.db_claims(), deferred=True) as conn:
        charge = WriteSession(conn, backend, ann, single_write=True).insert(
            "Charge", [{"account": account, "amount": Decimal(1)}])[0].row.id
    opened: list[bool] = []
    _, trips = refused_insert(b.tenant.id, ann, backend, "Charge", {"id": charge, "account": account, "amount": Decimal(1)},
                              psycopg.errors.UniqueViolation, on_open=lambda: opened.append(True))
    assert trips == [["opening", "lock", "insert", "invariant"]], trips
    # the opening ran (and a guard with it would have held): the facts count as checked
    assert opened == [True]
    assert b.sql('SELECT count(*) FROM "Charge"') == [(1,)]


def test_a_first_message_cut_off_by_the_statement_timeout_is_not_sent_again(charges, monkeypatch):
    """A timeout is the answer, whichever statement it struck: sent again, the statements
    would wait as long once more (here for the anchor another transaction holds)."""
    import psycopg

    from runtime import db

    b, backend, ann, account = charges
    monkeypatch.setattr(db, "_SWITCH", db._SWITCH.replace(f"'{db.STATEMENT_TIMEOUT}'", "'200ms'"))
    with tenant_transaction(b.tenant.id) as holder:
        holder.execute('SELECT 1 FROM "Account" WHERE id = %s FOR UPDATE', [account])
        _, trips = refused_insert(b.tenant.id, ann, backend, "Charge", {"account": account, "amount": Decimal(1)},
                                  psycopg.errors.QueryCanceled)
    assert trips == [["opening", "lock", "insert", "invariant"]], trips
    assert b.sql('SELECT count(*) FROM "Charge"') == [(0,)]
