"""The Postgres shape a definition asks for: tables, columns, constraints and indexes.

`tables_of(definition)` is pure: it decides names, types and constraints, and renders the
DDL for each piece. The planner diffs two of these; the property tests introspect a real
schema and compare it with one. Every identifier goes through `sql.Identifier`.

Naming: a table per entity, named like the entity; a column per field, named like the
field; constraints and indexes `<table>_<column or purpose>_<kind>`, cut to Postgres's 63
bytes with a short hash when longer, so names are stable across pushes. The primary key is
`<table>_pkey` (Postgres's own name) and the trigger keeping `updated_at` `<table>_touch`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal

from psycopg import sql

from runtime.definition.model import DEFAULT_AUTH_ID, DEFAULT_NOW, EMAIL_PATTERN, URL_PATTERN, Definition, Entity, Field

USERS_TABLE = "_users"
SEARCH_COLUMN = "_search"
SEARCH_CONFIG = "english"
# The end user's id, from the claims the runtime sets per transaction (runtime/db.py).
AUTH_ID_SQL = "(nullif(current_setting('request.jwt.claims', true)::jsonb ->> 'sub', ''))::uuid"


def constraint_name(table: str, *parts: str) -> str:
    name = "_".join((table, *parts))
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return name.encode()[:54].decode(errors="ignore") + "_" + digest


def pkey_name(table: str) -> str:
    return f"{table}_pkey"  # what Postgres calls it; entity names are short enough to keep whole


def trigger_name(table: str) -> str:
    return constraint_name(table, "touch")


@dataclass(frozen=True)
class Check:
    name: str
    sql: str   # a boolean SQL expression over the row's columns (rendered, no parameters)
    kind: str  # what it holds: enum, min, max, min_length, max_length, pattern, email, url


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str
    on_delete: str  # RESTRICT | CASCADE | SET NULL


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None = None          # rendered SQL
    unique: str | None = None           # constraint name
    checks: tuple[Check, ...] = ()
    fk: ForeignKey | None = None
    index: str | None = None            # index name
    source: Field | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, Column]
    uniques: dict[str, tuple[str, ...]] = field(default_factory=dict)   # name -> columns
    indexes: dict[str, tuple[str, ...]] = field(default_factory=dict)   # name -> columns
    search: tuple[str, ...] = ()
    entity: Entity | None = None


def quote_literal(value) -> str:
    """Render a definition literal for DDL (defaults, CHECKs): numbers, strings, booleans."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return repr(value) if not isinstance(value, Decimal) else str(value)
    if isinstance(value, (dict, list)):
        return quote_literal(json.dumps(value)) + "::jsonb"
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def column_type(f: Field) -> str:
    if f.type == "string":
        return f"varchar({f.max_length or 255})"
    if f.type == "email":
        return f"varchar({f.max_length or 254})"
    if f.type in ("text", "url", "enum"):
        return "text"
    if f.type == "integer":
        return "bigint"
    if f.type == "decimal":
        if f.precision:
            return f"numeric({f.precision},{f.scale or 0})"
        return "numeric"
    if f.type == "float":
        return "double precision"
    if f.type == "datetime":
        return "timestamp with time zone"
    if f.type == "json":
        return "jsonb"
    if f.type in ("uuid", "ref", "user"):
        return "uuid"
    return f.type  # boolean, date


def _default_sql(f: Field) -> str | None:
    if not f.has_default:
        return None
    if f.default == DEFAULT_NOW and f.type in ("date", "datetime"):
        return "CURRENT_DATE" if f.type == "date" else "now()"
    if f.default == DEFAULT_AUTH_ID and f.type in ("user", "uuid"):
        return AUTH_ID_SQL
    if f.type == "json":  # any JSON value, a bare string or number included
        return quote_literal(json.dumps(f.default)) + "::jsonb"
    return quote_literal(f.default)


