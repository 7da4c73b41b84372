"""`plan_migration`: the labelled schema changes that take a tenant from its live definition
to a new one, each with the SQL it will run.

Labels (docs/definition.md, Migrations):
- additive: new entity, field, index, relation, looser constraint; applied directly;
- rename: `renamed_from` on an entity or field; data kept;
- backfill: a new required field on a table with rows, filled from its default;
- destructive: removing an entity or field, narrowing a type, removing an enum value in
  use, tightening a constraint that existing rows break; refused without
  `allow_destructive`, and reported with the number of rows affected.
A change Postgres could not make with the rows there are (a required field without a
default, a unique key over duplicates, a type the values cannot take) is an error instead.

The planner compares definitions (the live one is stored with its version), not the
introspected catalog; the property tests hold the two together. Row counts come from a
`Probe` (a callable running a COUNT in the tenant's schema), asked only when a change
needs one, so planning without rows to look at (an empty schema, the benchmark) is pure.
Counts run before anything is applied, against a view of each kept table as this push
will see it: renamed tables and columns under their new names, new columns holding what
adding them writes (their default, or NULL).

Named objects (constraints, indexes, the trigger) are compared by the slot they fill (the
check `min` of column `qty`, the unique key on `(a, b)`), not by name: an object that stays
the same under a new name (its table or column was renamed) is renamed, never rebuilt.

A plan runs in phases, so that no statement trips on another: what goes away first (under
the names it has before the push), then renames, then everything that builds, new tables
first, and removed tables last.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from runtime.definition.model import Definition, DefinitionError, pointer
from runtime.migrations import tables as T

Probe = Callable[[str], int]  # SQL returning one integer, run in the tenant's schema

ADDITIVE, RENAME, BACKFILL, DESTRUCTIVE = "additive", "rename", "backfill", "destructive"

_PHASES = {
    "drop_relation": 0, "drop_constraint": 0, "drop_index": 0, "drop_search": 0,
    "drop_field": 1,
    "rename_table": 2, "rename_field": 2, "rename_constraint": 2,
    "drop_table": 4,
}
_BUILD_PHASE = 3


@dataclass
class Change:
    label: str
    op: str
    target: str               # "Order" or "Order.total"
    description: str
    sql: list[str] = field(default_factory=list)
    rows_affected: int | None = None
    path: str = ""            # where in the new definition (or old, for removals)

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "op": self.op,
            "target": self.target,
            "description": self.description,
            "sql": self.sql,
            "rows_affected": self.rows_affected,
        }


@dataclass
class Plan:
    changes: list[Change]
    errors: list[DefinitionError]

    @property
    def destructive(self) -> list[Change]:
        return [c for c in self.changes if c.label == DESTRUCTIVE]

    @property
    def statements(self) -> list[str]:
        return [s for c in self.changes for s in c.sql]

    def as_list(self) -> list[dict]:
        return [c.as_dict() for c in self.changes]


def _no_rows(_sql: str) -> int:
    return 0


def plan_migration(old: Definition | None, new: Definition, probe: Probe | None = None) -> Plan:
    planner = _Planner(T.tables_of(old) if old else {}, T.tables_of(new), probe or _no_rows)
    planner.plan()
    changes = sorted(planner.changes, key=lambda c: _PHASES.get(c.op, _BUILD_PHASE))  # stable
    return Plan(changes, planner.errors)


# named objects --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Named:
    """A constraint, index or trigger of a table, as the diff sees it."""

    kind: str                    # check | unique | index | fkey | trigger | pkey
    name: str
    columns: tuple[str, ...]     # under the names they have after the push
    spec: tuple                  # equal specs: the object stays as it is (renamed, perhaps)
    owner: str | None = None     # the column it is part of (made and dropped with it)
    ddl: str = ""                # the statement making it (objects of the new definition)
    check: T.Check | None = None


def _objects(table: T.Table, column_names: dict[str, str] | None = None,
             table_names: dict[str, str] | None = None) -> dict[tuple, _Named]:
    """Every named object of `table`, keyed by its slot: ('check', column, kind),
    ('unique', columns), ('index', columns), ('fkey', column), ('trigger',), ('pkey',).

    For the old side of a diff, `column_names` and `table_names` map old names to the names
    after the push (renamed columns, renamed referenced tables), so that slots compare."""
    col = (lambda c: column_names.get(c, c)) if column_names else (lambda c: c)
    tbl = (lambda t: table_names.get(t, t)) if table_names else (lambda t: t)
    name = table.name
    objs: dict[tuple, _Named] = {
        ("trigger",): _Named("trigger", T.trigger_name(name), (), ()),
        ("pkey",): _Named("pkey", T.pkey_name(name), ("id",), ()),
    }
    for c in table.columns.values():
        cn = col(c.name)
        for ch in c.checks:
            check = ch if cn == c.name else replace(ch, sql=ch.sql.replace(T.ident(c.name), T.ident(cn)))
            objs[("check", cn, ch.kind)] = _Named("check", ch.name, (cn,), (check.sql,), cn, T.check_ddl(name, ch), check)
        if c.unique:
            objs[("unique", (cn,))] = _Named("unique", c.unique, (cn,), (), cn, T.unique_ddl(name, c.unique, (c.name,)))
        if c.index:
            objs[("index", (cn,))] = _Named("index", c.index, (cn,), ("btree",), cn, T.index_ddl(name, c.index, (c.name,)))
        if c.fk:
            objs[("fkey", cn)] = _Named("fkey", c.fk.name, (cn,), (tbl(c.fk.table), c.fk.on_delete), cn,
                                        T.fk_ddl(name, c.name, c.fk))
    for uname, cols in table.uniques.items():
        key = tuple(col(c) for c in cols)
        objs[("unique", key)] = _Named("unique", uname, key, (), ddl=T.unique_ddl(name, uname, cols))
    for iname, cols in table.indexes.items():
        key = tuple(col(c) for c in cols)
        method = "gin" if cols == (T.SEARCH_COLUMN,) else "btree"
        objs[("index", key)] = _Named("index", iname, key, (method,), ddl=T.index_ddl(table, iname, cols))
    return objs


_SEARCH_INDEX = ("index", (T.SEARCH_COLUMN,))


def _rename_ddl(table: str, obj: _Named, new_name: str) -> str:
    if obj.kind == "trigger":
        return f"ALTER TRIGGER {T.ident(obj.name)} ON {T.ident(table)} RENAME TO {T.ident(new_name)}"
    if obj.kind == "index":
        return f"ALTER INDEX {T.ident(obj.name)} RENAME TO {T.ident(new_name)}"
    # a unique constraint's index is renamed with it
    return f"ALTER TABLE {T.ident(table)} RENAME CONSTRAINT {T.ident(obj.name)} TO {T.ident(new_name)}"


def _untangle(table: str, renames: list[tuple[_Named, _Named, Change]]) -> None:
    """Renames of one table whose new names are old names of others (an index on (a, b)
    making way for the index of a field renamed to `a_b`, or two names swapped) go through
    temporary names: every object first takes a name of its own, then its new one."""
    if not {now.name for _, now, _ in renames} & {was.name for was, _, _ in renames}:
        return
    for i, (was, now, change) in enumerate(renames):
        temporary = replace(was, name=T.constraint_name(table, f"renaming{i}", "tmp"))
        change.sql = [_rename_ddl(table, was, temporary.name)]
        renames[i] = (temporary, now, change)
    # the second step goes with the last of them, so it runs after every first step
    renames[-1][2].sql += [_rename_ddl(table, temporary, now.name) for temporary, now, _ in renames]


def _match_columns(old: T.Table, new: T.Table) -> dict[str, str]:
    """new column -> the old column it continues (same name, or `renamed_from`)."""
    matched = {}
    for name, col in new.columns.items():
        was = col.source.renamed_from if col.source else None
        if name in old.columns:
            matched[name] = name
        elif was and was in old.columns and was not in new.columns:
            matched[name] = was
    return matched


def _source(old: T.Table, new: T.Table, columns: dict[str, str]) -> str:
    """A FROM item showing the old table's rows as this push will: new names, and new
    columns holding what adding them writes into existing rows."""
    if old.name == new.name and all(n == o for n, o in columns.items()) and len(columns) == len(new.columns):
        return T.ident(new.name)
    select = [
        f"{T.ident(columns[name])} AS {T.ident(name)}" if name in columns
        else f"CAST({col.default if col.default is not None else 'NULL'} AS {col.type}) AS {T.ident(name)}"
        for name, col in new.columns.items()
    ]
    return f"(SELECT {', '.join(select)} FROM {T.ident(old.name)}) AS {T.ident(new.name)}"


def _converted(source: str, table: T.Table, conversions: dict[str, str]) -> str:
    """`source` with the columns whose type changes holding their converted values
    (`conversions`: column -> SQL over the columns of `source`)."""
    select = [f"{conversions.get(name, T.ident(name))} AS {T.ident(name)}" for name in table.columns]
    return f"(SELECT {', '.join(select)} FROM {source}) AS {T.ident(table.name)}"


class _Planner:
    def __init__(self, old: dict[str, T.Table], new: dict[str, T.Table], probe: Probe):
        self.old, self.new, self.probe = old, new, probe
        self.changes: list[Change] = []
        self.errors: list[DefinitionError] = []
        self.matched: dict[str, str] = {}               # kept table: new name -> old name
        self.renamed_to: dict[str, str] = {}            # kept table: old name -> new name
        self.columns: dict[str, dict[str, str]] = {}    # kept table -> (new column -> old column)
        self._sources: dict[str, str] = {}             # kept table -> its rows as this push sees them
        self._conversions: dict[str, dict[str, str]] = {}  # kept table -> (column -> its value after a type change)
        self._row_cache: dict[str, int] = {}

    def plan(self) -> None:
        for name, table in self.new.items():
            was = table.entity.renamed_from if table.entity else None
            if name in self.old:
                self.matched[name] = name
            elif was and was in self.old and was not in self.new:
                self.matched[name] = was
        self.renamed_to = {was: name for name, was in self.matched.items()}
        for name, was in self.matched.items():
            self.columns[name] = _match_columns(self.old[was], self.new[name])
            self._sources[name] = _source(self.old[was], self.new[name], self.columns[name])
        created = [t for n, t in self.new.items() if n not in self.matched]
        for name, was in self.matched.items():
            if was != name:
                self.rename_table(was, self.new[name])
        for table in created:
            self.create_table(table)
        for name, was in self.matched.items():
            self.alter_table(self.old[was], self.new[name])
        for table in created:  # after every table exists: tables may reference each other
            self.changes.extend(
                Change(ADDITIVE, "add_relation", f"{table.name}.{c.name}", f"relation {table.name}.{c.name} -> {c.fk.table}",
                       [T.fk_ddl(table.name, c.name, c.fk)], path=_path(c))
                for c in table.columns.values() if c.fk
            )
        dropped = [t for n, t in self.old.items() if n not in self.renamed_to]
        for table in dropped:
            self.drop_table(table, dropped)

    # counting rows ----------------------------------------------------------------------

    def rows(self, table: str) -> int:
        if table not in self._row_cache:
            self._row_cache[table] = self.probe(f"SELECT count(*) FROM {self._sources.get(table, T.ident(table))}")
        return self._row_cache[table]

    def count(self, table: str, where: str) -> int:
        """Rows of `table` (as this push sees it) matching `where`."""
        if self.rows(table) == 0:
            return 0
        return self.probe(f"SELECT count(*) FROM {self._sources.get(table, T.ident(table))} WHERE {where}")

    def duplicates(self, table: str, exprs: tuple[str, ...]) -> int:
        """Rows that repeat another row's values of `exprs` (SQL), NULLs apart."""
        if self.rows(table) == 0:
            return 0
        not_null = " AND ".join(f"{e} IS NOT NULL" for e in exprs)
        return self.probe(
            f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {self._sources.get(table, T.ident(table))} "
            f"WHERE {not_null} GROUP BY {', '.join(exprs)} HAVING count(*) > 1) d"
        )

    def orphans(self, table: str, column: str, target: str) -> int:
        """Rows whose `column` names no row of `target` (as it is before the push)."""
        col = f"{T.ident(table)}.{T.ident(column)}"
        if target in self.new and target not in self.matched:  # created by this push: empty
            return self.count(table, f"{col} IS NOT NULL")
        existing = T.ident(self.matched.get(target, target))
        return self.count(table, f"{col} IS NOT NULL AND {col} NOT IN (SELECT id FROM {existing})")

    # tables -----------------------------------------------------------------------------

    def create_table(self, table: T.Table) -> None:
        self.changes.append(
            Change(ADDITIVE, "create_table", table.name, f"create entity {table.name} ({len(table.columns) - 3} fields)",
                   T.create_table_ddl(table), path=table.entity.path if table.entity else "")
        )

    def rename_table(self, old: str, new: T.Table) -> None:
        self.changes.append(
            Change(RENAME, "rename_table", new.name, f"rename entity {old} to {new.name}; rows are kept",
                   [f"ALTER TABLE {T.ident(old)} RENAME TO {T.ident(new.name)}"],
                   path=new.entity.path if new.entity else "")
        )

    def drop_table(self, table: T.Table, dropped: list[T.Table]) -> None:
        # References into it from other removed tables go first, whichever is dropped first.
        stmts = [
            f"ALTER TABLE IF EXISTS {T.ident(other.name)} DROP CONSTRAINT IF EXISTS {T.ident(c.fk.name)}"
            for other in dropped if other is not table
            for c in other.columns.values() if c.fk and c.fk.table == table.name
        ]
        self.changes.append(
            Change(DESTRUCTIVE, "drop_table", table.name, f"remove entity {table.name} and all its rows",
                   [*stmts, f"DROP TABLE {T.ident(table.name)}"], rows_affected=self.rows(table.name),
                   path=pointer("entities", table.name))
        )

    def alter_table(self, old: T.Table, new: T.Table) -> None:
        name = new.name
        columns = self.columns[name]
        new_name_of = {was: now for now, was in columns.items()}
        for now, was in columns.items():
            if now != was:
                self.changes.append(Change(
                    RENAME, "rename_field", f"{name}.{now}", f"rename {name}.{was} to {now}; values are kept",
                    [f"ALTER TABLE {T.ident(name)} RENAME COLUMN {T.ident(was)} TO {T.ident(now)}"],
                    path=_path(new.columns[now]),
                ))
        dropped = [c for c in old.columns.values() if c.name not in new_name_of]
        added = [c for c in new.columns.values() if c.name not in columns]
        retyped = {now for now, was in columns.items() if old.columns[was].type != new.columns[now].type}
        old_search = tuple(new_name_of.get(c, c) for c in old.search)
        # The generated search column pins the types of the columns it reads.
        rebuild_search = old_search != new.search or bool(retyped & set(new.search))
        if rebuild_search and old.search:
            self.changes.append(Change(
                ADDITIVE, "drop_search", name, f"drop full-text search on ({', '.join(old_search)})",
                [f"ALTER TABLE {T.ident(old.name)} DROP COLUMN {T.ident(T.SEARCH_COLUMN)}"],
                path=pointer("entities", name, "search"),
            ))
        for col in dropped:
            self.drop_column(old.name, col)

        old_objs = _objects(old, new_name_of, self.renamed_to)
        new_objs = _objects(new)
        gone = {c.name for c in dropped}
        fresh = {c.name for c in added}
        to_add: list[tuple[_Named | None, _Named]] = []
        renames: list[tuple[_Named, _Named, Change]] = []
        for key in dict.fromkeys([*old_objs, *new_objs]):
            was, now = old_objs.get(key), new_objs.get(key)
            if key == _SEARCH_INDEX and rebuild_search:
                continue  # goes and comes with the search column
            if was and now and was.spec == now.spec:
                if was.name != now.name:
                    change = Change(
                        RENAME, "rename_constraint", _target(name, now), f"rename {was.name} to {now.name}",
                        [_rename_ddl(name, was, now.name)], path=self._path(new, now),
                    )
                    renames.append((was, now, change))
                    self.changes.append(change)
                continue
            if was and was.owner not in gone:  # a dropped column takes its own objects along
                self.drop_object(old.name, name, was, new)
            if now and now.owner not in fresh:  # a new column brings its own objects
                to_add.append((was, now))

        _untangle(name, renames)
        for now, was in columns.items():
            self.alter_column(name, old.columns[was], new.columns[now])
        if self._conversions.get(name):  # rules on changed columns are counted on the new values
            self._sources[name] = _converted(self._sources[name], new, self._conversions[name])
        for col in added:
            self.add_column(new, col)
        for was, now in to_add:
            self.add_object(new, was, now)
        if rebuild_search and new.search:
            self.changes.append(Change(
                ADDITIVE, "add_search", name, f"full-text search on ({', '.join(new.search)})",
                [T.search_column_ddl(new), new_objs[_SEARCH_INDEX].ddl], path=pointer("entities", name, "search"),
            ))

    # named objects ----------------------------------------------------------------------

    def _path(self, table: T.Table, obj: _Named) -> str:
        if obj.owner and obj.owner in table.columns:
            return _path(table.columns[obj.owner])
        if obj.kind == "unique":
            return pointer("entities", table.name, "unique")
        if obj.kind == "index":
            return pointer("entities", table.name, "indexes")
        return table.entity.path if table.entity else ""

    def drop_object(self, old_table: str, table: str, obj: _Named, new: T.Table) -> None:
        """Drop under the names before the push: drops run before renames."""
        target, path, cols = _target(table, obj), self._path(new, obj), ", ".join(obj.columns)
        if obj.kind == "fkey":
            change = Change(ADDITIVE, "drop_relation", target, f"drop relation {target} -> {obj.spec[0]}",
                            [T.drop_constraint_ddl(old_table, obj.name)], path=path)
        elif obj.kind == "index":
            change = Change(ADDITIVE, "drop_index", target, f"drop index ({cols})", [T.drop_index_ddl(obj.name)], path=path)
        elif obj.kind == "unique":
            description = f"{target} no longer unique" if obj.owner else f"drop unique ({cols})"
            change = Change(ADDITIVE, "drop_constraint", target, description,
                            [T.drop_constraint_ddl(old_table, obj.name)], path=path)
        else:
            change = Change(ADDITIVE, "drop_constraint", target, f"drop rule {obj.name}",
                            [T.drop_constraint_ddl(old_table, obj.name)], path=path)
        self.changes.append(change)

    def add_object(self, new: T.Table, was: _Named | None, obj: _Named) -> None:
        table = new.name
        target, path, cols = _target(table, obj), self._path(new, obj), ", ".join(obj.columns)
        if obj.kind == "check":
            column = new.columns[obj.owner]
            broken = self.count(table, f"NOT ({obj.check.sql})")
            self._tighten(target, path, "add_check", f"rule {obj.name}: {obj.check.sql}", broken, [obj.ddl],
                          fix=_check_fix(table, column, obj.check))
        elif obj.kind == "unique":
            description = f"make {target} unique" if obj.owner else f"unique ({cols})"
            dupes = self.duplicates(table, tuple(T.ident(c) for c in obj.columns))
            self._tighten(target, path, "add_unique", description, dupes, [obj.ddl])
        elif obj.kind == "index":
            self.changes.append(Change(ADDITIVE, "add_index", target, f"index ({cols})", [obj.ddl], path=path))
        elif obj.kind == "fkey":
            refers_to, on_delete = obj.spec
            broken = 0 if was and was.spec[0] == refers_to else self.orphans(table, obj.owner, refers_to)
            self._tighten(target, path, "add_relation", f"relation {target} -> {refers_to} on delete {on_delete.lower()}",
                          broken, [obj.ddl])

    def _tighten(self, target, path, op, description, broken, stmts, fix: tuple[str, str] | None = None) -> None:
        """A constraint that may be tighter than before: additive when no row breaks it;
        destructive when rows break it and the planner can make them comply (`fix`: the
        statement, and what it does in words); otherwise an error asking to fix the data."""
        if not broken:
            self.changes.append(Change(ADDITIVE, op, target, description, stmts, path=path))
        elif fix:
            self.changes.append(Change(DESTRUCTIVE, op, target, f"{description}; {broken} rows break it and are {fix[1]}",
                                       [fix[0], *stmts], rows_affected=broken, path=path))
        else:
            self.errors.append(DefinitionError(
                "migration.constraint_violated", path,
                f"{description}: {broken} existing rows break it; change them first, then push again",
            ))

    # columns ----------------------------------------------------------------------------

    def add_column(self, table: T.Table, col: T.Column) -> None:
        path, target = _path(col), f"{table.name}.{col.name}"
        stmts = [f"ALTER TABLE {T.ident(table.name)} ADD COLUMN {T.column_ddl(col)}"]
        stmts += [T.check_ddl(table.name, ch) for ch in col.checks]
        if col.unique:
            stmts.append(T.unique_ddl(table.name, col.unique, (col.name,)))
        if col.fk:
            stmts.append(T.fk_ddl(table.name, col.name, col.fk))
        if col.index:
            stmts.append(T.index_ddl(table, col.index, (col.name,)))
        fills = _fills(col)
        rows = self.rows(table.name) if fills or not col.nullable else 0
        if rows and not col.nullable and not fills:
            why = ("its default auth.id is nobody during a migration" if col.default is not None
                   else "give it a default to fill them")
            self.errors.append(DefinitionError(
                "migration.required_field_needs_default", path,
                f"{target} is new and required, and {table.name} has {rows} rows: {why} "
                f"(or make it optional, fill it, then make it required)",
            ))
            return
        if rows and fills:
            broken = [ch.name for ch in col.checks if self.count(table.name, f"NOT ({ch.sql})")]
            if col.unique and self.duplicates(table.name, (T.ident(col.name),)):
                broken.append(col.unique)
            if broken:
                self.errors.append(DefinitionError(
                    "migration.constraint_violated", path,
                    f"{target} is new, and its default would break {', '.join(broken)} in the {rows} existing rows: "
                    f"add it without a default, fill it, then add the rule",
                ))
                return
        if rows and not col.nullable:
            self.changes.append(Change(BACKFILL, "add_field", target,
                                       f"add required {target}, filling {rows} existing rows with its default",
                                       stmts, rows_affected=rows, path=path))
        else:
            self.changes.append(Change(ADDITIVE, "add_field", target, f"add field {target}", stmts, path=path))

    def drop_column(self, table: str, col: T.Column) -> None:
        """Under the table's name before the push: drops run before renames."""
        target = f"{self.renamed_to[table]}.{col.name}"
        affected = self.probe(f"SELECT count(*) FROM {T.ident(table)} WHERE {T.ident(col.name)} IS NOT NULL") \
            if self.rows(self.renamed_to[table]) else 0
        self.changes.append(
            Change(DESTRUCTIVE, "drop_field", target, f"remove field {target} and its values",
                   [f"ALTER TABLE {T.ident(table)} DROP COLUMN {T.ident(col.name)}"], rows_affected=affected,
                   path=_path(col))
        )

    def alter_column(self, table: str, old: T.Column, new: T.Column) -> None:
        target, path = f"{table}.{new.name}", _path(new)
        col, tbl = T.ident(new.name), T.ident(table)
        old_default = old.default
        if old.type != new.type:
            if not self.change_type(table, old, new):
                return
            old_default = new.default  # the type change set it
        if old_default != new.default:
            stmt = (f"ALTER TABLE {tbl} ALTER COLUMN {col} SET DEFAULT {new.default}" if new.default is not None
                    else f"ALTER TABLE {tbl} ALTER COLUMN {col} DROP DEFAULT")
            self.changes.append(Change(ADDITIVE, "change_default", target, f"change the default of {target}", [stmt], path=path))
        if old.nullable and not new.nullable:
            nulls = self.count(table, f"{col} IS NULL")
            stmts = []
            if nulls and _fills(new):
                stmts.append(f"UPDATE {tbl} SET {col} = {new.default} WHERE {col} IS NULL")
                label, desc = BACKFILL, f"make {target} required, filling {nulls} empty values with its default"
            elif nulls:
                why = " (its default auth.id is nobody during a migration)" if new.default is not None else ""
                self.errors.append(DefinitionError(
                    "migration.constraint_violated", path,
                    f"{target} cannot become required: {nulls} rows have no value{why}. Give it a default, or fill them first",
                ))
                return
            else:
                label, desc = ADDITIVE, f"make {target} required"
            stmts.append(f"ALTER TABLE {tbl} ALTER COLUMN {col} SET NOT NULL")
            self.changes.append(Change(label, "set_required", target, desc, stmts, rows_affected=nulls or None, path=path))
        elif not old.nullable and new.nullable:
            self.changes.append(Change(ADDITIVE, "drop_required", target, f"make {target} optional",
                                       [f"ALTER TABLE {tbl} ALTER COLUMN {col} DROP NOT NULL"], path=path))

    def change_type(self, table: str, old: T.Column, new: T.Column) -> bool:
        """Plan `old.type` -> `new.type` (its default dropped and set around it, since a
        default is not converted with the values); False, with an error, if it cannot be."""
        target, path = f"{table}.{new.name}", _path(new)
        col, tbl = T.ident(new.name), T.ident(table)
        change = _type_change(old, new)
        # what the rules of the column see: the converted values, or nothing if there are none
        self._conversions.setdefault(table, {})[new.name] = f"NULL::{new.type}"
        old_type = old.source.type if old.source else old.type
        new_type = new.source.type if new.source else new.type
        affected = None
        if change.kind == "incompatible":
            values = self.count(table, f"{col} IS NOT NULL")
            if values:
                self.errors.append(DefinitionError(
                    "migration.incompatible_type", path,
                    f"{target} cannot change from {old_type} to {new_type} in place ({values} rows have a value): "
                    f"add a new field, copy the data, then remove the old one",
                ))
                return False
            using = f"NULL::{new.type}"
        else:
            using = change.using
            over = self.count(table, change.overflow) if change.overflow else 0
            if over:
                self.errors.append(DefinitionError(
                    "migration.constraint_violated", path,
                    f"{target} cannot change to {new.type}: {over} values do not fit it; change them first, then push again",
                ))
                return False
            if change.kind == "narrow":
                affected = self.count(table, change.lossy) if change.lossy else 0
                if affected and new.unique and self.duplicates(table, (using,)):
                    self.errors.append(DefinitionError(
                        "migration.constraint_violated", path,
                        f"{target} is unique, and changing it to {new.type} would make values equal; change them first",
                    ))
                    return False
        self._conversions[table][new.name] = using
        stmts = [f"ALTER TABLE {tbl} ALTER COLUMN {col} DROP DEFAULT"] if old.default is not None else []
        stmts.append(f"ALTER TABLE {tbl} ALTER COLUMN {col} TYPE {new.type} USING {using}")
        if new.default is not None:
            stmts.append(f"ALTER TABLE {tbl} ALTER COLUMN {col} SET DEFAULT {new.default}")
        description = f"change {target} to {new.type}" + (f"; {affected} values are {change.loss}" if affected else "")
        self.changes.append(Change(DESTRUCTIVE if affected else ADDITIVE, "change_type", target, description, stmts,
                                   rows_affected=affected, path=path))
        return True


