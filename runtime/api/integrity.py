"""The guarantees every write keeps, whoever writes: the data API now, actions, transitions
and jobs later. Access rules, checks, the state machine's field, invariants (anchor rows
locked), the audit trail and the outbox hook, all in the writer's transaction.

    session = WriteSession(conn, backend, caller)
    session.insert("Order", [{"customer": customer_id, "total": Decimal("10")}])
    session.update("Order", where, {"total": Decimal("12")})
    session.finish()      # every invariant of every affected anchor row, then the outbox

Each write runs in this order; the order is what makes the guarantees hold:

1. lock the rows it changes (update, delete: `SELECT ... FOR UPDATE` of the rows the caller
   may change; rows the rules hide are simply not matched, PostgREST-style);
2. lock the invariant anchors those rows reach as they are, and as the new values will make
   them (an Order moving to another Customer reaches both), in id order. A concurrent
   writer touching the same anchor waits here, before either has read what the invariant
   reads: no write skew, and the rule later reads committed rows (READ COMMITTED takes a
   fresh snapshot per statement);
3. write;
4. access after the write (create: the stored row, defaults applied; update: the new row),
   then the entity's checks;
5. lock what the stored rows reach that step 2 could not know (defaults, new ids);
6. audit rows (an insert writes them in its own statement); events for the outbox.

`finish()` evaluates each touched invariant once, for all its anchor rows, so that steps
of one action may pass through a broken state (add a line, then fix the total).

Round trips cost more than these small statements take to run, so statements that need no
answer before the next one are sent together (psycopg's pipeline mode: still one statement
after another, each with its own snapshot): an insert's anchor locks go with the INSERT.
A caller that writes once and then finishes (the data API: `single_write`) also gets the
invariants that insert touches evaluated right behind it, in the same round trip, when the
INSERT itself answers the rule and the checks: their answers (403, 422) still come first,
and `finish()` does not evaluate those anchors again unless another write came after.

The service key skips access rules only: checks, the state machine and invariants hold
for every caller. Errors are `ApiError`s in PostgREST's shape; raising one inside
`tenant_transaction` rolls everything back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Sequence

from psycopg import sql

from runtime.jobs.outbox import Outbox
from runtime.api.errors import ApiError, bad_request, forbidden
from runtime.compile.backend import CompiledBackend, CompiledEntity, CompiledInvariant
from runtime.compile.events import Trigger

SYSTEM_FIELDS = ("id", "created_at", "updated_at")
ALIAS = sql.Identifier("r")
# The row as the audit log and responses see it: every field, not generated columns.
ROW_JSONB = sql.SQL("(to_jsonb({}) - '_search')").format(ALIAS)
ROW_JSON = sql.SQL("{}::text").format(ROW_JSONB)
BATCH = 500  # rows per INSERT: keeps a statement under Postgres's 65535 parameters


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()  # a value meaning "the column's default"

Where = tuple[sql.Composable, Mapping[str, Any]]  # a predicate over alias `r`, its parameters
# `json.loads(text, parse_float=Decimal)` builds a decoder on every call: one, made once
_ROW_DECODER = json.JSONDecoder(parse_float=Decimal)


@dataclass(frozen=True)
class StoredRow:
    """A row as stored: its jsonb text (exact numbers, kept for audit and responses) and
    the same parsed, decimals as `Decimal`."""

    text: str
    data: dict

    @classmethod
    def parse(cls, text: str) -> "StoredRow":
        return cls(text, _ROW_DECODER.decode(text))

    @property
    def id(self) -> str:
        return self.data["id"]


@dataclass(frozen=True)
class Written:
    entity: str
    operation: str                  # insert | update | delete
    before: StoredRow | None
    after: StoredRow | None

    @property
    def row(self) -> StoredRow:
        return self.after or self.before  # type: ignore[return-value]

    @property
    def event(self) -> str:
        return f"{self.entity}.{ {'insert': 'created', 'update': 'updated', 'delete': 'deleted'}[self.operation] }"

    def changed(self) -> list[str] | None:
        """Fields this write set: all non-null ones of an insert, the differing ones of an
        update (`updated_at` moves on every update, so it says nothing), none for a delete."""
        if self.operation == "delete":
            return None
        after = self.after.data  # type: ignore[union-attr]
        if self.operation == "insert":
            return [k for k, v in after.items() if v is not None and k not in SYSTEM_FIELDS]
        before = self.before.data  # type: ignore[union-attr]
        return [k for k, v in after.items() if k != "updated_at" and before.get(k) != v]


def actor_of(caller) -> tuple[str, str]:
    """(actor_kind, actor_id) for the audit log: a user and their id, the key used, or the
    job or workflow run (`run`, `job:<name>:<run id>`)."""
    if getattr(caller, "label", None):
        return "run", caller.label
    if caller.is_service:
        return "service", "service"
    if getattr(caller, "user_id", None):
        return "user", str(caller.user_id)
    return "anon", "anon"


def record_events(outbox: Outbox, events: Sequence[Written]) -> None:
    """The outbox hook: called once per transaction, before commit, with every write of it.

    Each write emits `<Entity>.created|updated|deleted` (`Written.event`) with the row as
    `record` (the row before a delete). The outbox keeps those that start a job or
    workflow or that a workflow may wait for, and writes them in this same transaction
    (runtime/jobs/outbox.py), so a run exists if and only if its cause committed.
    """
    for w in events:
        outbox.row_event(w.event, w.row.text)


def sql_type(column_type: str) -> str:
    """The column's type without its modifier: a value is cast to `varchar`, `numeric`, and
    the column's own limits then refuse it (a cast to varchar(10) would silently cut it)."""
    return re.sub(r"\(.*\)$", "", column_type)


def _ids_param(ids: Iterable[Any]) -> list[str]:
    return sorted({str(i) for i in ids if i is not None and i is not DEFAULT})


