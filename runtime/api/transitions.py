"""Firing a transition: `POST rest/v1/rpc/<Entity>.<transition>` with `{"id": ...}`, or a
`transition` step of an action, job or workflow.

In order, in the caller's transaction: lock the row (404 if the caller cannot read it);
its access rule (403; skipped for the service key and inside actions, whose own access
decided); the row must be in one of the `from` states (409); the `when` guard (422); the
state changes (the only way it can); the transition's steps run with `record` = the row;
the events `<Entity>.<transition>` and `<Entity>.<new state>` go to the outbox.
"""

from __future__ import annotations

from psycopg import sql

from runtime.api.errors import ApiError, forbidden, not_found

ALIAS = sql.Identifier("r")


def fire(runner, entity_name: str, transition_name: str, row_id, *, check_access: bool) -> str:
    backend = runner.backend
    entity = backend.entities.get(entity_name)
    transition = entity.transitions.get(transition_name) if entity else None
    if transition is None:
        raise not_found(f"No transition '{entity_name}.{transition_name}'.", code="PGRST202")
    if row_id is None:
        raise ApiError(400, "PGRST100", f"{entity_name}.{transition_name} needs the id of a {entity_name}.")
    session = runner.session
    enforce = check_access and session.enforce_access
    visible, params = sql.SQL("true"), {}
    if enforce:
        read = entity.access.get("read")
        visible, params = (read.sql.sql, read.sql.bind(auth=runner.auth)) if read else (sql.SQL("false"), {})
    query = sql.SQL("SELECT {}.{}::text FROM {} AS {} WHERE {}.id = %(_row)s::uuid AND {} FOR UPDATE OF {}").format(
        ALIAS, sql.Identifier(transition.field), sql.Identifier(entity_name), ALIAS, ALIAS, visible, ALIAS)
    # a malformed id fails here as 22P02; the caller turns database errors into answers
    found = runner.conn.execute(query, {**params, "_row": str(row_id)}).fetchone()
    if found is None:
        raise not_found(f"No {entity_name} with id {row_id} that you can see.", code="PGRST116")
    state = found[0]
    if enforce:
        if transition.access is None:
            raise forbidden(f"{entity_name}.{transition_name} has no access rule: only the service key may fire it.")
        if not _holds(runner, entity_name, transition.access, row_id):
            raise forbidden(f"Denied by access of {entity_name}.{transition_name} ({transition.access.path}).",
                            details=transition.access.source)
    if state not in transition.from_states:
        raise ApiError(409, "PT409", f"{entity_name} {row_id} is '{state}'; {transition_name} needs "
                       f"{' or '.join(repr(s) for s in transition.from_states)}.")
    if transition.guard is not None and not _holds(runner, entity_name, transition.guard, row_id):
        raise ApiError(422, "P0001", f"The guard of {entity_name}.{transition_name} does not hold: "
                       f"{transition.guard.source}", details=transition.guard.path)
    session.set_state(entity_name, [str(row_id)], transition.to)
    if transition.steps:
        previous, runner.record = runner.record, str(row_id)
        try:
            runner.run(transition.steps, {})
        finally:
            runner.record = previous
    payload = {"record": {"id": str(row_id)}, "from": state, "to": transition.to}
    runner.outbox.add("event", f"{entity_name}.{transition_name}", payload)
    runner.outbox.add("event", f"{entity_name}.{transition.to}", payload)
    return state


def _holds(runner, entity_name: str, rule, row_id) -> bool:
    query = sql.SQL("SELECT {} FROM {} AS {} WHERE {}.id = %(_row)s::uuid").format(
        rule.sql.sql, sql.Identifier(entity_name), ALIAS, ALIAS)
    row = runner.conn.execute(query, {**rule.sql.bind(auth=runner.auth), "_row": str(row_id)}).fetchone()
    return bool(row and row[0])
