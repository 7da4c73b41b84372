"""Properties of the planner over random valid definitions, held against a real schema.

1. Pushing any definition onto an empty tenant leaves a schema whose catalog (tables,
   columns with types, nullability and defaults, unique/check/foreign-key constraints,
   indexes, triggers) is exactly `tables_of(definition)`; and planning the definition
   against itself is empty.
2. Pushing A, then B (destructive allowed, tables empty, renames included) leaves exactly
   `tables_of(B)`, and planning B against itself afterwards is empty.
3. With a row in every table of A, pushing B (a random definition, or A after a few edits)
   is applied, or refused with nothing changed, but never fails in Postgres: the planner
   finds every row that would break a statement before anything runs. A push refused only
   as destructive goes through with `allow_destructive`; kept tables keep their rows.

Definitions are generated as trees and run through `validate_definition`, so every one is a
definition the platform accepts. Names come from small pools (with a long one, so hashed
constraint names, and a field `a_b` next to keys on `(a, b)`), so that A and B overlap.
Each example runs in a savepoint that is rolled back, on one tenant.
"""

from __future__ import annotations

import json
import os

import pytest
from django.db import transaction
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from migration_shape import expected_shape
from runtime.definition import DefinitionInvalid, validate_definition
from runtime.migrations import plan_migration
from tenants.definitions import live_definition

pytestmark = pytest.mark.django_db

LONG_ENTITY = "Averyveryverylongentitynamethatgoesonandonandonx"  # 48 characters
LONG_FIELD = "a_very_long_field_name_that_goes_on_and_on_and_o"  # 48 characters
ENTITIES = ["Alpha", "Beta", "Gamma", "Delta", LONG_ENTITY]
FIELDS = ["a", "b", "a_b", "label", "amount", "stage", LONG_FIELD]
ENUM_VALUES = ["draft", "open", "done", "x-1", "v.2"]
TYPES = ["string", "text", "integer", "decimal", "float", "boolean", "date", "datetime", "json",
         "email", "url", "uuid", "enum", "ref", "user"]
SYSTEM = ["id", "created_at", "updated_at"]