# Statements, rendered once ----------------------------------------------------------------
#
# Composing a statement with psycopg's `sql` module and rendering it costs more than a
# small statement takes to run, so each is rendered once: per entity or invariant and shape
# (the key holds the CompiledEntity or CompiledInvariant, whose compiled rules the text
# contains), or per names only.

_MAX_STATEMENTS = 4096
_STATEMENTS: dict[tuple, tuple[Any, Any]] = {}


def _statement(ent: CompiledEntity | CompiledInvariant, shape: tuple, compose) -> str:
    key = (id(ent),) + shape
    found = _STATEMENTS.get(key)
    if found is None or found[0] is not ent:     # (an id can be reused once its object is gone)
        if len(_STATEMENTS) >= _MAX_STATEMENTS:
            _STATEMENTS.clear()
        found = _STATEMENTS[key] = (ent, compose().as_string(None))
    return found[1]


_NAMED: dict[tuple, str] = {}


def _named_statement(key: tuple, compose) -> str:
    text = _NAMED.get(key)
    if text is None:
        if len(_NAMED) >= _MAX_STATEMENTS:
            _NAMED.clear()
        text = _NAMED[key] = compose().as_string(None)
    return text


def _invariant_query(invariant: CompiledInvariant, ids: list[str] | None, auth) -> tuple[str, dict]:
    """The query answering an anchor row of `invariant` that breaks it (any, LIMIT 1), among
    `ids` (None: every anchor row), and its parameters.

    One anchor (the common case: a write reaching one parent row) is `r.id = <uuid>`, not
    `= ANY(<array>)`: Postgres estimates an array parameter at ten elements, so a generic
    plan of the ANY form looks ten times dearer than a custom plan for one id, and the
    prepared statement would be planned afresh on every execution."""
    shape = "every" if ids is None else "one" if len(ids) == 1 else "some"
    query = _statement(invariant, ("invariant", shape), lambda: sql.SQL(
        "SELECT {}.id FROM {} AS {} WHERE {} AND NOT {} LIMIT 1").format(
        ALIAS, sql.Identifier(invariant.anchor), ALIAS,
        {"every": sql.SQL("true"), "one": sql.SQL("{}.id = %(_id)s::uuid").format(ALIAS),
         "some": sql.SQL("{}.id = ANY(%(_ids)s::uuid[])").format(ALIAS)}[shape],
        invariant.rule.sql.sql))
    params = invariant.rule.sql.bind(auth=auth)
    if shape == "one":
        params["_id"] = ids[0]       # type: ignore[index]
    elif shape == "some":
        params["_ids"] = ids
    return query, params


# Errors ---------------------------------------------------------------------------------


def access_denied(entity: str, operation: str, rule_path: str | None) -> ApiError:
    if rule_path is None:
        return forbidden(
            f"{entity} has no access.{operation} rule: only the service key may {operation} {entity} rows.",
            details=f"access.{operation} of {entity}",
        )
    return forbidden(f"Denied by access.{operation} of {entity}.", details=rule_path)


def state_field_error(entity: CompiledEntity, detail: str) -> ApiError:
    rpcs = ", ".join(f"POST rest/v1/rpc/{entity.name}.{t}" for t in entity.transitions) or "its transitions"
    return forbidden(
        f"{entity.name}.{entity.state_field} is the state of {entity.name}: it changes only through "
        f"transitions ({rpcs}).",
        details=detail,
    )


def invariant_failed(backend: CompiledBackend, name: str) -> ApiError:
    invariant = backend.invariants[name]
    message = invariant.message or "the rule does not hold"
    return ApiError(409, "P0001", f"Invariant {name} failed: {message}",
                    details=f"invariant {name} (for {invariant.anchor})")


# The session ----------------------------------------------------------------------------