# helpers --------------------------------------------------------------------------------


def _path(col: T.Column) -> str:
    return col.source.path if col.source else ""


def _target(table: str, obj: _Named) -> str:
    return f"{table}.{obj.owner}" if obj.owner else table


def _fills(col: T.Column) -> bool:
    """Whether adding `col` (or making it required) writes a value into existing rows:
    `auth.id` is evaluated per request, and a migration has no end user."""
    return col.default is not None and col.default != T.AUTH_ID_SQL


def _check_fix(table: str, column: T.Column, check: T.Check) -> tuple[str, str] | None:
    """How rows breaking a new check are made to comply, if there is a way that keeps them:
    a removed enum value becomes the default (or nothing), a too long text is cut."""
    tbl, col = T.ident(table), T.ident(column.name)
    if check.kind == "enum" and (column.default is not None or column.nullable):
        value = column.default if column.default is not None else "NULL"
        return f"UPDATE {tbl} SET {col} = {value} WHERE NOT ({check.sql})", f"set to {value}"
    if check.kind == "max_length" and column.source and column.source.max_length is not None:
        n = int(column.source.max_length)
        return f"UPDATE {tbl} SET {col} = left({col}, {n}) WHERE NOT ({check.sql})", f"cut to {n} characters"
    return None


@dataclass(frozen=True)
class _TypeChange:
    kind: str                    # widen | narrow | incompatible
    using: str = ""              # the USING expression
    lossy: str | None = None     # WHERE of the rows whose value changes
    overflow: str | None = None  # WHERE of the rows whose value cannot be converted at all
    loss: str = ""               # what happens to the lossy values, in words