def _field_checks(table: str, f: Field) -> tuple[Check, ...]:
    col = ident(f.name)
    rules: list[tuple[str, str]] = []  # (kind, SQL)
    if f.type == "enum" and f.values:
        rules.append(("enum", f"{col} IN ({', '.join(quote_literal(v) for v in f.values)})"))
    if f.min is not None:
        rules.append(("min", f"{col} >= {quote_literal(f.min)}"))
    if f.max is not None:
        rules.append(("max", f"{col} <= {quote_literal(f.max)}"))
    if f.min_length is not None:
        rules.append(("min_length", f"char_length({col}) >= {int(f.min_length)}"))
    if f.max_length is not None and f.type in ("text", "url", "enum"):
        rules.append(("max_length", f"char_length({col}) <= {int(f.max_length)}"))
    if f.pattern:
        rules.append(("pattern", f"{col} ~ {quote_literal(f.pattern)}"))
    if f.type == "email":
        rules.append(("email", f"{col} ~* {quote_literal(EMAIL_PATTERN)}"))
    if f.type == "url":
        rules.append(("url", f"{col} ~* {quote_literal(URL_PATTERN)}"))
    return tuple(Check(constraint_name(table, f.name, kind), rule, kind) for kind, rule in rules)


def _on_delete(f: Field, declared: dict) -> str:
    # A `user` field without an explicit on_delete follows its user: rows go with a deleted
    # end user when the field is required, and lose the link otherwise.
    choice = declared.get("on_delete") if isinstance(declared, dict) else None
    if f.type == "user" and choice is None:
        choice = "cascade" if f.required else "set_null"
    return {"restrict": "RESTRICT", "cascade": "CASCADE", "set_null": "SET NULL"}[choice or f.on_delete]


def _column(table: str, f: Field, declared: dict, state_field: bool = False) -> Column:
    if f.system:
        if f.name == "id":
            return Column("id", "uuid", False, "gen_random_uuid()", source=f)
        return Column(f.name, "timestamp with time zone", False, "now()", source=f)
    fk = None
    if f.type in ("ref", "user"):
        target = f.to if f.type == "ref" else USERS_TABLE
        fk = ForeignKey(constraint_name(table, f.name, "fkey"), target, _on_delete(f, declared))
    return Column(
        name=f.name,
        type=column_type(f),
        # a state machine is always in some state
        nullable=not (f.required or state_field),
        default=_default_sql(f),
        unique=constraint_name(table, f.name, "key") if f.unique else None,
        checks=_field_checks(table, f),
        fk=fk,
        # references are indexed: joins, embeds and ON DELETE checks read them
        index=constraint_name(table, f.name, "idx") if (f.index or fk) and not f.unique else None,
        source=f,
    )


def table_of(entity: Entity, declared: dict | None = None) -> Table:
    declared_fields = (declared or {}).get("fields", {}) if isinstance(declared, dict) else {}
    state_field = entity.states.field if entity.states else None
    columns = {
        name: _column(
            entity.name, f, declared_fields.get(name, {}) if isinstance(declared_fields, dict) else {},
            state_field=name == state_field,
        )
        for name, f in entity.fields.items()
    }
    # Keys that say again what a field option or the primary key says (`unique: [[a]]` next
    # to `a: {unique: true}`, an index on a column that a unique key or a reference already
    # indexes) are made once. A key whose name another object already has (a field `a_b`
    # and a key on (a, b) are both `<table>_a_b_...`) gets a hash of its columns in its name.
    used = {name for c in columns.values() for name in _column_object_names(c)}
    unique_keys = {("id",)} | {(c.name,) for c in columns.values() if c.unique}
    indexed = unique_keys | {(c.name,) for c in columns.values() if c.index}
    uniques: dict[str, tuple[str, ...]] = {}
    for cols in dict.fromkeys(tuple(cols) for cols in entity.unique):
        if cols not in unique_keys:
            uniques[_key_name(entity.name, cols, "key", used)] = cols
            unique_keys.add(cols)
    indexes: dict[str, tuple[str, ...]] = {}
    for cols in dict.fromkeys(tuple(cols) for cols in entity.indexes):
        if cols not in indexed and cols not in unique_keys:
            indexes[_key_name(entity.name, cols, "idx", used)] = cols
            indexed.add(cols)
    if entity.search:
        indexes[constraint_name(entity.name, SEARCH_COLUMN, "idx")] = (SEARCH_COLUMN,)
    return Table(entity.name, columns, uniques, indexes, tuple(entity.search), entity)


def _column_object_names(c: Column) -> list[str]:
    return [name for name in (c.unique, c.index, c.fk.name if c.fk else None) if name] + [ch.name for ch in c.checks]


