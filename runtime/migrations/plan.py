"""`plan_migration`: the labelled schema changes that take a tenant from its live definition
to a new one, each with the SQL it will run.

Labels (docs/definition.md, Migrations):
- additive: new entity, field, index, relation, looser constraint; applied directly;
- rename: `renamed_from` on an entity or field; data kept;
- backfill: a new required field on a table with rows, filled from its default;
- destructive: removing an entity or field, narrowing a type, removing an enum value in
  use, tightening a constraint that existing rows break; refused without
  `allow_destructive`, and reported with the number of rows affected.

The planner compares definitions (the live one is stored with its version), not the
introspected catalog; the property tests hold the two together. Row counts come from a
`Probe` (a callable running a COUNT in the tenant's schema), asked only when a change
needs one, so planning without rows to look at (an empty schema, the benchmark) is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from runtime.definition.model import Definition, DefinitionError, pointer
from runtime.migrations import tables as T

Probe = Callable[[str], int]  # SQL returning one integer, run in the tenant's schema

ADDITIVE, RENAME, BACKFILL, DESTRUCTIVE = "additive", "rename", "backfill", "destructive"


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
    probe = probe or _no_rows
    old_tables = T.tables_of(old) if old else {}
    new_tables = T.tables_of(new)
    planner = _Planner(probe)

    # entity renames first: a renamed entity is compared with its old self
    matched: dict[str, str] = {}  # new name -> old name
    for name, table in new_tables.items():
        entity = new.entities[name]
        if name in old_tables:
            matched[name] = name
        elif entity.renamed_from and entity.renamed_from in old_tables and entity.renamed_from not in new_tables:
            matched[name] = entity.renamed_from
            planner.rename_table(entity.renamed_from, name, entity.path)

    created = [t for n, t in new_tables.items() if n not in matched]
    for table in created:
        planner.create_table(table)
    for name, old_name in matched.items():
        planner.alter_table(old_tables[old_name], new_tables[name], renamed=old_name != name)
    # FKs after every table exists (tables may reference each other)
    for table in created:
        planner.changes.extend(
            Change(ADDITIVE, "add_relation", f"{table.name}.{c.name}", f"relation {table.name}.{c.name} -> {c.fk.table}",
                   [T.fk_ddl(table.name, c.name, c.fk)], path=c.source.path if c.source else "")
            for c in table.columns.values() if c.fk
        )
    kept_old = set(matched.values())
    for name, table in old_tables.items():
        if name not in kept_old:
            planner.drop_table(table)
    return Plan(planner.ordered(), planner.errors)


class _Planner:
    def __init__(self, probe: Probe):
        self.probe = probe
        self.changes: list[Change] = []
        self.errors: list[DefinitionError] = []
        self._row_cache: dict[str, int] = {}

    def ordered(self) -> list[Change]:
        # Drops of constraints and relations run before anything that could trip on them;
        # table drops run last (after the FKs pointing at them are gone).
        rank = {"drop_relation": 0, "drop_constraint": 1, "drop_index": 1}
        last = {"drop_table": 9}
        return sorted(self.changes, key=lambda c: rank.get(c.op, last.get(c.op, 5)))

    def rows(self, table: str) -> int:
        if table not in self._row_cache:
            self._row_cache[table] = self.probe(f"SELECT count(*) FROM {T.ident(table)}")
        return self._row_cache[table]

    def count(self, table: str, where: str) -> int:
        if self.rows(table) == 0:
            return 0
        return self.probe(f"SELECT count(*) FROM {T.ident(table)} WHERE {where}")

    # tables -----------------------------------------------------------------------------

    def create_table(self, table: T.Table) -> None:
        self.changes.append(
            Change(ADDITIVE, "create_table", table.name, f"create entity {table.name} ({len(table.columns) - 3} fields)",
                   T.create_table_ddl(table), path=table.entity.path if table.entity else "")
        )

    def rename_table(self, old: str, new: str, path: str) -> None:
        self.changes.append(
            Change(RENAME, "rename_table", new, f"rename entity {old} to {new}; rows are kept",
                   [f"ALTER TABLE {T.ident(old)} RENAME TO {T.ident(new)}"], path=path)
        )

    def drop_table(self, table: T.Table) -> None:
        self.changes.append(
            Change(DESTRUCTIVE, "drop_table", table.name, f"remove entity {table.name} and all its rows",
                   [f"DROP TABLE {T.ident(table.name)}"], rows_affected=self.rows(table.name),
                   path=pointer("entities", table.name))
        )

    def alter_table(self, old: T.Table, new: T.Table, renamed: bool) -> None:
        name = new.name
        if renamed:  # constraint names carry the table name: rename them along
            for kind_old, kind_new in _renamed_constraints(old, new):
                self.changes.append(Change(RENAME, "rename_constraint", name, f"rename {kind_old} to {kind_new}",
                                           [_rename_constraint_or_index(name, kind_old, kind_new)]))
            old = _with_names_of(old, new)
        matched: dict[str, str] = {}
        for col_name, col in new.columns.items():
            f = col.source
            if col_name in old.columns:
                matched[col_name] = col_name
            elif f and f.renamed_from and f.renamed_from in old.columns and f.renamed_from not in new.columns:
                matched[col_name] = f.renamed_from
                self.changes.append(
                    Change(RENAME, "rename_field", f"{name}.{col_name}", f"rename {name}.{f.renamed_from} to {col_name}; values are kept",
                           [f"ALTER TABLE {T.ident(name)} RENAME COLUMN {T.ident(f.renamed_from)} TO {T.ident(col_name)}"],
                           path=f.path)
                )
                for kind_old, kind_new in _renamed_column_constraints(old.columns[f.renamed_from], col):
                    self.changes.append(Change(RENAME, "rename_constraint", f"{name}.{col_name}", f"rename {kind_old} to {kind_new}",
                                               [_rename_constraint_or_index(name, kind_old, kind_new)]))
        for col_name, old_name in matched.items():
            old_col = _renamed_column(old.columns[old_name], new.columns[col_name])
            self.alter_column(name, old_col, new.columns[col_name])
        for col_name, col in new.columns.items():
            if col_name not in matched:
                self.add_column(new, col)
        for col_name, col in old.columns.items():
            if col_name not in matched.values():
                self.drop_column(name, col)
        self.alter_table_constraints(old, new)

    # columns ----------------------------------------------------------------------------

    def add_column(self, table: T.Table, col: T.Column) -> None:
        path = col.source.path if col.source else ""
        target = f"{table.name}.{col.name}"
        stmts = [f"ALTER TABLE {T.ident(table.name)} ADD COLUMN {T.column_ddl(col)}"]
        stmts += [T.check_ddl(table.name, ch) for ch in col.checks]
        if col.unique:
            stmts.append(T.unique_ddl(table.name, col.unique, (col.name,)))
        if col.fk:
            stmts.append(T.fk_ddl(table.name, col.name, col.fk))
        if col.index:
            stmts.append(T.index_ddl(table, col.index, (col.name,)))
        rows = self.rows(table.name) if not col.nullable else 0
        if not col.nullable and rows:
            if col.default is None:
                self.errors.append(DefinitionError(
                    "migration.required_field_needs_default", path,
                    f"{target} is new and required, and {table.name} has {rows} rows: give it a default to fill them "
                    f"(or make it optional, fill it, then make it required)",
                ))
                return
            self.changes.append(Change(BACKFILL, "add_field", target,
                                       f"add required {target}, filling {rows} existing rows with its default",
                                       stmts, rows_affected=rows, path=path))
            return
        self.changes.append(Change(ADDITIVE, "add_field", target, f"add field {target}", stmts, path=path))

    def drop_column(self, table: str, col: T.Column) -> None:
        affected = self.count(table, f"{T.ident(col.name)} IS NOT NULL")
        self.changes.append(
            Change(DESTRUCTIVE, "drop_field", f"{table}.{col.name}", f"remove field {table}.{col.name} and its values",
                   [f"ALTER TABLE {T.ident(table)} DROP COLUMN {T.ident(col.name)}"], rows_affected=affected,
                   path=pointer("entities", table, "fields", col.name))
        )

    def alter_column(self, table: str, old: T.Column, new: T.Column) -> None:
        target = f"{table}.{new.name}"
        path = new.source.path if new.source else ""
        col = T.ident(new.name)
        tbl = T.ident(table)
        if old.type != new.type:
            kind, using, broken = _type_change(old, new)
            if kind == "incompatible":
                self.errors.append(DefinitionError(
                    "migration.incompatible_type", path,
                    f"{target} cannot change from {old.source.type if old.source else old.type} to "
                    f"{new.source.type if new.source else new.type} in place: add a new field, copy the data, "
                    f"then remove the old one",
                ))
                return
            affected = self.count(table, broken) if broken else 0
            label = DESTRUCTIVE if kind == "narrow" and affected else ADDITIVE
            self.changes.append(Change(label, "change_type", target, f"change {target} to {new.type}"
                                       + (f"; {affected} values are cut to fit" if affected else ""),
                                       [f"ALTER TABLE {tbl} ALTER COLUMN {col} TYPE {new.type} USING {using}"],
                                       rows_affected=affected if kind == "narrow" else None, path=path))
        if old.default != new.default:
            stmt = (f"ALTER TABLE {tbl} ALTER COLUMN {col} SET DEFAULT {new.default}" if new.default is not None
                    else f"ALTER TABLE {tbl} ALTER COLUMN {col} DROP DEFAULT")
            self.changes.append(Change(ADDITIVE, "change_default", target, f"change the default of {target}", [stmt], path=path))
        if old.nullable and not new.nullable:
            nulls = self.count(table, f"{col} IS NULL")
            stmts = []
            if nulls and new.default is not None:
                stmts.append(f"UPDATE {tbl} SET {col} = {new.default} WHERE {col} IS NULL")
                label, desc = BACKFILL, f"make {target} required, filling {nulls} empty values with its default"
            elif nulls:
                self.errors.append(DefinitionError(
                    "migration.constraint_violated", path,
                    f"{target} cannot become required: {nulls} rows have no value. Give it a default, or fill them first",
                ))
                return
            else:
                label, desc = ADDITIVE, f"make {target} required"
            stmts.append(f"ALTER TABLE {tbl} ALTER COLUMN {col} SET NOT NULL")
            self.changes.append(Change(label, "set_required", target, desc, stmts, rows_affected=nulls or None, path=path))
        elif not old.nullable and new.nullable:
            self.changes.append(Change(ADDITIVE, "drop_required", target, f"make {target} optional",
                                       [f"ALTER TABLE {tbl} ALTER COLUMN {col} DROP NOT NULL"], path=path))
        self._alter_checks(table, old, new, path)
        if old.unique != new.unique:
            if old.unique:
                self.changes.append(Change(ADDITIVE, "drop_constraint", target, f"{target} no longer unique",
                                           [T.drop_constraint_ddl(table, old.unique)], path=path))
            if new.unique:
                dupes = self._duplicates(table, (new.name,))
                self._tighten(table, target, path, "add_unique", f"make {target} unique", dupes,
                              [T.unique_ddl(table, new.unique, (new.name,))])
        if old.fk != new.fk:
            if old.fk:
                self.changes.append(Change(ADDITIVE, "drop_relation", target, f"drop relation {target} -> {old.fk.table}",
                                           [T.drop_constraint_ddl(table, old.fk.name)], path=path))
            if new.fk:
                self.changes.append(Change(ADDITIVE, "add_relation", target, f"relation {target} -> {new.fk.table} on delete {new.fk.on_delete.lower()}",
                                           [T.fk_ddl(table, new.name, new.fk)], path=path))
        if old.index != new.index:
            if old.index:
                self.changes.append(Change(ADDITIVE, "drop_index", target, f"drop index on {target}", [T.drop_index_ddl(old.index)], path=path))
            if new.index:
                self.changes.append(Change(ADDITIVE, "add_index", target, f"index {target}", [T.index_ddl(table, new.index, (new.name,))], path=path))

    def _alter_checks(self, table: str, old: T.Column, new: T.Column, path: str) -> None:
        old_checks = {c.name: c for c in old.checks}
        new_checks = {c.name: c for c in new.checks}
        target = f"{table}.{new.name}"
        for name, check in old_checks.items():
            if new_checks.get(name) != check:
                self.changes.append(Change(ADDITIVE, "drop_constraint", target, f"drop rule {name}",
                                           [T.drop_constraint_ddl(table, name)], path=path))
        for name, check in new_checks.items():
            if old_checks.get(name) != check:
                broken = self.count(table, f"NOT ({check.sql})")
                fix = None
                if name.endswith("_enum") and (new.default is not None or new.nullable):
                    # rows holding a removed value move to the default (or lose the value)
                    value = new.default if new.default is not None else "NULL"
                    fix = (f"UPDATE {T.ident(table)} SET {T.ident(new.name)} = {value} WHERE NOT ({check.sql})",
                           f"set to {value}")
                self._tighten(table, target, path, "add_check", f"rule {name}: {check.sql}", broken,
                              [T.check_ddl(table, check)], fix=fix)

    def _tighten(self, table, target, path, op, description, broken, stmts, fix: tuple[str, str] | None = None) -> None:
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

    def _duplicates(self, table: str, columns: tuple[str, ...]) -> int:
        if self.rows(table) == 0:
            return 0
        cols = ", ".join(T.ident(c) for c in columns)
        not_null = " AND ".join(f"{T.ident(c)} IS NOT NULL" for c in columns)
        return self.probe(
            f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {T.ident(table)} "
            f"WHERE {not_null} GROUP BY {cols} HAVING count(*) > 1) d"
        )

    # table-level constraints and indexes ------------------------------------------------

    def alter_table_constraints(self, old: T.Table, new: T.Table) -> None:
        name = new.name
        for cname, cols in old.uniques.items():
            if new.uniques.get(cname) != cols:
                self.changes.append(Change(ADDITIVE, "drop_constraint", name, f"drop unique ({', '.join(cols)})",
                                           [T.drop_constraint_ddl(name, cname)]))
        for cname, cols in new.uniques.items():
            if old.uniques.get(cname) != cols:
                self._tighten(name, name, pointer("entities", name, "unique"), "add_unique",
                              f"unique ({', '.join(cols)})", self._duplicates(name, cols),
                              [T.unique_ddl(name, cname, cols)])
        if old.search != new.search:
            stmts = []
            if old.search:
                stmts.append(f"ALTER TABLE {T.ident(name)} DROP COLUMN {T.ident(T.SEARCH_COLUMN)}")
            if new.search:
                stmts.append(T.search_column_ddl(new))
            self.changes.append(Change(ADDITIVE, "change_search", name, f"full-text search on ({', '.join(new.search)})",
                                       stmts, path=pointer("entities", name, "search")))
        search_index = T.constraint_name(name, T.SEARCH_COLUMN, "idx")
        for iname, cols in old.indexes.items():
            # the search index goes with its column when search changes
            if new.indexes.get(iname) != cols and not (iname == search_index and old.search != new.search):
                self.changes.append(Change(ADDITIVE, "drop_index", name, f"drop index ({', '.join(cols)})", [T.drop_index_ddl(iname)]))
        for iname, cols in new.indexes.items():
            if old.indexes.get(iname) != cols or (iname == search_index and old.search != new.search):
                self.changes.append(Change(ADDITIVE, "add_index", name, f"index ({', '.join(cols)})", [T.index_ddl(new, iname, cols)],
                                           path=pointer("entities", name, "indexes")))


# helpers --------------------------------------------------------------------------------

_WIDER = {
    ("bigint", "numeric"), ("bigint", "double precision"), ("numeric", "double precision"),
    ("text", "jsonb"),
}


def _varchar_len(t: str) -> int | None:
    return int(t[8:-1]) if t.startswith("varchar(") else None


def _type_change(old: T.Column, new: T.Column) -> tuple[str, str, str | None]:
    """('widen' | 'narrow' | 'incompatible', USING expression, WHERE of rows that lose data)."""
    col = T.ident(new.name)
    o, n = old.type, new.type
    textual = lambda t: t == "text" or t.startswith("varchar(")  # noqa: E731
    if textual(o) and textual(n):
        lo, ln = _varchar_len(o), _varchar_len(n)
        if ln is None or (lo is not None and ln >= lo):
            return "widen", f"{col}::{n}", None
        return "narrow", f"left({col}, {ln})::{n}", f"char_length({col}) > {ln}"
    if (o, n) in _WIDER or (o.startswith("numeric") and n.startswith("numeric") and n == "numeric"):
        return "widen", f"{col}::{n}", None
    if o.startswith("numeric") and n.startswith("numeric"):
        return "narrow", f"{col}::{n}", f"{col} IS DISTINCT FROM {col}::{n}"
    if o in ("bigint", "numeric", "double precision", "boolean", "date", "timestamp with time zone", "uuid") and textual(n):
        ln = _varchar_len(n)
        if ln is None:
            return "widen", f"{col}::text", None
        return "narrow", f"left({col}::text, {ln})::{n}", f"char_length({col}::text) > {ln}"
    if o == "date" and n == "timestamp with time zone":
        return "widen", f"{col}::{n}", None
    return "incompatible", "", None


def _renamed_column(old: T.Column, new: T.Column) -> T.Column:
    """The old column as it is named after the rename, so only real changes remain."""
    from dataclasses import replace

    mapping = dict(_renamed_column_constraints(old, new))

    def rn(name):
        return mapping.get(name, name) if name else name

    checks = tuple(replace(c, name=rn(c.name), sql=c.sql.replace(T.ident(old.name), T.ident(new.name))) for c in old.checks)
    fk = replace(old.fk, name=rn(old.fk.name)) if old.fk else None
    return replace(old, name=new.name, unique=rn(old.unique), index=rn(old.index), checks=checks, fk=fk)


def _renamed_column_constraints(old: T.Column, new: T.Column) -> list[tuple[str, str]]:
    pairs = []
    for kind in ("key", "idx", "fkey"):
        o = getattr(old, {"key": "unique", "idx": "index", "fkey": "fk"}[kind])
        n = getattr(new, {"key": "unique", "idx": "index", "fkey": "fk"}[kind])
        o_name = o.name if kind == "fkey" and o else o
        n_name = n.name if kind == "fkey" and n else n
        if o_name and n_name and o_name != n_name:
            pairs.append((o_name, n_name))
    old_checks = {c.name.rsplit("_", 1)[-1]: c.name for c in old.checks}
    for c in new.checks:
        suffix = c.name.rsplit("_", 1)[-1]
        if suffix in old_checks and old_checks[suffix] != c.name:
            pairs.append((old_checks[suffix], c.name))
    return pairs


def _renamed_constraints(old: T.Table, new: T.Table) -> list[tuple[str, str]]:
    """Constraint and index names that change only because the table was renamed."""
    pairs = []
    prefix_old, prefix_new = old.name + "_", new.name + "_"
    names_old = _all_names(old)
    for name in sorted(names_old):
        if name.startswith(prefix_old):
            candidate = T.constraint_name(new.name, name[len(prefix_old):])
            if candidate in _all_names(new) and candidate != name:
                pairs.append((name, candidate))
    trigger_old, trigger_new = T.constraint_name(old.name, "touch"), T.constraint_name(new.name, "touch")
    pairs.append((f"trigger:{trigger_old}", trigger_new))
    return pairs


def _all_names(table: T.Table) -> set[str]:
    names = set(table.uniques) | set(table.indexes)
    for c in table.columns.values():
        names.update(ch.name for ch in c.checks)
        names.update(n for n in (c.unique, c.index, c.fk.name if c.fk else None) if n)
    return names


def _rename_constraint_or_index(table: str, old: str, new: str) -> str:
    if old.startswith("trigger:"):
        return f"ALTER TRIGGER {T.ident(old[8:])} ON {T.ident(table)} RENAME TO {T.ident(new)}"
    if old.endswith("_idx"):
        return f"ALTER INDEX {T.ident(old)} RENAME TO {T.ident(new)}"
    return f"ALTER TABLE {T.ident(table)} RENAME CONSTRAINT {T.ident(old)} TO {T.ident(new)}"


def _with_names_of(old: T.Table, new: T.Table) -> T.Table:
    """The old table as it is named after a table rename."""
    from dataclasses import replace

    mapping = {o: n for o, n in _renamed_constraints(old, new) if not o.startswith("trigger:")}

    def rn(name):
        return mapping.get(name, name) if name else name

    columns = {
        k: replace(c, unique=rn(c.unique), index=rn(c.index),
                   checks=tuple(replace(ch, name=rn(ch.name)) for ch in c.checks),
                   fk=replace(c.fk, name=rn(c.fk.name)) if c.fk else None)
        for k, c in old.columns.items()
    }
    return replace(old, name=new.name, columns=columns,
                   uniques={rn(k): v for k, v in old.uniques.items()},
                   indexes={rn(k): v for k, v in old.indexes.items()})
