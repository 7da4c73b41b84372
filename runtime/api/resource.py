"""`rest/v1/<Entity>`: the entry of the data API's table endpoints, and the `Resource`, an
entity as the API sees it: its visible columns, the relationships it can embed, and its
access rules compiled over whichever table alias a query gives it.

Names from the URL are resolved here, never guessed: an unknown entity is 404 `PGRST205`,
an unknown column 400 `42703`, an unknown relationship 400 `PGRST200`, each with the
closest name as a hint. Resources are built once per compiled backend.
"""

from __future__ import annotations

import difflib
import importlib.util
import threading
from collections import OrderedDict
from dataclasses import dataclass

from psycopg import sql

from runtime.api.errors import ApiError, not_found
from runtime.compile import CompiledBackend
from runtime.compile.backend import ROW_ALIAS, CompiledEntity
from runtime.expressions import CompiledExpr, compile_rule
from runtime.migrations.tables import Column

READ_METHODS = ("GET", "HEAD")
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


@dataclass(frozen=True)
class Relationship:
    """How `source` embeds `target`: through the ref field `column`, which lives on the
    source (to-one: `target.id = source.column`) or on the target (to-many:
    `target.column = source.id`)."""

    name: str
    source: str
    target: str
    column: str
    to_one: bool

    def join(self, parent: str, child: str) -> sql.Composable:
        """The condition tying a `child`-aliased target row to its `parent`-aliased source row."""
        if self.to_one:
            return sql.SQL("{} = {}").format(sql.Identifier(child, "id"), sql.Identifier(parent, self.column))
        return sql.SQL("{} = {}").format(sql.Identifier(child, self.column), sql.Identifier(parent, "id"))


def _hint(word: str, names) -> str | None:
    names = list(names)
    lowered = {n.lower(): n for n in names}
    close = lowered.get(word.lower()) or next(iter(difflib.get_close_matches(word, names, n=1, cutoff=0.6)), None)
    return f"Perhaps you meant '{close}'." if close else None


class Resource:
    """One entity of one compiled backend, for planning requests against it."""

    def __init__(self, backend: CompiledBackend, entity: CompiledEntity):
        self.backend = backend
        self.entity = entity
        self.name = entity.name
        self.table = entity.table
        # `_search` is not a column of Table: it can never be selected or named
        self.columns: dict[str, Column] = dict(entity.table.columns)
        self.search = tuple(entity.search)
        self._rules: dict[tuple[str, str], CompiledExpr | None] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Resource({self.name})"

    def column(self, name: str) -> Column:
        column = self.columns.get(name)
        if column is None:
            raise ApiError(400, "42703", f"column {self.name}.{name[:80]} does not exist",
                           f"{self.name} has: {', '.join(self.columns)}", _hint(name, self.columns))
        return column

    def rule(self, operation: str, alias: str = ROW_ALIAS) -> CompiledExpr | None:
        """The entity's access rule for `operation` over table alias `alias` (None: no rule,
        only the service key may). The backend holds each rule over `r`; other aliases,
        needed when an embedded row sits inside another row's query, are compiled once."""
        compiled = self.entity.access.get(operation)
        if compiled is None or alias == ROW_ALIAS:
            return compiled.sql if compiled else None
        key = (operation, alias)
        if key not in self._rules:
            expr = self.backend.definition.entities[self.name].access[operation]
            with self._lock:
                self._rules[key] = compile_rule(self.backend.definition, self.name, expr, alias)
        return self._rules[key]

    # relationships -----------------------------------------------------------------------

    def _refs(self):
        """Every ref field in the backend: (entity name, field)."""
        for entity_name, entity in self.backend.definition.entities.items():
            for f in entity.fields.values():
                if f.type == "ref" and f.to:
                    yield entity_name, f

    def relationships(self) -> list[Relationship]:
        """Every embedding by its own name: ref fields (to-one), related names (to-many)."""
        found = []
        for entity_name, f in self._refs():
            if entity_name == self.name:
                found.append(Relationship(f.name, self.name, f.to, f.name, True))
            if f.to == self.name and f.related_name:
                found.append(Relationship(f.related_name, self.name, entity_name, f.name, False))
        return found

    def relationship(self, name: str, hint: str | None = None) -> Relationship:
        """The relationship `name` (a ref field, a related_name, or an entity name when only
        one relationship leads there), narrowed by `hint` (the ref field's or its foreign
        key's name)."""
        own = [r for r in self.relationships() if r.name == name]
        if not own and name in self.backend.entities:
            own = [Relationship(f.name, self.name, f.to, f.name, True)
                   for entity_name, f in self._refs() if entity_name == self.name and f.to == name]
            own += [Relationship(name, self.name, entity_name, f.name, False)
                    for entity_name, f in self._refs() if entity_name == name and f.to == self.name]
            own = [Relationship(name, r.source, r.target, r.column, r.to_one) for r in own]
        if hint is not None:
            own = [r for r in own if hint in (r.column, self._fk_name(r))]
        if len(own) == 1:
            return own[0]
        if len(own) > 1:
            options = ", ".join(f"'{name}!{r.column}'" for r in own)
            raise ApiError(300, "PGRST201", f"Could not embed because more than one relationship was found for "
                                            f"'{self.name}' and '{name}'",
                           hint=f"Name the reference field as a hint: {options}.")
        names = [r.name for r in self.relationships()]
        field = self.columns.get(name)
        if field is not None and field.source is not None and field.source.type == "user":
            hint_text = f"'{name}' is a user field: end users are not an entity and cannot be embedded."
        else:
            hint_text = _hint(name, names) or (f"Relationships of {self.name}: {', '.join(names)}." if names else None)
        raise ApiError(400, "PGRST200", f"Could not find a relationship between '{self.name}' and "
                                        f"'{name[:80]}' in the schema cache",
                       None if hint is None else f"with the hint '{hint[:80]}'", hint_text)

    def _fk_name(self, r: Relationship) -> str | None:
        table = self.backend.tables[r.source if r.to_one else r.target]
        column = table.columns.get(r.column)
        return column.fk.name if column is not None and column.fk else None