def _key_name(table: str, cols: tuple[str, ...], kind: str, used: set[str]) -> str:
    name = constraint_name(table, *cols, kind)
    if name in used:
        name = constraint_name(table, *cols, hashlib.sha1("\0".join(cols).encode()).hexdigest()[:8], kind)
    used.add(name)
    return name


def tables_of(definition: Definition) -> dict[str, Table]:
    raw = definition.source.get("entities", {}) if isinstance(definition.source, dict) else {}
    return {name: table_of(e, raw.get(name) if isinstance(raw, dict) else None) for name, e in definition.entities.items()}


# DDL ------------------------------------------------------------------------------------


def search_expression(table: Table) -> str:
    parts = " || ' ' || ".join(f"coalesce({ident(c)}::text, '')" for c in table.search)
    return f"to_tsvector('{SEARCH_CONFIG}'::regconfig, {parts})"


def column_ddl(c: Column) -> str:
    """The column definition inside CREATE TABLE / ADD COLUMN, without FKs and checks."""
    parts = [ident(c.name), c.type]
    if c.name == "id":
        parts.append("PRIMARY KEY")
    if c.default is not None:
        parts.append(f"DEFAULT {c.default}")
    if not c.nullable and c.name != "id":
        parts.append("NOT NULL")
    return " ".join(parts)


def check_ddl(table: str, check: Check) -> str:
    return f"ALTER TABLE {ident(table)} ADD CONSTRAINT {ident(check.name)} CHECK ({check.sql})"


def unique_ddl(table: str, name: str, columns: tuple[str, ...]) -> str:
    return f"ALTER TABLE {ident(table)} ADD CONSTRAINT {ident(name)} UNIQUE ({', '.join(ident(c) for c in columns)})"


def fk_ddl(table: str, column: str, fk: ForeignKey) -> str:
    return (
        f"ALTER TABLE {ident(table)} ADD CONSTRAINT {ident(fk.name)} FOREIGN KEY ({ident(column)}) "
        f"REFERENCES {ident(fk.table)} (id) ON DELETE {fk.on_delete}"
    )


def index_ddl(table: Table | str, name: str, columns: tuple[str, ...]) -> str:
    table_name = table if isinstance(table, str) else table.name
    if columns == (SEARCH_COLUMN,):
        return f"CREATE INDEX {ident(name)} ON {ident(table_name)} USING gin ({ident(SEARCH_COLUMN)})"
    return f"CREATE INDEX {ident(name)} ON {ident(table_name)} ({', '.join(ident(c) for c in columns)})"


def drop_constraint_ddl(table: str, name: str) -> str:
    return f"ALTER TABLE {ident(table)} DROP CONSTRAINT IF EXISTS {ident(name)}"


def drop_index_ddl(name: str) -> str:
    return f"DROP INDEX IF EXISTS {ident(name)}"


def search_column_ddl(table: Table) -> str:
    return (
        f"ALTER TABLE {ident(table.name)} ADD COLUMN {ident(SEARCH_COLUMN)} tsvector "
        f"GENERATED ALWAYS AS ({search_expression(table)}) STORED"
    )


def create_table_ddl(table: Table) -> list[str]:
    """CREATE TABLE with columns, NOT NULLs and defaults; constraints as separate statements
    (so that tables referencing each other can all be created before any FK is added)."""
    statements = [
        f"CREATE TABLE {ident(table.name)} ({', '.join(column_ddl(c) for c in table.columns.values())})",
        f"CREATE TRIGGER {ident(trigger_name(table.name))} BEFORE UPDATE ON {ident(table.name)} "
        f"FOR EACH ROW EXECUTE FUNCTION _plinth_touch()",
    ]
    for c in table.columns.values():
        statements += [check_ddl(table.name, ch) for ch in c.checks]
        if c.unique:
            statements.append(unique_ddl(table.name, c.unique, (c.name,)))
        if c.index:
            statements.append(index_ddl(table, c.index, (c.name,)))
    for name, cols in table.uniques.items():
        statements.append(unique_ddl(table.name, name, cols))
    if table.search:
        statements.append(search_column_ddl(table))
    for name, cols in table.indexes.items():
        statements.append(index_ddl(table, name, cols))
    return statements


def foreign_keys_ddl(table: Table) -> list[str]:
    return [fk_ddl(table.name, c.name, c.fk) for c in table.columns.values() if c.fk]