_INCOMPATIBLE = _TypeChange("incompatible")
_TO_TEXT = ("boolean", "date", "timestamp with time zone", "uuid", "jsonb")


def _textual(t: str) -> bool:
    return t == "text" or t.startswith("varchar(")


def _numeric(t: str) -> bool:
    return t in ("bigint", "double precision") or t.startswith("numeric")


def _varchar_len(t: str) -> int | None:
    return int(t[8:-1]) if t.startswith("varchar(") else None


def _precision(t: str) -> tuple[int, int] | None:
    """numeric(p,s) -> (p, s); bigint holds 19 digits; unconstrained numeric -> None."""
    if t == "bigint":
        return 19, 0
    if t.startswith("numeric("):
        p, s = t[8:-1].split(",")
        return int(p), int(s)
    return None


def _type_change(old: T.Column, new: T.Column) -> _TypeChange:
    col = T.ident(new.name)
    o, n = old.type, new.type
    if _textual(o) and _textual(n):
        lo, ln = _varchar_len(o), _varchar_len(n)
        if ln is None or (lo is not None and ln >= lo):
            return _TypeChange("widen", f"{col}::{n}")
        return _TypeChange("narrow", f"left({col}, {ln})::{n}", f"char_length({col}) > {ln}", loss="cut to fit")
    if _textual(o) and n == "jsonb":
        return _TypeChange("widen", f"to_jsonb({col})")  # each text becomes a JSON string, never fails
    if _numeric(o) and _numeric(n):
        return _numeric_change(col, o, n)
    if (_numeric(o) or o in _TO_TEXT) and _textual(n):
        ln = _varchar_len(n)
        if ln is None:
            return _TypeChange("widen", f"{col}::text")
        return _TypeChange("narrow", f"left({col}::text, {ln})::{n}", f"char_length({col}::text) > {ln}", loss="cut to fit")
    if o == "date" and n == "timestamp with time zone":
        return _TypeChange("widen", f"{col}::{n}")
    return _INCOMPATIBLE


def _numeric_change(col: str, o: str, n: str) -> _TypeChange:
    if n == "double precision":
        return _TypeChange("widen", f"{col}::{n}")
    if o == "double precision" or n == "bigint":
        return _INCOMPATIBLE
    to = _precision(n)
    if to is None:  # plain numeric holds any number
        return _TypeChange("widen", f"{col}::{n}")
    frm = _precision(o)
    p, s = to
    if frm is not None and frm[0] - frm[1] <= p - s and frm[1] <= s:
        return _TypeChange("widen", f"{col}::{n}")
    rounds = frm is None or frm[1] > s
    return _TypeChange(
        "narrow", f"{col}::{n}",
        lossy=f"{col} <> round({col}, {s})" if rounds else None,
        overflow=f"abs(round({col}, {s})) >= 1e{p - s}",
        loss="rounded to fit",
    )
