"""The shape of a tenant schema, two ways: read from the Postgres catalog, and derived from
`tables_of(definition)`. The tests compare the two, so the planner (which diffs
definitions, never the catalog) is held to what Postgres really holds.

A shape is a plain dict per table, so a failing comparison prints a readable diff:

    {"columns": {name: (type, not_null, has_default, generated)},
     "checks": {name: (columns...)}, "uniques": {name: (columns...)},
     "fks": {name: (column, target, on_delete)}, "indexes": {name: (method, (columns...))},
     "pkey": name, "triggers": {names}}
"""

from __future__ import annotations

from runtime.migrations import tables as T

# pg_constraint.confdeltype
ON_DELETE = {"r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "a": "NO ACTION", "d": "SET DEFAULT"}


def _pg_type(sql_type: str) -> str:
    """Our DDL spelling to format_type()'s."""
    if sql_type.startswith("varchar("):
        return "character varying" + sql_type[7:]
    return sql_type


def expected_shape(definition) -> dict[str, dict]:
    shape = {}
    for name, table in T.tables_of(definition).items():
        columns, checks, uniques, fks, indexes = {}, {}, {}, {}, {}
        for c in table.columns.values():
            columns[c.name] = (_pg_type(c.type), not c.nullable, c.default is not None, "")
            for ch in c.checks:
                checks[ch.name] = (c.name,)
            if c.unique:
                uniques[c.unique] = (c.name,)
            if c.fk:
                fks[c.fk.name] = (c.name, c.fk.table, c.fk.on_delete)
            if c.index:
                indexes[c.index] = ("btree", (c.name,))
        uniques.update(table.uniques)
        for iname, cols in table.indexes.items():
            indexes[iname] = ("gin" if cols == (T.SEARCH_COLUMN,) else "btree", cols)
        if table.search:
            columns[T.SEARCH_COLUMN] = ("tsvector", False, True, "s")
        shape[name] = {
            "columns": columns, "checks": checks, "uniques": uniques, "fks": fks, "indexes": indexes,
            "pkey": f"{name}_pkey", "triggers": {T.constraint_name(name, "touch")},
        }
    return shape


def actual_shape(cursor, schema: str) -> dict[str, dict]:
    """Read from the catalog (as a role that sees everything); system tables (`_...`) left out."""
    cursor.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname !~ '^_'", [schema])
    shape = {
        row[0]: {"columns": {}, "checks": {}, "uniques": {}, "fks": {}, "indexes": {}, "pkey": None, "triggers": set()}
        for row in cursor.fetchall()
    }
    cursor.execute(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef, a.attgenerated "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", [schema])
    for table, column, type_, not_null, has_default, generated in cursor.fetchall():
        if table in shape:
            shape[table]["columns"][column] = (type_, not_null, has_default, generated)
    cursor.execute(
        "SELECT cl.relname, con.conname, con.contype, "
        " array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o) "
        "       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), "
        " target.relname, con.confdeltype "
        "FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid "
        "JOIN pg_namespace n ON n.oid = cl.relnamespace LEFT JOIN pg_class target ON target.oid = con.confrelid "
        "WHERE n.nspname = %s", [schema])
    for table, name, kind, columns, target, on_delete in cursor.fetchall():
        if table not in shape:
            continue
        s = shape[table]
        if kind == "p":
            assert columns == ["id"], (table, name, columns)
            s["pkey"] = name
        elif kind == "c":
            s["checks"][name] = tuple(columns)
        elif kind == "u":
            s["uniques"][name] = tuple(columns)
        elif kind == "f":
            (column,) = columns
            s["fks"][name] = (column, target, ON_DELETE[on_delete])
        else:  # pragma: no cover - the planner makes no other kinds
            raise AssertionError(f"unexpected constraint {name} ({kind}) on {table}")
    cursor.execute(
        "SELECT t.relname, i.relname, am.amname, "
        " array(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, o) "
        "       JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.o) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_am am ON am.oid = i.relam JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE n.nspname = %s AND NOT EXISTS ("
        " SELECT 1 FROM pg_constraint con WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid"
        " AND con.contype IN ('p', 'u'))", [schema])
    for table, name, method, columns in cursor.fetchall():
        if table in shape:
            shape[table]["indexes"][name] = (method, tuple(columns))
    cursor.execute(
        "SELECT c.relname, tg.tgname FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT tg.tgisinternal", [schema])
    for table, name in cursor.fetchall():
        if table in shape:
            shape[table]["triggers"].add(name)
    return shape