# PLINTH_MIGRATION_EXAMPLES=1000 for a longer hunt (the catalog bloats within the one test
# transaction, so very long runs slow down).
EXAMPLES = settings(max_examples=int(os.environ.get("PLINTH_MIGRATION_EXAMPLES", "40")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _text_options(draw, kind: str) -> dict:
    spec: dict = {}
    default = {"email": "someone@example.com", "url": "https://example.com/x"}.get(kind, "abcdefg")
    max_length = draw(st.none() | st.integers(len(default), 300))
    if max_length is not None:
        spec["max_length"] = max_length
    min_length = draw(st.none() | st.integers(0, 5))
    if min_length is not None:
        spec["min_length"] = min_length
    if kind in ("string", "text") and draw(st.booleans()):
        spec["pattern"] = "^[a-z]*$"
    if draw(st.booleans()):
        spec["default"] = default
    return spec


@st.composite
def _number_options(draw, kind: str) -> dict:
    spec: dict = {}
    if kind == "decimal" and draw(st.booleans()):
        precision = draw(st.integers(4, 12))
        spec["precision"] = precision
        spec["scale"] = draw(st.integers(0, precision - 3))  # values up to 999 fit
    low = draw(st.none() | st.integers(-100, 50))
    high = draw(st.none() | st.integers(-100 if low is None else low, 500))
    if kind == "float" and low is not None:
        low = low + 0.5
        high = None if high is None else max(high, low)
    if low is not None:
        spec["min"] = low
    if high is not None:
        spec["max"] = high
    if draw(st.booleans()):
        spec["default"] = low if low is not None else (high if high is not None else 7)
    return spec


@st.composite
def _field(draw, entity: str, index: int, name: str, entities: list[str], kind: str | None = None) -> dict:
    kind = kind or draw(st.sampled_from(TYPES))
    if kind == "ref" and not entities:
        kind = "text"
    spec: dict = {"type": kind}
    if draw(st.integers(0, 3)) == 0:
        spec["required"] = True
    if draw(st.integers(0, 4)) == 0:
        spec["unique"] = True
    if draw(st.integers(0, 3)) == 0:
        spec["index"] = True
    if kind in ("string", "text", "email", "url"):
        spec.update(draw(_text_options(kind)))
    elif kind in ("integer", "decimal", "float"):
        spec.update(draw(_number_options(kind)))
    elif kind == "boolean" and draw(st.booleans()):
        spec["default"] = draw(st.booleans())
    elif kind == "date" and draw(st.booleans()):
        spec["default"] = draw(st.sampled_from(["now", "2024-02-29"]))
    elif kind == "datetime" and draw(st.booleans()):
        spec["default"] = draw(st.sampled_from(["now", "2024-02-29T10:30:00+00:00"]))
    elif kind == "json" and draw(st.booleans()):
        spec["default"] = draw(st.sampled_from(["hello", 5, 2.5, True, [1, "x"], {"k": {"n": None}}]))
    elif kind == "uuid" and draw(st.booleans()):
        spec["default"] = draw(st.sampled_from(["auth.id", "6f1c0b5e-2b0a-4a8e-9a53-0a9d2c6a1b11"]))
    elif kind == "enum":
        spec["values"] = draw(st.lists(st.sampled_from(ENUM_VALUES), min_size=1, max_size=4, unique=True))
        if draw(st.booleans()):
            spec["default"] = draw(st.sampled_from(spec["values"]))
    elif kind == "user":
        if draw(st.booleans()):
            spec["default"] = "auth.id"
        if draw(st.booleans()):
            spec["on_delete"] = draw(st.sampled_from(["restrict", "cascade"] + ([] if spec.get("required") else ["set_null"])))
    elif kind == "ref":
        target = draw(st.sampled_from(entities))
        # Required references may not form a circle: only to entities declared before.
        if spec.get("required") and entities.index(target) >= index:
            del spec["required"]
        spec["to"] = target
        spec["on_delete"] = draw(st.sampled_from(["restrict", "cascade"] + ([] if spec.get("required") else ["set_null"])))
        related = f"{entity.lower()}_{name}"
        if len(related) <= 48 and draw(st.booleans()):
            spec["related_name"] = related
    return spec


def _key(draw, columns: list[str]):
    return draw(st.lists(st.sampled_from(columns), min_size=1, max_size=3, unique=True))


@st.composite
def _entity(draw, name: str, index: int, entities: list[str]) -> dict:
    names = draw(st.lists(st.sampled_from(FIELDS), max_size=5, unique=True))
    fields = {n: draw(_field(name, index, n, entities)) for n in names}
    entity: dict = {"fields": fields}
    columns = names + SYSTEM
    if draw(st.booleans()):
        entity["unique"] = [_key(draw, columns) for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        entity["indexes"] = [_key(draw, columns) for _ in range(draw(st.integers(1, 2)))]
    if names and draw(st.booleans()):  # `a, b` next to a field `a_b`: names that would clash
        entity.setdefault("indexes", []).append([c for c in ("a", "b") if c in names] or names[:1])
    texts = [n for n, f in fields.items() if f["type"] in ("string", "text")]
    if texts and draw(st.booleans()):
        entity["search"] = draw(st.lists(st.sampled_from(texts), min_size=1, unique=True))
    states = [n for n, f in fields.items() if f["type"] == "enum" and len(f["values"]) >= 2 and "default" in f]
    if states and draw(st.booleans()):
        values = fields[states[0]]["values"]
        entity["states"] = {"field": states[0], "transitions": {"advance": {"from": values[0], "to": values[1]}}}
    return entity


@st.composite
def definitions(draw):
    """A random valid definition tree."""
    names = draw(st.lists(st.sampled_from(ENTITIES), min_size=1, max_size=5, unique=True))
    tree = {"version": 1, "entities": {n: draw(_entity(n, i, names)) for i, n in enumerate(names)}}
    return tree


def _validated(tree: dict):
    try:
        return validate_definition(json.loads(json.dumps(tree)))
    except DefinitionInvalid as exc:  # the strategies must only make valid definitions
        raise AssertionError(f"generated an invalid definition: {exc}\n{json.dumps(tree, indent=1)}") from exc


@st.composite
def with_renames(draw, before: dict, after: dict) -> dict:
    """`after`, with some entities and fields renamed from ones only `before` has."""
    after = json.loads(json.dumps(after))
    old_only = [n for n in before["entities"] if n not in after["entities"]]
    matched = {}
    for name in after["entities"]:
        if name in before["entities"]:
            matched[name] = name
        elif old_only and draw(st.booleans()):
            was = old_only.pop(draw(st.integers(0, len(old_only) - 1)))
            after["entities"][name]["renamed_from"] = was
            matched[name] = was
    for name, was in matched.items():
        fields = after["entities"][name]["fields"]
        old_fields = [f for f in before["entities"][was]["fields"] if f not in fields]
        for field_name, spec in fields.items():
            if field_name not in before["entities"][was]["fields"] and old_fields and draw(st.booleans()):
                spec["renamed_from"] = old_fields.pop(draw(st.integers(0, len(old_fields) - 1)))
    return after


@st.composite
def mutated(draw, before: dict) -> dict:
    """`before` after a few edits of the kind people make: a field changes type or options,
    is renamed, added or removed; an entity is renamed. References to renamed things
    follow; keys and search drop what no longer fits."""
    tree = json.loads(json.dumps(before))
    entities = tree["entities"]
    for _ in range(draw(st.integers(1, 3))):
        names = list(entities)
        name = draw(st.sampled_from(names))
        fields = entities[name]["fields"]
        edit = draw(st.sampled_from(["retype", "options", "options", "rename_field", "add", "remove", "rename_entity"]))
        if edit in ("retype", "options", "rename_field", "remove") and not fields:
            edit = "add"
        if edit in ("retype", "options"):
            field = draw(st.sampled_from(list(fields)))
            kind = None if edit == "retype" else fields[field]["type"]
            spec = draw(_field(name, names.index(name), field, names, kind))
            if "renamed_from" in fields[field]:
                spec["renamed_from"] = fields[field]["renamed_from"]
            fields[field] = spec
        elif edit == "add":
            free = [f for f in FIELDS if f not in fields]
            if free:
                field = draw(st.sampled_from(free))
                fields[field] = draw(_field(name, names.index(name), field, names))
        elif edit == "remove":
            del fields[draw(st.sampled_from(list(fields)))]
        elif edit == "rename_field":
            field = draw(st.sampled_from(list(fields)))
            free = [f for f in FIELDS if f not in fields and f not in before["entities"].get(name, {}).get("fields", {})]
            if free and field in before["entities"].get(name, {}).get("fields", {}):
                new = draw(st.sampled_from(free))
                entities[name]["fields"] = {(new if f == field else f): spec for f, spec in fields.items()}
                entities[name]["fields"][new]["renamed_from"] = field
                _rename_in_keys(entities[name], field, new)
        elif edit == "rename_entity" and name in before["entities"]:
            free = [e for e in ENTITIES if e not in entities and e not in before["entities"]]
            if free:
                new = draw(st.sampled_from(free))
                tree["entities"] = entities = {(new if e == name else e): spec for e, spec in entities.items()}
                entities[new]["renamed_from"] = name
                for entity in entities.values():
                    for spec in entity["fields"].values():
                        if spec.get("to") == name:
                            spec["to"] = new
    for entity in entities.values():
        _drop_what_no_longer_fits(entity)
    return tree


def _rename_in_keys(entity: dict, old: str, new: str) -> None:
    for keys in ("unique", "indexes"):
        if keys in entity:
            entity[keys] = [[new if c == old else c for c in key] for key in entity[keys]]
    if "search" in entity:
        entity["search"] = [new if c == old else c for c in entity["search"]]
    if entity.get("states", {}).get("field") == old:
        entity["states"]["field"] = new


def _drop_what_no_longer_fits(entity: dict) -> None:
    fields = entity["fields"]
    for keys in ("unique", "indexes"):
        kept = [key for key in entity.get(keys, []) if all(c in fields or c in SYSTEM for c in key)]
        if kept:
            entity[keys] = kept
        else:
            entity.pop(keys, None)
    search = [c for c in entity.get("search", []) if fields.get(c, {}).get("type") in ("string", "text")]
    if search:
        entity["search"] = search
    else:
        entity.pop("search", None)
    states = entity.get("states")
    if states:
        spec = fields.get(states["field"], {})
        transition = states["transitions"]["advance"]
        values = spec.get("values", [])
        if not (spec.get("type") == "enum" and "default" in spec and {transition["from"], transition["to"]} <= set(values)):
            del entity["states"]


def _push(tdb, tree: dict, same: bool = False, **options):
    result = tdb.push(json.dumps(tree), **options)
    expected = "unchanged" if same else "applied"
    assert result.status == expected, (result.status, result.errors, json.dumps(tree, indent=1))
    return result


def _assert_live_schema_is(tdb, definition):
    assert tdb.shape() == expected_shape(definition)
    _, live = live_definition(tdb.tenant)
    again = plan_migration(live, definition)
    assert (again.changes, again.errors) == ([], [])


def test_any_definition_pushed_to_an_empty_schema_is_what_tables_of_says(tdb):
    @EXAMPLES
    @given(definitions())
    def check(tree):
        definition = _validated(tree)
        with transaction.atomic():
            _push(tdb, tree)
            _assert_live_schema_is(tdb, definition)
            transaction.set_rollback(True)

    check()


def test_pushing_one_definition_over_another_leaves_exactly_the_second(tdb):
    @EXAMPLES
    @given(definitions(), st.data())
    def check(first, data):
        _validated(first)
        second = data.draw(definitions().flatmap(lambda tree: with_renames(first, tree)), label="second")
        definition = _validated(second)
        with transaction.atomic():
            _push(tdb, first)
            _push(tdb, second, same=second == first, allow_destructive=True)
            _assert_live_schema_is(tdb, definition)
            transaction.set_rollback(True)

    check()


# with rows ------------------------------------------------------------------------------


def _value(spec: dict, refs: dict[str, str], user: str):
    """A value of the field that its own options accept (text, cast by Postgres)."""
    kind = spec["type"]
    if kind in ("string", "text"):
        return "abcdefg"
    if kind in ("integer", "decimal"):
        return str(spec.get("min", spec.get("max", 7)))
    if kind == "float":
        return str(spec.get("min", spec.get("max", 7.25)))
    return {
        "email": "someone@example.com", "url": "https://example.com/x", "boolean": "true", "date": "2024-01-31",
        "datetime": "2024-01-31T12:00:00+00:00", "json": '{"k": 1}', "uuid": "6f1c0b5e-2b0a-4a8e-9a53-0a9d2c6a1b11",
        "enum": spec.get("values", ["x"])[0], "user": user, "ref": refs.get(spec.get("to")),
    }[kind]


def _fill(tdb, tree: dict) -> None:
    """One row in every table, every field set (refs to rows made before, or left empty)."""
    user = tdb.one("INSERT INTO _users (email, role) VALUES ('u@example.com', 'member') RETURNING id::text")
    refs: dict[str, str] = {}
    for name, entity in tree["entities"].items():
        values = {f: _value(spec, refs, user) for f, spec in entity["fields"].items()}
        values = {f: v for f, v in values.items() if v is not None}
        columns = ", ".join(f'"{f}"' for f in values)
        query = (f'INSERT INTO "{name}" ({columns}) VALUES ({", ".join(["%s"] * len(values))}) RETURNING id::text'
                 if values else f'INSERT INTO "{name}" DEFAULT VALUES RETURNING id::text')
        refs[name] = tdb.one(query, list(values.values()))


def _kept(first: dict, second: dict) -> list[str]:
    return [n for n, e in second["entities"].items() if e.get("renamed_from", n) in first["entities"]]


def test_pushing_over_rows_is_applied_or_refused_but_never_fails_in_postgres(tdb):
    # The planner counts what would break; Postgres must never be the one to find out.
    @EXAMPLES
    @given(definitions(), st.data(), st.booleans())
    def check(first, data, allow_destructive):
        _validated(first)
        second = data.draw(mutated(first) | definitions().flatmap(lambda tree: with_renames(first, tree)), label="second")
        try:
            definition = validate_definition(json.loads(json.dumps(second)))
        except DefinitionInvalid:
            assume(False)  # an edit that made it invalid (rare): not a migration to test
        with transaction.atomic():
            _push(tdb, first)
            _fill(tdb, first)
            before = tdb.shape()
            result = tdb.push(json.dumps(second), allow_destructive=allow_destructive)
            assert result.status in ("applied", "unchanged", "invalid", "destructive"), (result.status, result.errors)
            if result.status == "destructive":  # refused for that alone: allowed, it goes through
                assert tdb.shape() == before
                result = tdb.push(json.dumps(second), allow_destructive=True)
                assert result.status == "applied", (result.status, result.errors)
            if result.status == "applied":
                _assert_live_schema_is(tdb, definition)
                for name in _kept(first, second):
                    assert tdb.one(f'SELECT count(*) FROM "{name}"') == 1
            else:
                assert tdb.shape() == before
            transaction.set_rollback(True)

    check()
