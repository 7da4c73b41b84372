"""The runtime's connections, and the one way to touch a tenant's data: `tenant_transaction`.

The runtime connects as `plinth_runtime` (NOINHERIT, no rights of its own) through a pool.
Every unit of tenant work is one transaction that first switches, transaction-locally, to
the tenant's role, search path and caller claims, in a single round trip:

    SELECT set_config('search_path', 't_<id>', true),
           set_config('request.jwt.claims', '<claims json>', true),
           set_config('role', 't_<id>', true)

`set_config(..., true)` is `SET LOCAL`: it ends with the transaction, so nothing leaks to
the next user of a pooled connection (the django-tenants lesson, STYLE.md). Postgres then
enforces the boundary: this role can read its own schema and nothing else.

Round trips and messages: each one costs the web process (a send, a wait, a receive, and
the GIL handed to another thread and taken back) and Postgres more CPU than a small
statement takes to run. So pooled connections are in autocommit mode and a transaction is
begun by hand: `BEGIN` and the switch are one simple-query message (values bound
client-side, as Django binds every query), one round trip. `tenant_statement` runs a
read in ONE message: the switch and the statement, which Postgres runs as one implicit
transaction (a multi-statement message is one transaction); the statement itself is
prepared once per connection (`PREPARE`, then `EXECUTE`), so Postgres does not plan it on
every request.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

import psycopg
from psycopg import ClientCursor, sql
from psycopg._preparing import PrepareManager
from django.conf import settings
from django.db import connections
from psycopg_pool import ConnectionPool

from tenants.crypto import runtime_role_password
from tenants.provisioning import schema_name

T = TypeVar("T")

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()

# The role switch comes last: the other set_config calls must still run as plinth_runtime,
# because tenant roles may not call set_config (tenants/provisioning.py).
# A tenant transaction that runs longer than this is cancelled (57014 -> 504): one tenant's
# runaway request cannot hold a pooled connection and locks indefinitely.
STATEMENT_TIMEOUT = "15s"
_SWITCH = (
    "SELECT set_config('search_path', %s, true), set_config('request.jwt.claims', %s, true),"
    f" set_config('statement_timeout', '{STATEMENT_TIMEOUT}', true), set_config('role', %s, true)"
)


def runtime_conninfo() -> str:
    """Where the runtime connects: RUNTIME_DATABASE_URL, or the control-plane database with
    the runtime role's user and derived password (read at call time, so that the test
    database, whose name Django picks at set-up, is the one used)."""
    if settings.RUNTIME_DATABASE_URL:
        return settings.RUNTIME_DATABASE_URL
    db = connections["default"].settings_dict
    # every input of the result: the password derivation (HKDF) then runs once, not per request
    key = (db["NAME"], db["HOST"], db["PORT"], settings.PLINTH_RUNTIME_ROLE, settings.SECRET_KEY)
    conninfo = _conninfos.get(key)
    if conninfo is None:
        conninfo = _conninfos[key] = _build_conninfo(db)
    return conninfo


_conninfos: dict[tuple, str] = {}


def _build_conninfo(db) -> str:
    params = {
        "dbname": db["NAME"],
        "user": settings.PLINTH_RUNTIME_ROLE,
        "password": runtime_role_password(),
        "host": db["HOST"] or "",
        "port": db["PORT"] or "",
        "application_name": "plinth-runtime",
        # expressions' date arithmetic must not depend on the server's zone
        "options": "-c TimeZone=UTC",
    }
    return " ".join(f"{k}='{_escape(v)}'" for k, v in params.items() if v != "")


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


class _PsycopgStatements(PrepareManager):
    """psycopg's cache of the statements it prepares itself (one run `prepare_threshold`
    times on a connection), counting the times it was cleared.

    psycopg clears it after a rollback, of a transaction or a savepoint (a refused
    write's), when it holds a statement, and on `DISCARD ALL` and the like, and sends
    `DEALLOCATE ALL`, which takes the runtime's own prepared statements (`plinth_r<n>`,
    `_prepared_name`) with it. Knowing that, the runtime forgets its own too (`_reads`) and
    prepares them again in its next message; before, that message met 26000 and the
    request paid for a resync and the message again. psycopg's own handling (what it
    repairs at a rollback, such as a name a failed pipeline never prepared) is untouched.

    psycopg's internals (3.3, pinned): `clear` answers whether it queued the
    deallocation; tests/runtime/test_db.py fails if that changes."""

    cleared = 0

    def clear(self) -> bool:
        if super().clear():
            self.cleared += 1
            return True
        return False


class RuntimeConnection(psycopg.Connection):
    """A runtime pool's connection: it tells when psycopg deallocated every prepared
    statement (`_PsycopgStatements`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepared = _PsycopgStatements()


def runtime_pool() -> ConnectionPool:
    conninfo = runtime_conninfo()
    pool = _pools.get(conninfo)
    if pool is None:
        with _lock:
            pool = _pools.get(conninfo)
            if pool is None:
                pool = ConnectionPool(
                    conninfo,
                    min_size=1,
                    max_size=settings.RUNTIME_POOL_SIZE,
                    # how long a request waits for a connection before it answers 503
                    timeout=settings.RUNTIME_POOL_TIMEOUT,
                    open=True,
                    name="plinth-runtime",
                    connection_class=RuntimeConnection,
                    # transactions are begun by hand (`tenant_transaction`), in one round
                    # trip with the role switch
                    kwargs={"autocommit": True},
                )
                _pools[conninfo] = pool
    return pool


def close_pools() -> None:
    with _lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


# The guard, `plinth_api.tenant_guard` (tenants/migrations/0007): when a request runs on the
# facts its worker remembers about the tenant and the key (runtime/api/context.py), its
# first message checks them, as plinth_runtime, before the switch; if a fact changed it
# raises PLT01, the message's transaction aborts, and nothing of the request has run. (Its
# own statement: a prepared statement that switches the role cannot name plinth_api, which
# Postgres then checks again as the tenant's role.)
_GUARD = "SELECT plinth_api.tenant_guard(%s, %s, %s, %s, %s, %s)"
TENANT_CHANGED = "PLT01"


class TenantChanged(Exception):
    """The facts a request was planned on (tenant, live version, key, signing secret) no
    longer hold: nothing ran; the request must be looked up afresh and run again."""


def _switch_params(tenant_id: str, claims: dict | None, guard: tuple | None = None) -> tuple:
    """The values of the switch's statements: the guard's (if any), then the switch's."""
    schema = schema_name(tenant_id)
    switch = (schema, json.dumps(claims or {}, separators=(",", ":")), schema)
    return switch if guard is None else (*guard, *switch)


# The guard and the switch as each pooled connection prepares them on first use
# (`_switch_parts`), among its prepared reads (`_reads`, keyed by their text): in a simple
# query, Postgres parses and plans the switch on every request, which cost it about twice
# the prepared switch's EXECUTE.
_GUARD_TYPES = "(text, text, text, integer, text, bytea)"
_SWITCH_TYPES = "(text, text, text)"


def _switch_parts(conn: psycopg.Connection, guarded: bool) -> tuple[list[str], bool]:
    """The parts of a message that check the guard (if `guarded`) and switch, values as `%s`:
    each statement's PREPARE on its first use on this connection, and its EXECUTE; and
    whether a PREPARE is among them."""
    parts: list[str] = []
    fresh_any = False
    statements = ((_GUARD, _GUARD_TYPES), (_SWITCH, _SWITCH_TYPES))
    for text, types in statements if guarded else statements[1:]:
        count = text.count("%s")
        body = text % tuple(f"${n}" for n in range(1, count + 1))
        fresh_any = _add_execute(conn, text, body, count, parts, types) or fresh_any
    return parts, fresh_any


def _add_execute(conn: psycopg.Connection, key: str, body: str, count: int, parts: list[str], types: str = "") -> bool:
    """Add to a message's `parts` the EXECUTE (values as `%s`, `count` of them) of `body`
    (`$n` placeholders) as prepared on this connection under `key`, with its PREPARE
    first on its first use here: whether that PREPARE is among them."""
    name, fresh = _prepared_name(conn, key, parts)
    if fresh:
        parts.append(f"PREPARE {name}{types} AS {body}")
    parts.append(f"EXECUTE {name}({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}")
    return fresh


def _changed(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) == TENANT_CHANGED


def check_guard(guard: tuple) -> None:
    """The guard alone, for a request that ended without a statement carrying it."""
    with runtime_pool().connection() as conn:
        try:
            conn.execute(_GUARD, guard)
        except psycopg.Error as exc:
            if _changed(exc):
                raise TenantChanged() from None
            raise


_BEGIN = "BEGIN; "
QUERY_CANCELED = "57014"     # the statement timeout
TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK


@contextmanager
def tenant_transaction(tenant_id: str, claims: dict | None = None, guard: tuple | None = None, *,
                       deferred: bool = False, on_open=None) -> Iterator[psycopg.Connection]:
    """One transaction under the tenant's role; commits on success, rolls back on error.

    `BEGIN` and the switch are one message (with `guard`, the arguments of
    `plinth_api.tenant_guard`, checked first: `TenantChanged` if they no longer hold).
    Callers must not commit or roll back themselves (savepoints, `conn.transaction()`,
    are fine).

    `on_open()` is called once that opening has run (the guard has held). `deferred`: it is
    not sent yet; the connection comes as a `DeferredOpening`, whose first statements carry
    it, in one message or at the head of a pipeline (one round trip fewer). A transaction
    that ends before sending anything ran nothing."""
    params = _switch_params(tenant_id, claims, guard)
    with runtime_pool().connection() as conn:
        try:
            if deferred:
                yield DeferredOpening(conn, guard is not None, params, on_open)
            else:
                _begin(conn, guard is not None, params)
                if on_open is not None:
                    on_open()
                yield conn
        except BaseException:
            _rollback(conn)
            raise
        conn.commit()


# Postgres rolls a transaction back for these when it lost a race with a concurrent one:
# serialization failure, deadlock. The work can simply be done again.
RETRYABLE = frozenset({"40001", "40P01"})
ATTEMPTS = 3
RETRY_PAUSE = 0.02      # seconds: the longest pause before the second attempt (twice that before the third)


def retried(work: Callable[[], T], *, also: Callable[[psycopg.Error], bool] | None = None) -> T:
    """`work()`, which runs one whole tenant transaction (and whatever follows its commit),
    done again when Postgres rolled that transaction back for losing a race (`RETRYABLE`,
    or an error `also` accepts), at most `ATTEMPTS` times in all; then the error is raised.
    Nothing of a failed attempt survives it: its transaction was rolled back, and anything
    to do after commit (an outbox's wake-up) must happen inside `work`."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return work()
        except psycopg.Error as exc:
            again = exc.sqlstate in RETRYABLE or (also is not None and also(exc))
            if not again or attempt == ATTEMPTS:
                raise
        # a moment apart, at random: two sides that deadlocked, run again at once, would
        # likely meet again in the same order
        time.sleep(random.uniform(0, RETRY_PAUSE * attempt))
    raise AssertionError("unreachable")


class DeferredOpening:
    """A tenant transaction's connection whose opening (`BEGIN`, the guard, the switch) is
    not sent yet. A caller with the transaction's first statements sends them with the
    opening in one message (`run_first`); a caller about to send a pipeline takes the
    opening (`take_opening`), sends it at the pipeline's head, then reports how that went
    (`opened`, which raises `TenantChanged` when the guard refused); anything else done
    with the connection sends the opening on its own first. So no statement can run
    outside the transaction or before the switch."""

    def __init__(self, conn: psycopg.Connection, guarded: bool, params: tuple, on_open=None):
        self._conn, self._guarded, self._params, self._on_open = conn, guarded, params, on_open
        self._pending = True

    def run_first(self, statements: Sequence[tuple[str | sql.Composable, dict]]) -> list[list[tuple]] | None:
        """The opening and `statements` (the transaction's first) in ONE message, each
        statement the `EXECUTE` of its text prepared on this connection (as reads are,
        `tenant_statement`): each statement's rows. This costs the web process much less
        than a pipeline of the same statements (measured on an insert's four: about 230 µs
        of CPU less per request, of about 530).

        None, with nothing sent, if the opening was sent already or a statement cannot be
        prepared (`_positional_form`). A message stops at its first error and answers only
        that, not which statement raised it. So when it fails with more than one statement,
        the transaction is rolled back and None answered, the opening pending again, for
        the caller to send the same statements in a pipeline, whose answers tell (an
        insert's verdicts answer before an invariant whose evaluation failed); but the
        error is raised as it is (the caller rolls back) where that tells all there is: the
        statement was alone, the guard refused (`TenantChanged`), the statement timeout
        struck, the transaction lost a race (`retried` runs it again, after its pause), or
        a constraint refused the write (only a write can break one, and nothing of it
        answers then)."""
        if not self._pending:
            return None
        prepared = []
        for query, params in statements:
            if not isinstance(query, str):
                query = query.as_string(None)
            form = _positional_form(query)
            if form is None:
                return None
            prepared.append((query, form, params))
        self._pending = False
        try:
            rows = _begin(self._conn, self._guarded, self._params, prepared)
        except psycopg.Error as exc:
            state = getattr(exc, "sqlstate", None) or ""
            # errors only a statement after the guard and the switch can raise: the guard held
            after_switch = state == QUERY_CANCELED or state in RETRYABLE or state.startswith("23")
            if len(prepared) == 1 or after_switch or self._conn.closed:
                if after_switch and self._on_open is not None:
                    self._on_open()
                raise
            # rolled back by `_begin` (and its prepared statements resynced) if any was new;
            # otherwise they are there, or known gone with psycopg's (`_PsycopgStatements`)
            if self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                _rollback(self._conn)
                if self._conn.closed:
                    raise
            self._pending = True
            return None
        if self._on_open is not None:
            self._on_open()
        return rows

    def take_opening(self) -> list[tuple[str, tuple | None]]:
        """The opening's statements, to be sent first in the caller's pipeline ([] if it
        was sent already); the caller must then call `opened()`."""
        if not self._pending:
            return []
        self._pending = False
        statements: list[tuple[str, tuple | None]] = [("BEGIN", None)]
        if self._guarded:
            statements.append((_GUARD, self._params[:-3]))
        statements.append((_SWITCH, self._params[-3:]))
        return statements

    def opened(self, ran: Sequence[bool], error: BaseException | None = None) -> None:
        """The pipeline carrying the opening has run, maybe failing with `error`; `ran`:
        which of the opening's statements answered (one flag each). `TenantChanged` if the guard refused
        (nothing else ran). The guard counts as checked (`on_open`) only if it answered:
        after any other failure before it, the facts are still to be checked."""
        if error is not None and _changed(error):
            raise TenantChanged() from None
        if ran[1 if self._guarded else 0] and self._on_open is not None:
            self._on_open()

    def __getattr__(self, name: str):
        if self._pending:
            self._pending = False
            _begin(self._conn, self._guarded, self._params)
            if self._on_open is not None:
                self._on_open()
        return getattr(self._conn, name)


def _begin(conn: psycopg.Connection, guarded: bool, params: tuple,
           statements: Sequence[tuple[str, tuple[str, tuple[str, ...]], dict]] = ()) -> list[list[tuple]]:
    """`BEGIN` and the switch, one message, with `statements` (query, its positional form,
    its parameters) after them as `EXECUTE`s of statements prepared on this connection:
    their rows, one list each. Sent once more if the connection lost a prepared statement
    (26000: see "One statement in one message")."""
    for attempt in (1, 2):
        parts, fresh = _switch_parts(conn, guarded)
        values = list(params)
        answers = []        # the place of each statement's EXECUTE among the parts
        for query, (text, names), statement_params in statements:
            fresh = _add_execute(conn, query, text, len(names), parts) or fresh
            answers.append(len(parts) - 1)
            values.extend(statement_params[n] for n in names)
        try:
            cursor = ClientCursor(conn)
            cursor.execute(_BEGIN + "; ".join(parts), values, prepare=False)
            return _answers(cursor, answers) if answers else []
        except psycopg.Error as exc:
            lost = getattr(exc, "sqlstate", None) == "26000"
            if (fresh or lost) and not conn.closed:
                _rollback(conn)
                _resync(conn)
            if _changed(exc):
                raise TenantChanged() from None
            if not lost or attempt == 2:
                raise


def _answers(cursor: psycopg.Cursor, places: list[int]) -> list[list[tuple]]:
    """The rows of the results at these places (after `BEGIN`, the message's first) of a
    message's results, in order."""
    rows: list[list[tuple]] = []
    wanted = iter(places)
    following = next(wanted)
    place = -1          # BEGIN
    while True:
        if place == following:
            rows.append(cursor.fetchall() if cursor.pgresult.status == TUPLES_OK else [])
            following = next(wanted, None)
            if following is None:
                return rows
        if not cursor.nextset():
            raise psycopg.InterfaceError("a message answered fewer results than it had statements")
        place += 1


def _rollback(conn: psycopg.Connection) -> None:
    """Roll back, never hiding the exception that led here: a broken connection is the
    pool's to discard."""
    try:
        conn.rollback()
    except psycopg.Error:
        pass


# One statement in one message ---------------------------------------------------------
#
# A pooled connection keeps the reads it has prepared (`PREPARE plinth_r<n>`), by SQL
# text, least recently used first. The same text for another tenant is fine: Postgres
# parses a prepared statement again when the search path differs from the one it was
# planned under, and checks privileges as the current role on every execution. When the
# connection lost one (a message that failed before its PREPARE ran, or a `DEALLOCATE ALL`
# psycopg did not send: `_PsycopgStatements` tells of those it sends), Postgres answers
# 26000: the list is brought in line with `pg_prepared_statements` and the read sent again
# (a read that failed changed nothing).

READS_PER_CONNECTION = 128
_READ_PREFIX = "plinth_r"
_PLACEHOLDER = re.compile(r"%(?:(%)|\(([^)]+)\)s)")
_positional: dict[str, tuple[str, tuple[str, ...]] | None] = {}


def _positional_form(query: str) -> tuple[str, tuple[str, ...]] | None:
    """`query` with `$1, $2, ...` for its `%(name)s` placeholders (as `PREPARE` takes it,
    `%` doubled for the client-side binding of the message), and the names in order.
    None: the text cannot be prepared; it then runs with server-side binding."""
    found = _positional.get(query, False)
    if found is not False:
        return found
    names: list[str] = []

    def number(match) -> str:
        if match.group(1):
            return "%%"
        name = match.group(2)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _PLACEHOLDER.sub(number, query)
    if len(_positional) > 4096:
        _positional.clear()
    # A `;` could end the statement inside the one simple-query message and start another
    # (`; SET ROLE t_other`). The SQL builder never writes one (names are [A-Za-z0-9_],
    # strings are always bound), so a text with one goes the extended-protocol way, which
    # refuses a second statement: the isolation rule of DESIGN.md holds for this path too.
    preparable = "%" not in text.replace("%%", "") and ";" not in query
    result = _positional[query] = (text, tuple(names)) if preparable else None
    return result


def tenant_statement(tenant_id: str, claims: dict | None, query: str, params: dict,
                     guard: tuple | None = None) -> tuple | None:
    """One statement in its own transaction under the tenant's role, in ONE message: the
    switch and the statement, run by Postgres as one implicit transaction (committed at
    its end, rolled back on an error; the switch's local settings end with it). The
    statement's first row.

    The statement is prepared without parameter types, so each `%(name)s` must have its
    type fixed where it stands (`CAST(%(v)s AS uuid)`, `%(v)s::text`, a function's
    argument), as every statement the data API builds has: a bare `SELECT %(n)s` would
    answer text. A statement Postgres refuses to prepare (a type it cannot settle) runs
    with server-side binding instead, from then on.

    With `guard`, the guard runs first (`TenantChanged`: nothing ran)."""
    switch = _switch_params(tenant_id, claims, guard)
    form = _positional_form(query)
    with runtime_pool().connection() as conn:
        try:
            return _tenant_statement(conn, switch, query, form, params)
        except psycopg.Error as exc:
            if _changed(exc):
                raise TenantChanged() from None
            raise


def _tenant_statement(conn: psycopg.Connection, switch: tuple, query: str, form, params: dict):
    if form is None:
        return _execute_bound(conn, switch, query, params)
    try:
        return _execute_prepared(conn, switch, query, form, params)
    except psycopg.Error as exc:
        state = getattr(exc, "sqlstate", None) or ""
        if state == "26000":              # a prepared statement gone: resync, send again
            _resync(conn)
            return _execute_prepared(conn, switch, query, form, params)
        if not state.startswith("42") or conn.closed:
            raise
        # a statement Postgres could not analyse as prepared (or that is wrong either
        # way): with server-side binding, whose error, if any, is the one to answer
        row = _execute_bound(conn, switch, query, params)
        _positional[query] = None
        return row


def _execute_bound(conn: psycopg.Connection, switch: tuple, query: str, params: dict):
    """Not prepared by psycopg (`prepare=False`): in this pipeline, outside a transaction,
    a statement psycopg prepared on its sixth run after an earlier one failed (the guard
    refusing) would be recorded as prepared but never be, and no rollback would follow
    to repair that: each later run of it on the connection would fail (26000)."""
    with conn.pipeline():
        if len(switch) > 3:
            conn.execute(_GUARD, switch[:-3], prepare=False)
        conn.execute(_SWITCH, switch[-3:], prepare=False)
        cursor = conn.execute(query, params, prepare=False)
    return cursor.fetchone()


def _prepared_name(conn: psycopg.Connection, key: str, parts: list[str]) -> tuple[str, bool]:
    """The name `key` (a read's SQL text, or a switch's key) is prepared under on this
    connection, most recently used now, and whether it is new: the message must then carry
    its PREPARE. A new name evicts the least recently used one (its DEALLOCATE added to
    `parts`)."""
    reads = _reads(conn)
    name = reads.get(key)
    if name is not None:
        reads.move_to_end(key)
        return name, False
    if len(reads) >= READS_PER_CONNECTION:
        _, old = reads.popitem(last=False)
        parts.append(f"DEALLOCATE {old}")
    conn._plinth_read_number = number = getattr(conn, "_plinth_read_number", 0) + 1
    name = reads[key] = f"{_READ_PREFIX}{number}"
    return name, True


def _execute_prepared(conn: psycopg.Connection, switch: tuple, query: str, form: tuple, params: dict):
    text, names = form
    parts, fresh_switch = _switch_parts(conn, len(switch) > 3)
    fresh = _add_execute(conn, query, text, len(names), parts)
    cursor = ClientCursor(conn)
    try:
        cursor.execute("; ".join(parts), [*switch, *(params[n] for n in names)], prepare=False)
    except psycopg.Error:
        if (fresh or fresh_switch) and not conn.closed:   # did the PREPAREs run before the error?
            _resync(conn)
        raise
    while cursor.nextset():
        pass
    return cursor.fetchone()


def _reads(conn: psycopg.Connection) -> OrderedDict:
    reads = getattr(conn, "_plinth_reads", None)
    cleared = getattr(conn._prepared, "cleared", 0)     # psycopg deallocated them all
    if reads is None or conn._plinth_cleared != cleared:
        reads = conn._plinth_reads = OrderedDict()
        conn._plinth_cleared = cleared
    return reads


def _resync(conn: psycopg.Connection) -> None:
    """The connection's list of prepared reads as Postgres has them; any Postgres has and the
    list lacks is deallocated."""
    reads = _reads(conn)
    rows = conn.execute("SELECT name FROM pg_prepared_statements WHERE starts_with(name, %s)", [_READ_PREFIX],
                        prepare=False).fetchall()
    there = {name for (name,) in rows}
    for query, name in list(reads.items()):
        if name not in there:
            del reads[query]
    orphans = there - set(reads.values())
    if orphans:
        conn.execute("; ".join(f"DEALLOCATE {name}" for name in sorted(orphans)), prepare=False)