# resources per backend ------------------------------------------------------------------

_MAX_BACKENDS = 256
_resources: OrderedDict[int, tuple[CompiledBackend, dict[str, Resource]]] = OrderedDict()
_lock = threading.Lock()


def resources_of(backend: CompiledBackend) -> dict[str, Resource]:
    # Keyed by id(): the entry holds the backend itself, so the id stays its own while cached.
    key = id(backend)
    with _lock:
        entry = _resources.get(key)
        if entry is not None and entry[0] is backend:
            _resources.move_to_end(key)
            return entry[1]
    made = {name: Resource(backend, entity) for name, entity in backend.entities.items()}
    with _lock:
        _resources[key] = (backend, made)
        _resources.move_to_end(key)
        while len(_resources) > _MAX_BACKENDS:
            _resources.popitem(last=False)
    return made


def resource_of(backend: CompiledBackend, name: str) -> Resource:
    """The entity `name` (case-sensitive, as the definition spells it), or 404 PGRST205."""
    resources = resources_of(backend)
    resource = resources.get(name)
    if resource is None:
        raise not_found(f"Could not find the entity '{name[:80]}' in the schema cache",
                        hint=_hint(name, resources) or (f"Entities: {', '.join(resources)}." if resources else None))
    return resource


# the endpoint ---------------------------------------------------------------------------


def handle(request, context, entity_name: str):
    """`/t/<slug>/rest/v1/<Entity>`: reads here, writes in `write.py` (501 until it exists)."""
    resource = resource_of(context.backend, entity_name)
    method = request.method
    if method in READ_METHODS:
        from runtime.api.read import handle_read

        return handle_read(request, context, resource)
    if method in WRITE_METHODS:
        # find_spec, not `except ImportError`: a broken write module must fail loudly
        if importlib.util.find_spec("runtime.api.write") is None:
            raise ApiError(501, "PGRST501", "Writes are not available yet.")
        from runtime.api.write import handle_write

        return handle_write(request, context, entity_name)
    if method == "OPTIONS":
        from runtime.api.respond import options_response

        return options_response(", ".join(("OPTIONS",) + READ_METHODS + WRITE_METHODS))
    raise ApiError(405, "PGRST117", f"Unsupported HTTP method: {method[:20]}")


__all__ = ["Relationship", "Resource", "handle", "resource_of", "resources_of"]