@dataclass
class WriteSession:
    """One transaction's writes and everything they must keep. Use one per transaction and
    call `finish()` before it commits."""

    conn: Any
    backend: CompiledBackend
    caller: Any
    enforce_access: bool | None = None          # default: every caller but the service key
    written: list[Written] = field(default_factory=list)
    _pending: dict[str, set[str]] = field(default_factory=dict)     # invariant -> anchor ids
    _pending_all: set[str] = field(default_factory=set)              # invariants over every anchor
    _locked: dict[str, set[str]] = field(default_factory=dict)       # entity -> locked ids
    _locked_all: set[str] = field(default_factory=set)
    outbox: Outbox = field(default_factory=Outbox)                  # runs and events, after commit: wake()
    # A hint from a caller that makes one write and then calls finish() (the data API): the
    # invariants an insert touches are then evaluated in its round trip, right behind it, and
    # finish() does not evaluate them again. Correct either way: any later write makes
    # finish() evaluate them again (`_touch` forgets what was evaluated).
    single_write: bool = False
    # invariant -> anchor ids (None: every anchor) evaluated since the last write
    _verified: dict[str, set[str] | None] = field(default_factory=dict)

    def __post_init__(self):
        if self.enforce_access is None:
            self.enforce_access = not self.caller.is_service
        self.auth = self.caller.auth

    # public writes ----------------------------------------------------------------------

    def insert(self, entity: str, rows: Sequence[Mapping[str, Any]], *, missing_default: bool = True) -> list[Written]:
        """Insert rows (field -> value, or DEFAULT). A field some rows lack is NULL in them,
        or its default with `missing_default` (the state field always starts at its default)."""
        ent = self.entity(entity)
        if not rows:
            return []
        if self.enforce_access and "create" not in ent.access:
            # before writing: a database error (a dangling reference) must not answer first
            raise access_denied(ent.name, "create", None)
        self._refuse_system(ent, rows, allow_id=True)
        self._refuse_initial_state(ent, rows)
        # anchors the new values point at: locked first, by statements sent in the INSERT's
        # round trip, ahead of it
        ahead = self._touch(entity, rows, defer=True)
        operation = "create" if self.enforce_access else None
        # One row: the access rule and the checks are answered by the INSERT itself when
        # they read no rows of this entity (which the statement's own snapshot could not
        # show them); see `_verify_in_insert`.
        folded = len(rows) == 1 and self._verify_in_insert(ent, operation)
        verify_after = not folded and self._verifies(ent, operation)
        # The session's last write (see `single_write`) whose rule and checks the INSERT answers
        # (or that has none): the invariants it touches are evaluated right behind it, in the
        # same round trip; their answers count once the rule and the checks have answered.
        behind = self._invariant_checks() if self.single_write and not verify_after else []
        stored: list[StoredRow] = []
        verdicts = []
        error = None
        for start in range(0, len(rows), BATCH):
            last = start + BATCH >= len(rows)
            # the rows and their audit rows in one statement (see `_insert_sql`)
            query, params = self._insert_sql(ent, rows[start:start + BATCH], missing_default,
                                             operation if folded else False)
            results, error = self._run(ahead + [(query, params)] + ([(q, p) for _, _, q, p in behind] if last else []))
            inserted = results[len(ahead)]
            if inserted is None:        # a lock or the INSERT failed: nothing after it ran
                raise error         # type: ignore[misc]
            for result in inserted:
                stored.append(StoredRow.parse(result[0]))
                if folded:
                    verdicts.append(result[1])
            ahead = []
        if folded:
            self._verdicts(ent, operation, verdicts)
        elif verify_after:
            self._verify(ent, operation, [row.id for row in stored])
        if error is not None:       # an invariant's evaluation failed (after the rule and checks held)
            raise error
        self._touch(entity, [row.data for row in stored])
        self._settle(behind, results[len(results) - len(behind):])
        return self._record([Written(entity, "insert", None, row) for row in stored], audited=True)

    def update(self, entity: str, where: Where,
               values: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> list[Written]:
        """Update the rows matching `where` that the caller may update (and read); the
        others are left alone, as PostgREST does. The new rows must pass the rule too.
        `values` may be a function, called once the rows are locked (and only if some
        matched): values it reads from the database then see those rows as they are now,
        never as they were before a concurrent write committed (a lost update)."""
        ent = self.entity(entity)
        before = self._lock_matching(ent, where, "update")
        if not before:
            return []
        values = values() if callable(values) else values
        self._refuse_system(ent, [values], allow_id=False)
        return self._update_rows(ent, before, values)

    def delete(self, entity: str, where: Where) -> list[Written]:
        """Delete the rows matching `where` that the caller may delete (and read), and what
        their deletion takes along (see `follow_deletion`). Answers the rows matched."""
        ent = self.entity(entity)
        before = self._lock_matching(ent, where, "delete")
        if not before:
            return []
        self.follow_deletion(entity, [row.id for row in before], [row.data for row in before])
        self.conn.execute(_named_statement(("delete", entity), lambda: sql.SQL(
            "DELETE FROM {} AS {} WHERE {}.id = ANY(%(_ids)s::uuid[])").format(sql.Identifier(entity), ALIAS, ALIAS)),
            {"_ids": [row.id for row in before]})
        return self._record([Written(entity, "delete", row, None) for row in before])

    def follow_deletion(self, table: str, ids: Sequence[str],
                        rows: Sequence[Mapping[str, Any]] = ()) -> list[Written]:
        """Before rows of `table` (an entity, or the end users' table), locked already, are
        deleted (`rows`: their values, when they are an entity's): the rows their deletion
        changes through `on_delete`, found and locked (FOR UPDATE) through every level of
        references. References that clear (`set_null`) are cleared here, as updates (all of
        a row's cleared fields in one; the entity's checks hold); rows that go along
        (`cascade`) are left to the database's own cascade, which deletes exactly these:
        their referenced rows are locked, so no new row can point at them meanwhile. Either
        way each changed row is audited, its event recorded, and the invariants it reaches
        evaluated, as for a direct write. Every anchor is locked before anything is written
        (a table lock taken after writing to that table could deadlock with another writer).
        Access rules do not apply to these rows: `on_delete` is the definition's own rule."""
        going: dict[str, set[str]] = {table: set(ids)}     # table -> ids deleted, these and the cascade's
        doomed: dict[str, list[StoredRow]] = {}             # entity -> rows the cascade deletes
        cleared: dict[str, dict[str, tuple[StoredRow, set[str]]]] = {}    # entity -> id -> (row, fields)
        frontier = [(table, sorted(ids))]
        while frontier:
            target, target_ids = frontier.pop()
            for ent, name, action in self._references_to(target):
                found = self._lock_referencing(ent, name, target_ids)
                if action == "SET NULL":
                    those = cleared.setdefault(ent.name, {})
                    for row in found:
                        those.setdefault(row.id, (row, set()))[1].add(name)
                    continue
                gone = going.setdefault(ent.name, set())
                fresh = [row for row in found if row.id not in gone]
                if fresh:
                    gone.update(row.id for row in fresh)
                    doomed.setdefault(ent.name, []).extend(fresh)
                    frontier.append((ent.name, [row.id for row in fresh]))
        # rows that lose references and stay, one update per entity and set of fields
        updates: list[tuple[str, dict[str, None], list[StoredRow]]] = []
        for entity, found in sorted(cleared.items()):
            by_fields: dict[tuple[str, ...], list[StoredRow]] = {}
            for row_id, (row, names) in sorted(found.items()):
                if row_id not in going.get(entity, ()):
                    by_fields.setdefault(tuple(sorted(names)), []).append(row)
            updates += [(entity, dict.fromkeys(names), group) for names, group in sorted(by_fields.items())]
        # every anchor first: of the rows deleted, and of the cleared rows as they are and will be
        if rows:
            self._touch(table, rows)
        for entity, group in sorted(doomed.items()):
            self._touch(entity, [row.data for row in group])
        for entity, values, group in updates:
            self._touch(entity, [row.data for row in group] + [{**row.data, **values} for row in group])
        changed: list[Written] = []
        for entity, values, group in updates:
            changed += self._update_rows(self.entity(entity), group, values, transition=True, touched=True)
        for entity, group in sorted(doomed.items()):
            changed += self._record([Written(entity, "delete", row, None) for row in group])
        return changed

    def _references_to(self, table: str) -> list[tuple[CompiledEntity, str, str]]:
        """(entity, field, CASCADE or SET NULL) of every reference to `table` that a
        deletion there changes."""
        return [(ent, name, column.fk.on_delete)
                for ent in self.backend.entities.values() for name, column in ent.table.columns.items()
                if column.fk is not None and column.fk.table == table and column.fk.on_delete != "RESTRICT"]

    def _lock_referencing(self, ent: CompiledEntity, name: str, ids: Sequence[str]) -> list[StoredRow]:
        query = _named_statement(("referencing", ent.name, name), lambda: sql.SQL(
            "SELECT {} FROM {} AS {} WHERE {}.{} = ANY(%(_ids)s::uuid[]) ORDER BY {}.id FOR UPDATE OF {}").format(
            ROW_JSON, sql.Identifier(ent.name), ALIAS, ALIAS, sql.Identifier(name), ALIAS, ALIAS))
        rows = [StoredRow.parse(t) for (t,) in self.conn.execute(query, {"_ids": list(ids)}).fetchall()]
        self._locked.setdefault(ent.name, set()).update(row.id for row in rows)
        return rows

    def upsert(self, entity: str, rows: Sequence[Mapping[str, Any]], on_conflict: Sequence[str], *,
               ignore_duplicates: bool = False, missing_default: bool = True) -> list[Written]:
        """Insert rows, or, where a row with the same `on_conflict` key exists, update it
        with the row's values (or leave it, with `ignore_duplicates`). An existing row the
        caller may not update is a 403, not a silent skip: the caller asked for that row.

        A row inserted concurrently between the lookup and the insert makes the insert
        fail as a unique violation; the data API retries the whole transaction then."""
        ent = self.entity(entity)
        conflict = self._conflict_key(ent, on_conflict)
        keyed = [i for i, row in enumerate(rows) if all(row.get(c) not in (None, DEFAULT) for c in conflict)]
        existing = self._lock_existing(ent, conflict, [rows[i] for i in keyed])
        matched = {keyed[n]: row for n, row in existing.items()}
        if len({row.id for row in matched.values()}) < len(matched):
            raise ApiError(400, "21000", "Two rows of the body have the same on_conflict key.",
                           details=f"on_conflict={','.join(conflict)}")
        written: list[Written] = []
        if matched and not ignore_duplicates:
            befores = sorted(matched.items(), key=lambda item: item[1].id)
            if self.enforce_access:
                self._require(ent, "update", [row.id for _, row in befores], also_read=True)
            for index, before in befores:
                values = {k: v for k, v in rows[index].items() if k not in conflict}
                self._refuse_system(ent, [values], allow_id=False)
                written += self._update_rows(ent, [before], values)
        fresh = [row for i, row in enumerate(rows) if i not in matched]
        written += self.insert(entity, fresh, missing_default=missing_default)
        return written

    def set_state(self, entity: str, ids: Sequence[str], state: str) -> list[Written]:
        """The one way a state field changes: a transition (runtime/api/transitions.py), whose
        own access rule, `from` states and guard were checked by the caller. Checks,
        invariants and the audit trail apply as to any update."""
        ent = self.entity(entity)
        if ent.state_field is None:
            raise bad_request(f"{entity} has no state machine.")
        query = _named_statement(("lock for state", ent.name), lambda: sql.SQL(
            "SELECT {} FROM {} AS {} WHERE {}.id = ANY(%(_ids)s::uuid[]) ORDER BY {}.id FOR UPDATE OF {}").format(
            ROW_JSON, sql.Identifier(ent.name), ALIAS, ALIAS, ALIAS, ALIAS))
        before = [StoredRow.parse(t) for (t,) in self.conn.execute(query, {"_ids": list(ids)}).fetchall()]
        self._locked.setdefault(ent.name, set()).update(row.id for row in before)
        return self._update_rows(ent, before, {ent.state_field: state}, transition=True)

    def finish(self) -> None:
        """Evaluate every invariant the writes touched, for every affected anchor row
        (already locked) not evaluated since the last write, then hand the events to the
        outbox. Raises 409 on a failure."""
        for name, _ids, query, params in self._invariant_checks():
            if self.conn.execute(query, params).fetchone():
                raise invariant_failed(self.backend, name)
        listened = self.backend.events.listened
        record_events(self.outbox, [w for w in self.written if w.event in listened])
        self.outbox.flush(self.conn, self.backend)
        self._pending.clear()
        self._pending_all.clear()
        self._verified.clear()

    def _invariant_checks(self) -> list[tuple[str, list[str] | None, str, dict]]:
        """(invariant, anchor ids or None for all, query, parameters) for each invariant the
        writes touched, over its anchors not evaluated since the last write."""
        checks = []
        for name in sorted(set(self._pending) | self._pending_all):
            if name in self._pending_all:
                if name in self._verified and self._verified[name] is None:
                    continue    # every anchor row evaluated since the last write
                ids = None
            else:
                done = self._verified.get(name, ())
                ids = [i for i in _ids_param(self._pending[name]) if i not in done]
                if not ids:
                    continue
            checks.append((name, ids, *_invariant_query(self.backend.invariants[name], ids, self.auth)))
        return checks

    def _settle(self, checks: list, results: list) -> None:
        """The answers of `_invariant_checks` evaluated after the last write (in its round
        trip): 409 for the first broken one; the others need not be evaluated again by
        `finish()` unless another write comes first (`_touch` forgets them)."""
        for (name, ids, _query, _params), rows in zip(checks, results):
            if rows:
                raise invariant_failed(self.backend, name)
            if ids is None:
                self._verified[name] = None
            else:
                self._verified.setdefault(name, set()).update(ids)  # type: ignore[union-attr]

    def _run(self, statements: list[tuple[str | sql.Composable, Mapping[str, Any]]]
             ) -> tuple[list[list | None], Exception | None]:
        """Run statements in order in one round trip (as the transaction's first, in one
        message with its opening, else psycopg's pipeline mode): each one's rows (None for
        one that did not run), and the first error, if any (the statements after it did
        not run; the transaction is then aborted)."""
        # A transaction whose opening is not sent yet (`DeferredOpening`): the statements go
        # with it in one message, or, where that cannot tell what failed, it leads the pipeline.
        run_first = getattr(self.conn, "run_first", None)
        if run_first is not None:
            rows = run_first(statements)
            if rows is not None:
                return rows, None
        take_opening = getattr(self.conn, "take_opening", None)
        opening = take_opening() if take_opening is not None else []
        if len(statements) == 1 and not opening:
            query, params = statements[0]
            return [self.conn.execute(query, params).fetchall()], None
        cursors = []
        error = None
        try:
            with self.conn.pipeline():
                for query, params in opening + statements:
                    cursors.append(self.conn.execute(query, params))
        except Exception as exc:     # psycopg.Error, raised when the pipeline is synced
            error = exc
        if opening:
            # TenantChanged if the guard refused: nothing ran
            ran = [cursor.pgresult is not None for cursor in cursors[:len(opening)]]
            self.conn.opened(ran + [False] * (len(opening) - len(ran)), error)
            cursors = cursors[len(opening):]
        results: list[list | None] = []
        for cursor in cursors:
            results.append(cursor.fetchall() if cursor.pgresult is not None else None)
        results += [None] * (len(statements) - len(results))
        return results, error

    # helpers ----------------------------------------------------------------------------

    def entity(self, name: str) -> CompiledEntity:
        ent = self.backend.entities.get(name)
        if ent is None:
            raise ApiError(404, "PGRST205", f"No entity '{name}'.")
        return ent

    def _rule_sql(self, ent: CompiledEntity, operation: str) -> tuple[sql.Composable, dict]:
        """The access rule as a predicate; a missing rule denies (the service key never asks)."""
        rule = ent.access.get(operation)
        if rule is None:
            return sql.SQL("false"), {}
        return rule.sql.sql, rule.sql.bind(auth=self.auth)

    def _lock_matching(self, ent: CompiledEntity, where: Where, operation: str) -> list[StoredRow]:
        predicate, params = where
        params = dict(params)
        if self.enforce_access:
            if operation not in ent.access:
                raise access_denied(ent.name, operation, None)
            # Rows the caller cannot read are not theirs to change either (as with RLS).
            for op in (operation, "read"):
                rule_sql, rule_params = self._rule_sql(ent, op)
                predicate = sql.SQL("({}) AND {}").format(predicate, rule_sql)
                params.update(rule_params)
        query = sql.SQL("SELECT {} FROM {} AS {} WHERE {} ORDER BY {}.id FOR UPDATE OF {}").format(
            ROW_JSON, sql.Identifier(ent.name), ALIAS, predicate, ALIAS, ALIAS)
        rows = [StoredRow.parse(t) for (t,) in self._fetch(query, params)]
        self._locked.setdefault(ent.name, set()).update(row.id for row in rows)
        return rows

    def _fetch(self, query: sql.Composable, params: Mapping[str, Any]) -> list[tuple]:
        """A statement's rows; as the transaction's first (an update's or a delete's lock
        of its rows), in one message with the opening (`_run`)."""
        results, error = self._run([(query, params)])
        if error is not None:
            raise error
        return results[0]       # type: ignore[return-value]

    def _update_rows(self, ent: CompiledEntity, before: list[StoredRow], values: Mapping[str, Any],
                     transition: bool = False, touched: bool = False) -> list[Written]:
        """Update these locked rows to `values`; `touched`: the caller has already locked
        the anchors the rows reach as they are and as `values` make them."""
        if not before or not values:
            return []
        state = ent.state_field
        if not transition and state in values and any(row.data.get(state) != values[state] for row in before):
            raise state_field_error(ent, f"an update may not change {ent.name}.{state}")
        ids = [row.id for row in before]
        if not touched:
            self._touch(ent.name, [row.data for row in before] + [{**row.data, **values} for row in before])
        one = len(ids) == 1         # `r.id = <id>`: a generic plan (see `_invariant_query`)
        params: dict[str, Any] = {"_id": ids[0]} if one else {"_ids": ids}
        shape = tuple((name, value is DEFAULT) for name, value in values.items())
        for n, (name, value) in enumerate(values.items()):
            if value is not DEFAULT:
                params[f"v{n}"] = value
        query = _statement(ent, ("update", one, shape), lambda: self._update_composed(ent, one, shape))
        after = {row.id: row for row in (StoredRow.parse(t) for (t,) in self.conn.execute(query, params).fetchall())}
        self._verify(ent, "update" if self.enforce_access and not transition else None, ids)
        self._touch(ent.name, [row.data for row in after.values()])
        return self._record([Written(ent.name, "update", row, after[row.id]) for row in before if row.id in after])

    @staticmethod
    def _update_composed(ent: CompiledEntity, one: bool, shape: tuple[tuple[str, bool], ...]) -> sql.Composed:
        """The UPDATE of one row (`%(_id)s`) or several (`%(_ids)s`) setting these fields
        (name, whether to DEFAULT), the n-th from `%(v<n>)s`."""
        assignments = [
            sql.SQL("{} = DEFAULT").format(sql.Identifier(name)) if default else
            sql.SQL("{} = CAST({} AS {})").format(sql.Identifier(name), sql.Placeholder(f"v{n}"),
                                                   sql.SQL(sql_type(ent.table.columns[name].type)))
            for n, (name, default) in enumerate(shape)]
        matching = "{}.id = %(_id)s::uuid" if one else "{}.id = ANY(%(_ids)s::uuid[])"
        return sql.SQL("UPDATE {} AS {} SET {} WHERE " + matching + " RETURNING {}").format(
            sql.Identifier(ent.name), ALIAS, sql.SQL(", ").join(assignments), ALIAS, ROW_JSON)

    def _insert_sql(self, ent: CompiledEntity, rows: Sequence[Mapping[str, Any]], missing_default: bool,
                    verify: str | None | bool = False):
        """The INSERT of these rows and its parameters. `verify` (not False: the operation
        whose rule applies, or None for the checks alone) adds each row's verdict (see
        `_verify_in_insert`) as a second column."""
        columns = list(dict.fromkeys(k for row in rows for k in row)) or ["id"]
        params: dict[str, Any] = {}
        defaults = []       # per row, which cells are DEFAULT: with the columns, the shape
        for i, row in enumerate(rows):
            mask = []
            for j, name in enumerate(columns):
                # a missing id or state is always the default: null could never be stored
                value = row.get(name, DEFAULT if (missing_default or name in ("id", ent.state_field)) else None)
                mask.append(value is DEFAULT)
                if value is not DEFAULT:
                    params[f"v{i}_{j}"] = value
            defaults.append(tuple(mask))
        kind, actor = actor_of(self.caller)
        params.update({"_a_kind": kind, "_a_actor": actor, "_a_entity": ent.name})
        rule = None
        if verify is not False:
            rule = ent.access[verify] if verify is not None else None
            if rule is not None:
                params.update(rule.sql.bind(auth=self.auth))
            for check in ent.checks:
                params.update(check.rule.sql.bind(auth=self.auth))
        query = _statement(ent, ("insert", tuple(columns), tuple(defaults), verify),
                           lambda: self._insert_composed(ent, columns, defaults, verify, rule))
        return query, params

    def _insert_composed(self, ent: CompiledEntity, columns: list[str], defaults: list[tuple],
                         verify: str | None | bool = False, rule=None) -> sql.Composable:
        tuples = []
        for i, mask in enumerate(defaults):
            cells = []
            for j, name in enumerate(columns):
                if mask[j]:
                    cells.append(sql.SQL("DEFAULT"))
                else:
                    cells.append(sql.SQL("CAST({} AS {})").format(
                        sql.Placeholder(f"v{i}_{j}"), sql.SQL(sql_type(ent.table.columns[name].type))))
            tuples.append(sql.SQL("({})").format(sql.SQL(", ").join(cells)))
        verdict, answer = sql.SQL(""), sql.SQL("")
        if verify is not False:
            # NULL: the rule denies (the checks are then not evaluated), else each check's result
            passes = sql.SQL("ARRAY[{}]::boolean[]").format(
                sql.SQL(", ").join(check.rule.sql.sql for check in ent.checks))
            if rule is not None:
                passes = sql.SQL("CASE WHEN {} THEN {} END").format(rule.sql.sql, passes)
            verdict = sql.SQL(", {} AS _verdict").format(passes)
            answer = sql.SQL(", _ins._verdict")
        # The audit rows are written by the same statement, from the stored rows: `changed`
        # is what `Written.changed()` says of an insert (the non-null fields but the system
        # ones, in the row's key order), `after` the row as returned.
        return sql.SQL(
            "WITH _ins AS (INSERT INTO {} AS {} ({}) VALUES {} RETURNING {} AS j{}), "
            "_aud AS (INSERT INTO _audit (actor_kind, actor_id, entity, row_id, operation, changed, before, after) "
            "SELECT %(_a_kind)s, %(_a_actor)s, %(_a_entity)s, (_ins.j ->> 'id')::uuid, 'insert', "
            "ARRAY(SELECT e.key FROM jsonb_each(_ins.j) WITH ORDINALITY AS e(key, value, n) "
            "WHERE e.value <> 'null'::jsonb AND e.key <> ALL({}) ORDER BY e.n), NULL, _ins.j FROM _ins) "
            "SELECT _ins.j::text{} FROM _ins"
        ).format(
            sql.Identifier(ent.name), ALIAS, sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(tuples), ROW_JSONB, verdict, sql.Literal(list(SYSTEM_FIELDS)), answer)

    def _verify_in_insert(self, ent: CompiledEntity, operation: str | None) -> bool:
        """Whether the INSERT itself can answer `_verify`'s question for its row: there is
        something to verify, and neither the rule nor a check reads the entity's own table
        (a subquery in RETURNING sees the rows as they were before the statement; other
        tables it sees as a statement after it would, this statement changing none of
        them but `_audit`, which no expression reads)."""
        rule = ent.access.get(operation) if operation is not None else None
        if rule is None and (operation is not None or not ent.checks):
            return False      # nothing to verify, or a missing rule for `_verify` to refuse
        key = (id(ent), "self-read", operation)
        found = _STATEMENTS.get(key)
        if found is None or found[0] is not ent:
            exprs = ([rule.sql.sql] if rule is not None else []) + [c.rule.sql.sql for c in ent.checks]
            table = sql.Identifier(ent.name).as_string(None)
            found = _STATEMENTS[key] = (ent, not any(table in expr.as_string(None) for expr in exprs))
        return found[1]

    def _verifies(self, ent: CompiledEntity, operation: str | None) -> bool:
        """Whether `_verify` has anything to evaluate for written rows of `ent`."""
        return (operation is not None and operation in ent.access) or bool(ent.checks)

    def _verdicts(self, ent: CompiledEntity, operation: str | None, verdicts: Sequence[Any]) -> None:
        """`_verify`'s answers from the INSERT's verdicts: 403 if the rule denied a row, else
        422 naming the first check a row breaks."""
        if any(v is None for v in verdicts):
            raise access_denied(ent.name, operation, ent.access[operation].path)  # type: ignore[index]
        for verdict in verdicts:
            if not all(verdict):
                self._check_failed(ent, verdict)

    def _refuse_system(self, ent: CompiledEntity, rows: Iterable[Mapping[str, Any]], *, allow_id: bool) -> None:
        for row in rows:
            for name in row:
                if name not in ent.table.columns:
                    raise bad_request(f"{ent.name} has no field '{name}'.", code="PGRST204")
                if name in SYSTEM_FIELDS and not (allow_id and name == "id"):
                    raise bad_request(f"{ent.name}.{name} is maintained by Plinth and cannot be written.",
                                      code="PGRST204")

    def _refuse_initial_state(self, ent: CompiledEntity, rows: Iterable[Mapping[str, Any]]) -> None:
        state = ent.state_field
        if state is None:
            return
        initial = ent.table.columns[state].source.default
        for row in rows:
            if state in row and row[state] is not DEFAULT and row[state] != initial:
                raise state_field_error(ent, f"new {ent.name} rows start in '{initial}'")

    def _require(self, ent: CompiledEntity, operation: str, ids: Sequence[str], also_read: bool = False) -> None:
        """403 unless the rule holds for every one of the rows (as they are now)."""
        if not ids:
            return
        rule = ent.access.get(operation)
        if rule is None:
            raise access_denied(ent.name, operation, None)
        predicate, params = rule.sql.sql, rule.sql.bind(auth=self.auth)
        if also_read:
            read_sql, read_params = self._rule_sql(ent, "read")
            predicate = sql.SQL("({} AND {})").format(predicate, read_sql)
            params.update(read_params)
        query = sql.SQL("SELECT 1 FROM {} AS {} WHERE {}.id = ANY(%(_ids)s::uuid[]) AND NOT {} LIMIT 1").format(
            sql.Identifier(ent.name), ALIAS, ALIAS, predicate)
        if self.conn.execute(query, {**params, "_ids": list(ids)}).fetchone():
            raise access_denied(ent.name, operation, rule.path)

    def _verify(self, ent: CompiledEntity, operation: str | None, ids: Sequence[str]) -> None:
        """After a write: the access rule (unless `operation` is None; as `_require`), then the
        entity's checks, in one statement: 403 if the rule fails for one of the stored rows
        (the checks are then not evaluated), else 422 naming the first check a row breaks."""
        if not ids:
            return
        rule = None
        if operation is not None:
            rule = ent.access.get(operation)
            if rule is None:
                raise access_denied(ent.name, operation, None)
        if rule is None and not ent.checks:
            return
        one = len(ids) == 1       # `r.id = <id>`: a generic plan (see `_invariant_query`)
        params: dict[str, Any] = {"_id": ids[0]} if one else {"_ids": list(ids)}
        if rule is not None:
            params.update(rule.sql.bind(auth=self.auth))
        for check in ent.checks:
            params.update(check.rule.sql.bind(auth=self.auth))
        query = _statement(ent, ("verify", operation, one), lambda: self._verify_composed(ent, rule, one))
        is_denied, row = self.conn.execute(query, params).fetchone()
        if is_denied:
            raise access_denied(ent.name, operation, rule.path)  # type: ignore[union-attr]
        if row is not None:
            self._check_failed(ent, row)

    def _verify_composed(self, ent: CompiledEntity, rule, one: bool) -> sql.Composable:
        table = sql.Identifier(ent.name)
        matched = sql.SQL("{}.id = %(_id)s::uuid" if one else "{}.id = ANY(%(_ids)s::uuid[])").format(ALIAS)
        denied: sql.Composable = sql.SQL("false")
        if rule is not None:
            denied = sql.SQL("EXISTS (SELECT 1 FROM {} AS {} WHERE {} AND NOT {})").format(
                table, ALIAS, matched, rule.sql.sql)
        failed: sql.Composable = sql.SQL("NULL::boolean[]")
        if ent.checks:
            passes = [check.rule.sql.sql for check in ent.checks]
            failed = sql.SQL("(SELECT ARRAY[{}] FROM {} AS {} WHERE {} AND NOT ({}) LIMIT 1)").format(
                sql.SQL(", ").join(passes), table, ALIAS, matched, sql.SQL(" AND ").join(passes))
        # OFFSET 0 keeps `denied` evaluated once; CASE evaluates the checks only when allowed
        return sql.SQL("SELECT d.denied, CASE WHEN d.denied THEN NULL ELSE {} END "
                       "FROM (SELECT {} AS denied OFFSET 0) AS d").format(failed, denied)

    def _check_failed(self, ent: CompiledEntity, row: Sequence[Any]) -> None:
        check = next(c for c, ok in zip(ent.checks, row) if not ok)
        raise ApiError(422, "23514", f"Check {check.name} of {ent.name} failed: {check.message or check.rule.source}",
                       details=f"check {check.name} of {ent.name}")

    def _conflict_key(self, ent: CompiledEntity, on_conflict: Sequence[str]) -> tuple[str, ...]:
        key = tuple(on_conflict) or ("id",)
        keys = {("id",)} | {(c.name,) for c in ent.table.columns.values() if c.unique} | set(ent.table.uniques.values())
        if not any(set(key) == set(k) and len(key) == len(k) for k in keys):
            raise bad_request(f"on_conflict={','.join(key)} is not a unique key of {ent.name}.", code="42P10",
                              hint="Use id, a unique field, or the fields of one of the entity's unique keys.")
        return key

    def _lock_existing(self, ent: CompiledEntity, key: tuple[str, ...], rows: Sequence[Mapping[str, Any]]) -> dict[int, StoredRow]:
        """Row index -> the existing row with the same key, locked."""
        if not rows:
            return {}
        params: dict[str, Any] = {}
        tuples = []
        for i, row in enumerate(rows):
            cells = [sql.SQL("{}::int").format(sql.Literal(i))]
            for j, name in enumerate(key):
                params[f"k{i}_{j}"] = row[name]
                cells.append(sql.SQL("CAST({} AS {})").format(
                    sql.Placeholder(f"k{i}_{j}"), sql.SQL(sql_type(ent.table.columns[name].type))))
            tuples.append(sql.SQL("({})").format(sql.SQL(", ").join(cells)))
        names = [sql.Identifier(f"k{j}") for j in range(len(key))]
        join = sql.SQL(" AND ").join(
            sql.SQL("{}.{} = v.{}").format(ALIAS, sql.Identifier(name), names[j]) for j, name in enumerate(key))
        query = sql.SQL("SELECT v.n, {} FROM {} AS {} JOIN (VALUES {}) AS v(n, {}) ON {} ORDER BY {}.id FOR UPDATE OF {}").format(
            ROW_JSON, sql.Identifier(ent.name), ALIAS, sql.SQL(", ").join(tuples), sql.SQL(", ").join(names), join,
            ALIAS, ALIAS)
        found = {n: StoredRow.parse(t) for n, t in self.conn.execute(query, params).fetchall()}
        self._locked.setdefault(ent.name, set()).update(row.id for row in found.values())
        return found

    def _record(self, written: list[Written], audited: bool = False) -> list[Written]:
        """The audit rows of these writes (unless the write's own statement wrote them:
        `audited`), and their events for `finish()`."""
        if written and not audited:
            kind, actor = actor_of(self.caller)
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO _audit (actor_kind, actor_id, entity, row_id, operation, changed, before, after)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)",
                    [(kind, actor, w.entity, w.row.id, w.operation, w.changed(),
                      w.before.text if w.before else None, w.after.text if w.after else None) for w in written],
                )
        self.written += written
        return written

    # invariants: which anchors a write reaches, and their locks -------------------------

    def _touch(self, entity: str, rows: Sequence[Mapping[str, Any]], defer: bool = False) -> list[tuple[str, dict]]:
        """Note and lock the anchors of every invariant these rows (old or new values) reach.
        With `defer`, the anchor locks are returned, to be run before anything else (the
        caller sends them with its write, in one round trip), rather than run here.

        A write: invariants evaluated before it must be evaluated again."""
        self._verified.clear()
        to_lock: dict[str, set[str]] = {}
        for trigger in self.backend.events.invariants_by_entity.get(entity, ()):
            anchor = self.backend.invariants[trigger.invariant].anchor
            if trigger.all_anchors:
                self._pending_all.add(trigger.invariant)
                self._lock_all(anchor)
                continue
            ids = self._reach(trigger, rows)
            self._pending.setdefault(trigger.invariant, set()).update(ids)
            to_lock.setdefault(anchor, set()).update(ids)
        deferred = []
        for anchor in sorted(to_lock):
            statement = self._lock_statement(anchor, to_lock[anchor])
            if statement is not None:
                if defer:
                    deferred.append(statement)
                else:
                    self.conn.execute(*statement)
        return deferred

    def _reach(self, trigger: Trigger, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        """The anchor ids the rows reach through the trigger's hops (see runtime/compile/events.py)."""
        hops = trigger.hops
        if hops and hops[0].direction == "up":       # read from the rows themselves
            ids = set(_ids_param(row.get(hops[0].field) for row in rows))
            hops = hops[1:]
        else:
            ids = set(_ids_param(row.get("id") for row in rows))
        for hop in hops:
            if not ids:
                break
            if hop.direction == "up":
                # FOR SHARE: a concurrent move of these rows (which locks them) waits for us,
                # and we read the value it commits.
                query = _named_statement(("up", hop.field, hop.entity), lambda: sql.SQL(
                    "SELECT {}::text FROM {} WHERE id = ANY(%(_ids)s::uuid[]) FOR SHARE").format(
                    sql.Identifier(hop.field), sql.Identifier(hop.entity)))
            else:
                # Lock the referenced rows first: a concurrent insert pointing at them (its
                # foreign key check takes KEY SHARE) then waits, so no anchor appears unseen.
                target = self.backend.entities[hop.entity].table.columns[hop.field].fk.table
                self._lock(target, ids)
                query = _named_statement(("down", hop.field, hop.entity), lambda: sql.SQL(
                    "SELECT id::text FROM {} WHERE {} = ANY(%(_ids)s::uuid[])").format(
                    sql.Identifier(hop.entity), sql.Identifier(hop.field)))
            ids = {value for (value,) in self.conn.execute(query, {"_ids": sorted(ids)}).fetchall() if value}
        return ids

    def _lock(self, entity: str, ids: Iterable[str]) -> None:
        """Lock these rows FOR UPDATE, in id order (writers of one anchor queue, not deadlock)."""
        statement = self._lock_statement(entity, ids)
        if statement is not None:
            self.conn.execute(*statement)

    def _lock_statement(self, entity: str, ids: Iterable[str]) -> tuple[str, dict] | None:
        """`_lock`'s statement for the rows not locked yet (None: none), noted as locked:
        the caller runs it before anything else."""
        if entity in self._locked_all:
            return None
        locked = self._locked.setdefault(entity, set())
        fresh = [i for i in _ids_param(ids) if i not in locked]
        if not fresh:
            return None
        locked.update(fresh)
        if len(fresh) == 1:     # (a list parameter costs psycopg twice what a uuid does)
            return _named_statement(("lock one", entity), lambda: sql.SQL(
                "SELECT 1 FROM {} WHERE id = %(_id)s::uuid FOR UPDATE").format(
                sql.Identifier(entity))), {"_id": fresh[0]}
        return _named_statement(("lock", entity), lambda: sql.SQL(
            "SELECT 1 FROM {} WHERE id = ANY(%(_ids)s::uuid[]) ORDER BY id FOR UPDATE").format(
            sql.Identifier(entity))), {"_ids": fresh}

    def _lock_all(self, entity: str) -> None:
        # An invariant reading a whole entity (`Membership.exists(...)`) can be affected at
        # every anchor: lock them all, those there are (FOR UPDATE: a writer that locked one
        # to evaluate it is waited for) and those being written. SHARE ROW EXCLUSIVE waits
        # for every transaction that inserted, updated or deleted anchors and makes new ones
        # wait for this one: an anchor inserted concurrently is then evaluated by its writer
        # after this transaction committed, on what it wrote (a fresh snapshot per statement).
        # Readers are not held up. Two such writers queue (the mode conflicts with itself).
        if entity not in self._locked_all:
            name = sql.Identifier(entity)
            self.conn.execute(_named_statement(("lock all", entity), lambda: sql.SQL(
                "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(name)))
            self.conn.execute(_named_statement(("lock rows", entity), lambda: sql.SQL(
                "SELECT 1 FROM {} ORDER BY id FOR UPDATE").format(name)))
            self._locked_all.add(entity)
