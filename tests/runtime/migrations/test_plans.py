"""Every kind of migration, pushed to a real tenant schema that holds rows.

Each test pushes a small "before" definition, writes rows, pushes an "after" definition
and checks three things: the plan (labels, operations, SQL, row counts), the schema that
Postgres really holds afterwards (read from the catalog and compared with
`tables_of(after)`), and the data. A refused push must leave the schema and the live
version exactly as they were (docs/definition.md, Migrations: all or nothing).
"""

from __future__ import annotations

import json
import textwrap

import pytest
from django.db import IntegrityError, transaction

from migration_shape import expected_shape
from runtime.definition import load_definition
from runtime.migrations import plan_migration
from runtime.migrations.system import SYSTEM_MIGRATIONS
from tenants.definitions import live_version

pytestmark = pytest.mark.django_db


def doc(entities: str) -> str:
    """A definition with these entities (YAML, indented as written)."""
    return "version: 1\nentities:\n" + textwrap.indent(textwrap.dedent(entities).strip("\n"), "  ") + "\n"


def ops(result) -> list[tuple[str, str, str]]:
    return [(c["label"], c["op"], c["target"]) for c in result.plan]


def sql_of(result) -> str:
    return "\n".join(s for c in result.plan for s in c["sql"])


def change(result, op: str, target: str) -> dict:
    (found,) = [c for c in result.plan if c["op"] == op and c["target"] == target]
    return found


def applied(tdb, source: str, **options):
    """Push, expect it applied, and hold the schema to `tables_of` of what was pushed."""
    result = tdb.push(source, **options)
    assert result.status == "applied", (result.status, result.errors)
    assert tdb.shape() == expected_shape(load_definition(source))
    return result


def refused(tdb, source: str, status: str, **options):
    """Push, expect it refused with `status`, and nothing changed."""
    before_shape, before_version = tdb.shape(), live_version(tdb.tenant)
    result = tdb.push(source, **options)
    assert result.status == status, (result.status, result.errors)
    assert tdb.shape() == before_shape
    assert live_version(tdb.tenant) == before_version
    return result


def codes(result) -> list[tuple[str, str]]:
    return [(e["code"], e["path"]) for e in result.errors]


NOTE = doc("""
Note:
  fields:
    title: {type: string, required: true, max_length: 20}
""")


@pytest.fixture
def notes(tdb):
    """A tenant whose live definition is NOTE, holding two rows."""
    applied(tdb, NOTE)
    tdb.sql('INSERT INTO "Note" (title) VALUES (%s), (%s)', ["first", "second"])
    return tdb


def titles(tdb, column="title", table="Note") -> list:
    return [r[0] for r in tdb.sql(f'SELECT "{column}" FROM "{table}" ORDER BY created_at, "{column}"')]


# new entities and fields ----------------------------------------------------------------


def test_the_first_push_creates_every_entity_on_an_empty_schema(tdb):
    source = doc("""
    Customer:
      fields:
        name: {type: string, required: true, max_length: 200}
        email: {type: email, unique: true}
    Order:
      fields:
        customer: {type: ref, to: Customer, required: true, related_name: orders}
        total: {type: decimal, precision: 10, scale: 2, default: 0, min: 0}
        status: {type: enum, values: [draft, paid], default: draft}
      indexes: [[customer, status]]
    """)
    result = applied(tdb, source)
    assert ops(result) == [
        ("additive", "create_table", "Customer"),
        ("additive", "create_table", "Order"),
        ("additive", "add_relation", "Order.customer"),
    ]
    assert 'REFERENCES "Customer" (id) ON DELETE RESTRICT' in sql_of(result)
    assert result.version == 1
    assert tdb.one("SELECT count(*) FROM _plinth_migrations") == len(SYSTEM_MIGRATIONS)  # system tables first


def test_a_new_entity_is_additive_and_keeps_the_rows_of_others(notes):
    result = applied(notes, NOTE + textwrap.indent(textwrap.dedent("""
    Tag:
      fields:
        note: {type: ref, to: Note, on_delete: cascade, related_name: tags}
        label: {type: string, required: true}
    """), "  "))
    assert ops(result) == [("additive", "create_table", "Tag"), ("additive", "add_relation", "Tag.note")]
    assert 'CREATE TABLE "Tag"' in sql_of(result)
    assert titles(notes) == ["first", "second"]
    note_id = notes.one("SELECT id FROM \"Note\" WHERE title = 'first'")
    notes.sql('INSERT INTO "Tag" (note, label) VALUES (%s, %s)', [note_id, "x"])
    notes.sql("DELETE FROM \"Note\" WHERE title = 'first'")
    assert notes.one('SELECT count(*) FROM "Tag"') == 0  # on_delete: cascade holds


def test_a_new_optional_field_is_additive_and_empty_on_existing_rows(notes):
    result = applied(notes, doc("""
    Note:
      fields:
        title: {type: string, required: true, max_length: 20}
        body: {type: text}
    """))
    assert ops(result) == [("additive", "add_field", "Note.body")]
    assert 'ALTER TABLE "Note" ADD COLUMN "body" text' in sql_of(result)
    assert titles(notes, "body") == [None, None]


def test_a_new_required_field_with_a_default_backfills_the_rows(notes):
    result = applied(notes, doc("""
    Note:
      fields:
        title: {type: string, required: true, max_length: 20}
        priority: {type: integer, required: true, default: 3, min: 1}
    """))
    assert ops(result) == [("backfill", "add_field", "Note.priority")]
    assert change(result, "add_field", "Note.priority")["rows_affected"] == 2
    assert '"priority" bigint DEFAULT 3 NOT NULL' in sql_of(result)
    assert titles(notes, "priority") == [3, 3]
    assert notes.columns("Note")["priority"] == ("bigint", True, True, "")


def test_a_new_optional_field_with_a_default_fills_the_rows_too(notes):
    result = applied(notes, doc("""
    Note:
      fields:
        title: {type: string, required: true, max_length: 20}
        done: {type: boolean, default: false}
    """))
    assert ops(result) == [("additive", "add_field", "Note.done")]
    assert titles(notes, "done") == [False, False]


REQUIRED_WITHOUT_DEFAULT = doc("""
Note:
  fields:
    title: {type: string, required: true, max_length: 20}
    owner_name: {type: string, required: true}
""")


def test_a_new_required_field_without_default_is_refused_when_rows_exist(notes):
    result = refused(notes, REQUIRED_WITHOUT_DEFAULT, "invalid")
    assert codes(result) == [("migration.required_field_needs_default", "/entities/Note/fields/owner_name")]
    assert "2 rows" in result.errors[0]["message"]
    assert result.http_status == 422
    assert titles(notes) == ["first", "second"]


def test_a_new_required_field_without_default_is_additive_on_an_empty_table(tdb):
    applied(tdb, NOTE)
    result = applied(tdb, REQUIRED_WITHOUT_DEFAULT)
    assert ops(result) == [("additive", "add_field", "Note.owner_name")]
    assert tdb.columns("Note")["owner_name"] == ("character varying(255)", True, False, "")


def test_a_required_user_field_defaulting_to_auth_id_cannot_fill_existing_rows(notes):
    # auth.id is the caller at write time; a migration has no caller, so it fills nothing.
    result = refused(notes, doc("""
    Note:
      fields:
        title: {type: string, required: true, max_length: 20}
        owner: {type: user, required: true, default: auth.id}
    """), "invalid")
    assert codes(result) == [("migration.required_field_needs_default", "/entities/Note/fields/owner")]


def test_a_new_unique_field_whose_default_would_repeat_is_refused(notes):
    result = refused(notes, doc("""
    Note:
      fields:
        title: {type: string, required: true, max_length: 20}
        code: {type: string, unique: true, default: same}
    """), "invalid")
    assert codes(result) == [("migration.constraint_violated", "/entities/Note/fields/code")]


def test_a_json_field_takes_any_json_default(notes):
    result = applied(notes, doc("""
    Note:
      fields:
        title: {type: string, required: true, max_length: 20}
        word: {type: json, default: hello}
        number: {type: json, default: 5}
        flag: {type: json, default: true}
        tree: {type: json, default: {a: [1, 2]}}
    """))
    (row,) = notes.sql('SELECT word::text, number::text, flag::text, tree::text FROM "Note" LIMIT 1')
    assert [json.loads(v) for v in row] == ["hello", 5, True, {"a": [1, 2]}]
    assert all(c["label"] == "additive" for c in result.plan)


# renames --------------------------------------------------------------------------------

RENAME_BEFORE = doc("""
Note:
  fields:
    title: {type: text, required: true, unique: true, min_length: 1, max_length: 50}
    tag: {type: string, index: true, max_length: 30}
    kind: {type: enum, values: [a, b], default: a}
""")
RENAME_AFTER = doc("""
Note:
  fields:
    heading: {type: text, required: true, unique: true, min_length: 1, max_length: 50, renamed_from: title}
    label: {type: string, index: true, max_length: 30, renamed_from: tag}
    sort: {type: enum, values: [a, b], default: a, renamed_from: kind}
""")


def test_renaming_a_field_keeps_its_values_and_renames_its_constraints(tdb):
    applied(tdb, RENAME_BEFORE)
    tdb.sql("""INSERT INTO "Note" (title, tag, kind) VALUES ('one', 'x', 'b'), ('two', NULL, 'a')""")
    result = applied(tdb, RENAME_AFTER)
    assert {label for label, _, _ in ops(result)} == {"rename"}
    assert ("rename", "rename_field", "Note.heading") in ops(result)
    assert 'ALTER TABLE "Note" RENAME COLUMN "title" TO "heading"' in sql_of(result)
    assert 'ALTER INDEX "Note_tag_idx" RENAME TO "Note_label_idx"' in sql_of(result)
    assert tdb.sql('SELECT heading, label, sort FROM "Note" ORDER BY heading') == [("one", "x", "b"), ("two", None, "a")]
    shape = tdb.shape()["Note"]
    assert shape["checks"]["Note_heading_min_length"] == ("heading",)
    assert shape["checks"]["Note_heading_max_length"] == ("heading",)
    assert shape["uniques"] == {"Note_heading_key": ("heading",)}
    # the renamed constraints still hold
    with pytest.raises(IntegrityError, match="Note_heading_key"), transaction.atomic():
        tdb.sql("""INSERT INTO "Note" (heading) VALUES ('one')""")
    # and pushing the same definition again, renamed_from still in it, changes nothing
    assert tdb.push(RENAME_AFTER).status == "unchanged"
    assert plan_migration(load_definition(RENAME_AFTER), load_definition(RENAME_AFTER)).changes == []


def test_a_renamed_field_can_change_in_the_same_push(tdb):
    # the planner counts rows under the old column name: the rename has not run yet
    applied(tdb, doc("""
    Note:
      fields:
        title: {type: string, max_length: 20}
    """))
    tdb.sql("""INSERT INTO "Note" (title) VALUES ('a'), (NULL)""")
    result = applied(tdb, doc("""
    Note:
      fields:
        heading: {type: string, max_length: 20, required: true, default: untitled, unique: true, renamed_from: title}
    """))
    assert ("backfill", "set_required", "Note.heading") in ops(result)
    assert change(result, "set_required", "Note.heading")["rows_affected"] == 1
    assert sorted(titles(tdb, "heading")) == ["a", "untitled"]


RENAME_ENTITY_BEFORE = doc("""
Note:
  fields:
    title: {type: string, required: true, unique: true, max_length: 20}
    score: {type: integer, min: 0}
  indexes: [[title, score]]
  search: [title]
Comment:
  fields:
    note: {type: ref, to: Note, required: true, related_name: comments}
    body: {type: text}
""")
RENAME_ENTITY_AFTER = doc("""
Memo:
  renamed_from: Note
  fields:
    title: {type: string, required: true, unique: true, max_length: 20}
    score: {type: integer, min: 0}
  indexes: [[title, score]]
  search: [title]
Comment:
  fields:
    note: {type: ref, to: Memo, required: true, related_name: comments}
    body: {type: text}
""")


def test_renaming_an_entity_keeps_rows_references_and_renames_constraints(tdb):
    applied(tdb, RENAME_ENTITY_BEFORE)
    note = tdb.one("""INSERT INTO "Note" (title, score) VALUES ('kept', 5) RETURNING id""")
    tdb.sql('INSERT INTO "Comment" (note, body) VALUES (%s, %s)', [note, "hello"])
    result = applied(tdb, RENAME_ENTITY_AFTER)
    assert ops(result)[0] == ("rename", "rename_table", "Memo")
    assert {label for label, _, _ in ops(result)} == {"rename"}
    assert 'ALTER TABLE "Note" RENAME TO "Memo"' in sql_of(result)
    assert "DROP" not in sql_of(result)  # nothing is rebuilt
    assert tdb.sql('SELECT m.title, c.body FROM "Comment" c JOIN "Memo" m ON m.id = c.note') == [("kept", "hello")]
    shape = tdb.shape()
    assert shape["Memo"]["pkey"] == "Memo_pkey"
    assert set(shape["Memo"]["checks"]) == {"Memo_score_min"}
    assert shape["Memo"]["triggers"] == {"Memo_touch"}
    assert "Memo__search_idx" in shape["Memo"]["indexes"]
    # the reference is still enforced
    with pytest.raises(IntegrityError, match="Comment_note_fkey"), transaction.atomic():
        tdb.sql('DELETE FROM "Memo"')
    # and the old name is free again: a new entity may take it (once renamed_from is gone)
    applied(tdb, RENAME_ENTITY_AFTER.replace("    renamed_from: Note\n", "")
            + "  Note:\n    fields:\n      x: {type: text}\n")


def test_an_entity_renamed_together_with_other_changes(tdb):
    # drops of constraints in a renamed table run after the rename (they name the new table)
    applied(tdb, RENAME_ENTITY_BEFORE)
    tdb.sql("""INSERT INTO "Note" (title, score) VALUES ('a', 1), ('b', NULL)""")
    result = applied(tdb, doc("""
    Memo:
      renamed_from: Note
      fields:
        title: {type: string, required: true, max_length: 20}
        points: {type: integer, renamed_from: score, required: true, default: 0}
        extra: {type: text, default: x}
    Comment:
      fields:
        note: {type: ref, to: Memo, required: true, on_delete: cascade, related_name: comments}
    """), allow_destructive=True)
    assert ("backfill", "set_required", "Memo.points") in ops(result)
    assert ("destructive", "drop_field", "Comment.body") in ops(result)
    assert tdb.sql('SELECT title, points, extra FROM "Memo" ORDER BY title') == [("a", 1, "x"), ("b", 0, "x")]


def test_long_names_are_hashed_and_renamed_consistently(tdb):
    long_entity = "Averyveryverylongentitynamethatgoesonandonandon"  # 47 characters
    long_field = "a_very_long_field_name_that_goes_on_and_on_and_o"  # 48 characters
    before = doc(f"""
    {long_entity}:
      fields:
        {long_field}: {{type: text, unique: true, min_length: 1, max_length: 9, pattern: '^[a-z]+$'}}
        other: {{type: integer, index: true, min: 0, max: 10}}
      unique: [[{long_field}, other]]
      indexes: [[other, {long_field}]]
    """)
    applied(tdb, before)
    tdb.sql(f'INSERT INTO "{long_entity}" ("{long_field}", other) VALUES (%s, 1)', ["abc"])
    after = doc(f"""
    Renamed:
      renamed_from: {long_entity}
      fields:
        short: {{type: text, unique: true, min_length: 1, max_length: 9, pattern: '^[a-z]+$', renamed_from: {long_field}}}
        other: {{type: integer, index: true, min: 0, max: 10}}
      unique: [[short, other]]
      indexes: [[other, short]]
    """)
    result = applied(tdb, after)
    assert {label for label, _, _ in ops(result)} == {"rename"}
    assert tdb.sql('SELECT short, other FROM "Renamed"') == [("abc", 1)]
    # and back again
    back = doc(f"""
    {long_entity}:
      renamed_from: Renamed
      fields:
        {long_field}: {{type: text, unique: true, min_length: 1, max_length: 9, pattern: '^[a-z]+$', renamed_from: short}}
        other: {{type: integer, index: true, min: 0, max: 10}}
      unique: [[{long_field}, other]]
      indexes: [[other, {long_field}]]
    """)
    result = applied(tdb, back)
    assert {label for label, _, _ in ops(result)} == {"rename"}


# removals -------------------------------------------------------------------------------

WITH_BODY = doc("""
Note:
  fields:
    title: {type: string, required: true, max_length: 20}
    body: {type: text}
""")


def test_removing_a_field_is_destructive_and_counts_its_values(tdb):
    applied(tdb, WITH_BODY)
    tdb.sql("""INSERT INTO "Note" (title, body) VALUES ('a', 'x'), ('b', 'y'), ('c', NULL)""")
    result = refused(tdb, NOTE, "destructive")
    assert result.http_status == 409
    assert ops(result) == [("destructive", "drop_field", "Note.body")]
    assert change(result, "drop_field", "Note.body")["rows_affected"] == 2
    assert codes(result) == [("migration.destructive", "/entities/Note/fields/body")]
    assert "2 rows affected" in result.errors[0]["message"]
    assert tdb.sql('SELECT body FROM "Note" ORDER BY title') == [("x",), ("y",), (None,)]

    result = applied(tdb, NOTE, allow_destructive=True)
    assert 'ALTER TABLE "Note" DROP COLUMN "body"' in sql_of(result)
    assert "body" not in tdb.columns("Note")
    assert titles(tdb) == ["a", "b", "c"]
    assert result.version == 2


def test_removing_an_entity_is_destructive_with_its_row_count(notes):
    source = doc("""
    Other:
      fields:
        x: {type: text}
    """)
    result = refused(notes, source, "destructive")
    assert ("destructive", "drop_table", "Note") in ops(result)
    assert change(result, "drop_table", "Note")["rows_affected"] == 2
    applied(notes, source, allow_destructive=True)
    assert notes.tables() == {"Other"}


def test_removing_entities_that_reference_each_other(tdb):
    applied(tdb, doc("""
    A:
      fields:
        b: {type: ref, to: B}
    B:
      fields:
        a: {type: ref, to: A}
    C:
      fields:
        a: {type: ref, to: A}
    """))
    a = tdb.one('INSERT INTO "A" DEFAULT VALUES RETURNING id')
    b = tdb.one('INSERT INTO "B" (a) VALUES (%s) RETURNING id', [a])
    tdb.sql('UPDATE "A" SET b = %s', [b])
    tdb.sql('INSERT INTO "C" (a) VALUES (%s)', [a])
    result = applied(tdb, doc("""
    Z:
      fields:
        x: {type: text}
    """), allow_destructive=True)
    assert sorted(c["rows_affected"] for c in result.plan if c["op"] == "drop_table") == [1, 1, 1]
    assert tdb.tables() == {"Z"}


# type changes ---------------------------------------------------------------------------

SHORT = doc("""
Note:
  fields:
    title: {type: string, required: true, max_length: 5}
""")


def test_narrowing_a_string_with_longer_values_is_destructive_and_cuts_them(notes):
    result = refused(notes, SHORT, "destructive")
    assert ops(result) == [("destructive", "change_type", "Note.title")]
    assert change(result, "change_type", "Note.title")["rows_affected"] == 1  # 'second'
    assert titles(notes) == ["first", "second"]
    result = applied(notes, SHORT, allow_destructive=True)
    assert 'TYPE varchar(5) USING left("title", 5)::varchar(5)' in sql_of(result)
    assert titles(notes) == ["first", "secon"]


def test_narrowing_a_string_without_longer_values_is_additive(tdb):
    applied(tdb, NOTE)
    tdb.sql("""INSERT INTO "Note" (title) VALUES ('abc')""")
    result = applied(tdb, SHORT)
    assert ops(result) == [("additive", "change_type", "Note.title")]
    assert tdb.columns("Note")["title"][0] == "character varying(5)"
    assert titles(tdb) == ["abc"]


def test_narrowing_a_text_max_length_cuts_like_a_string(tdb):
    applied(tdb, doc("""
    Note:
      fields:
        body: {type: text, max_length: 10}
    """))
    tdb.sql("""INSERT INTO "Note" (body) VALUES ('0123456789'), ('abc')""")
    source = doc("""
    Note:
      fields:
        body: {type: text, max_length: 4}
    """)
    result = refused(tdb, source, "destructive")
    assert change(result, "add_check", "Note.body")["rows_affected"] == 1
    applied(tdb, source, allow_destructive=True)
    assert sorted(titles(tdb, "body")) == ["0123", "abc"]


@pytest.mark.parametrize("before, after, value, expected_type", [
    ("{type: string, max_length: 10}", "{type: string, max_length: 20}", "hello", "character varying(20)"),
    ("{type: string, max_length: 10}", "{type: text}", "hello", "text"),
    ("{type: integer}", "{type: decimal}", 42, "numeric"),
    ("{type: integer, default: 1}", "{type: float, default: 1}", 42, "double precision"),
    ("{type: decimal, precision: 5, scale: 2}", "{type: decimal, precision: 8, scale: 3}", "123.45", "numeric(8,3)"),
    ("{type: integer}", "{type: text}", 42, "text"),
    ("{type: date}", "{type: datetime}", "2024-05-01", "timestamp with time zone"),
    ("{type: uuid}", "{type: string, max_length: 36}", "6f1c0b5e-2b0a-4a8e-9a53-0a9d2c6a1b11", "character varying(36)"),
    ("{type: enum, values: [a, b]}", "{type: string}", "b", "character varying(255)"),
    ("{type: email}", "{type: string}", "a@b.co", "character varying(255)"),
])
def test_widening_a_type_is_additive_and_keeps_values(tdb, before, after, value, expected_type):
    applied(tdb, doc(f"Note:\n  fields:\n    v: {before}\n"))
    tdb.sql('INSERT INTO "Note" (v) VALUES (%s)', [value])
    old = tdb.one('SELECT v::text FROM "Note"')
    result = applied(tdb, doc(f"Note:\n  fields:\n    v: {after}\n"))
    assert ("additive", "change_type", "Note.v") in ops(result)
    assert tdb.columns("Note")["v"][0] == expected_type
    new = tdb.one('SELECT v::text FROM "Note"')
    assert new == old or new.startswith(old)  # 2024-05-01 becomes 2024-05-01 00:00:00+00


def test_text_to_json_keeps_every_value_as_a_json_string(tdb):
    applied(tdb, doc("Note:\n  fields:\n    v: {type: text, default: x}\n"))
    tdb.sql("""INSERT INTO "Note" (v) VALUES ('plain words'), ('{"a": 1}')""")
    result = applied(tdb, doc("Note:\n  fields:\n    v: {type: json, default: {}}\n"))
    assert ("additive", "change_type", "Note.v") in ops(result)
    assert sorted(json.loads(v) for v in titles(tdb, "v")) == ["plain words", '{"a": 1}']
    assert tdb.one('INSERT INTO "Note" DEFAULT VALUES RETURNING v::text') == "{}"


def test_an_incompatible_type_change_is_refused_when_values_exist(tdb):
    applied(tdb, doc("Note:\n  fields:\n    v: {type: text}\n"))
    tdb.sql("""INSERT INTO "Note" (v) VALUES ('12'), (NULL)""")
    result = refused(tdb, doc("Note:\n  fields:\n    v: {type: integer}\n"), "invalid")
    assert codes(result) == [("migration.incompatible_type", "/entities/Note/fields/v")]
    assert "text to integer" in result.errors[0]["message"]


def test_an_incompatible_type_change_of_a_column_without_values_is_additive(tdb):
    applied(tdb, doc("Note:\n  fields:\n    v: {type: text}\n    w: {type: boolean}\n"))
    tdb.sql("""INSERT INTO "Note" (v) VALUES (NULL)""")
    result = applied(tdb, doc("Note:\n  fields:\n    v: {type: integer}\n    w: {type: date}\n"))
    assert ops(result) == [("additive", "change_type", "Note.v"), ("additive", "change_type", "Note.w")]


def test_narrowing_a_decimal_rounds_and_refuses_values_that_no_longer_fit(tdb):
    applied(tdb, doc("Note:\n  fields:\n    v: {type: decimal}\n"))
    tdb.sql("""INSERT INTO "Note" (v) VALUES (1.234), (2.5)""")
    rounded = doc("Note:\n  fields:\n    v: {type: decimal, precision: 4, scale: 2}\n")
    result = refused(tdb, rounded, "destructive")
    assert change(result, "change_type", "Note.v")["rows_affected"] == 1
    applied(tdb, rounded, allow_destructive=True)
    assert sorted(str(v) for v in titles(tdb, "v")) == ["1.23", "2.50"]
    tdb.sql("""INSERT INTO "Note" (v) VALUES (99.99)""")
    result = refused(tdb, doc("Note:\n  fields:\n    v: {type: decimal, precision: 3, scale: 2}\n"), "invalid",
                     allow_destructive=True)
    assert codes(result) == [("migration.constraint_violated", "/entities/Note/fields/v")]


def test_narrowing_a_unique_string_so_that_values_collide_is_an_error(tdb):
    applied(tdb, doc("Note:\n  fields:\n    code: {type: string, unique: true, max_length: 10}\n"))
    tdb.sql("""INSERT INTO "Note" (code) VALUES ('abc-1'), ('abc-2'), ('xyz')""")
    result = refused(tdb, doc("Note:\n  fields:\n    code: {type: string, unique: true, max_length: 3}\n"), "invalid",
                     allow_destructive=True)
    assert codes(result) == [("migration.constraint_violated", "/entities/Note/fields/code")]


def test_an_integer_becomes_a_decimal_with_precision_when_its_values_fit(tdb):
    applied(tdb, doc("Note:\n  fields:\n    v: {type: integer}\n"))
    tdb.sql("""INSERT INTO "Note" (v) VALUES (123)""")
    result = applied(tdb, doc("Note:\n  fields:\n    v: {type: decimal, precision: 6, scale: 2}\n"))
    assert ops(result) == [("additive", "change_type", "Note.v")]
    assert str(tdb.one('SELECT v FROM "Note"')) == "123.00"
    tdb.sql("""UPDATE "Note" SET v = 9999.99""")
    result = refused(tdb, doc("Note:\n  fields:\n    v: {type: decimal, precision: 5, scale: 2}\n"), "invalid",
                     allow_destructive=True)
    assert codes(result) == [("migration.constraint_violated", "/entities/Note/fields/v")]
    assert "1 values do not fit" in result.errors[0]["message"]


def test_changing_the_type_of_a_searched_field(tdb):
    applied(tdb, doc("""
    Note:
      fields:
        title: {type: string, max_length: 10}
        body: {type: text}
      search: [title, body]
    """))
    tdb.sql("""INSERT INTO "Note" (title, body) VALUES ('apples', 'and pears')""")
    applied(tdb, doc("""
    Note:
      fields:
        title: {type: text}
      search: [title]
    """), allow_destructive=True)
    assert tdb.one("""SELECT title FROM "Note" WHERE _search @@ plainto_tsquery('english', 'apple')""") == "apples"


# enums ----------------------------------------------------------------------------------

def enum_doc(values: str, extra: str = "") -> str:
    return doc(f"Task:\n  fields:\n    state: {{type: enum, values: [{values}]{extra}}}\n")


def states(tdb) -> list:
    return sorted(titles(tdb, "state", "Task"), key=str)


def test_adding_an_enum_value_is_additive(tdb):
    applied(tdb, enum_doc("open, done"))
    tdb.sql("""INSERT INTO "Task" (state) VALUES ('open')""")
    result = applied(tdb, enum_doc("open, done, archived"))
    assert {label for label, _, _ in ops(result)} == {"additive"}
    assert "'archived'" in sql_of(result)
    tdb.sql("""INSERT INTO "Task" (state) VALUES ('archived')""")


def test_removing_an_enum_value_nobody_uses_is_applied(tdb):
    applied(tdb, enum_doc("open, done, archived"))
    tdb.sql("""INSERT INTO "Task" (state) VALUES ('open'), ('done')""")
    result = applied(tdb, enum_doc("open, done"))
    assert {label for label, _, _ in ops(result)} == {"additive"}
    assert states(tdb) == ["done", "open"]


def test_removing_an_enum_value_in_use_moves_rows_to_the_default(tdb):
    applied(tdb, enum_doc("open, done, archived", ", default: open"))
    tdb.sql("""INSERT INTO "Task" (state) VALUES ('archived'), ('archived'), ('done')""")
    source = enum_doc("open, done", ", default: open")
    result = refused(tdb, source, "destructive")
    assert change(result, "add_check", "Task.state")["rows_affected"] == 2
    assert states(tdb) == ["archived", "archived", "done"]
    result = applied(tdb, source, allow_destructive=True)
    assert """UPDATE "Task" SET "state" = 'open'""" in sql_of(result)
    assert states(tdb) == ["done", "open", "open"]


def test_removing_an_enum_value_in_use_empties_optional_fields_without_default(tdb):
    applied(tdb, enum_doc("open, done"))
    tdb.sql("""INSERT INTO "Task" (state) VALUES ('open'), ('done')""")
    applied(tdb, enum_doc("open"), allow_destructive=True)
    assert states(tdb) == [None, "open"]


def test_removing_an_enum_value_in_use_of_a_required_field_without_default_is_an_error(tdb):
    applied(tdb, enum_doc("open, done", ", required: true"))
    tdb.sql("""INSERT INTO "Task" (state) VALUES ('done')""")
    result = refused(tdb, enum_doc("open", ", required: true"), "invalid", allow_destructive=True)
    assert codes(result) == [("migration.constraint_violated", "/entities/Task/fields/state")]


# required, unique, indexes --------------------------------------------------------------

OPTIONAL_BODY = doc("Note:\n  fields:\n    body: {type: text}\n")


def test_making_a_field_required_with_a_default_backfills_the_nulls(tdb):
    applied(tdb, OPTIONAL_BODY)
    tdb.sql("""INSERT INTO "Note" (body) VALUES ('x'), (NULL), (NULL)""")
    result = applied(tdb, doc("Note:\n  fields:\n    body: {type: text, required: true, default: empty}\n"))
    assert ("backfill", "set_required", "Note.body") in ops(result)
    assert change(result, "set_required", "Note.body")["rows_affected"] == 2
    assert sorted(titles(tdb, "body")) == ["empty", "empty", "x"]
    assert tdb.columns("Note")["body"] == ("text", True, True, "")


def test_making_a_field_required_without_default_while_nulls_exist_is_an_error(tdb):
    applied(tdb, OPTIONAL_BODY)
    tdb.sql("""INSERT INTO "Note" (body) VALUES ('x'), (NULL)""")
    result = refused(tdb, doc("Note:\n  fields:\n    body: {type: text, required: true}\n"), "invalid",
                     allow_destructive=True)
    assert codes(result) == [("migration.constraint_violated", "/entities/Note/fields/body")]
    assert "1 rows" in result.errors[0]["message"]


def test_making_a_field_required_without_nulls_and_optional_again(tdb):
    applied(tdb, OPTIONAL_BODY)
    tdb.sql("""INSERT INTO "Note" (body) VALUES ('x')""")
    result = applied(tdb, doc("Note:\n  fields:\n    body: {type: text, required: true}\n"))
    assert ops(result) == [("additive", "set_required", "Note.body")]
    result = applied(tdb, OPTIONAL_BODY)
    assert ops(result) == [("additive", "drop_required", "Note.body")]
    assert 'ALTER COLUMN "body" DROP NOT NULL' in sql_of(result)
    tdb.sql("""INSERT INTO "Note" (body) VALUES (NULL)""")


def test_adding_unique_with_duplicates_is_an_error_and_without_is_additive(tdb):
    applied(tdb, OPTIONAL_BODY)
    tdb.sql("""INSERT INTO "Note" (body) VALUES ('x'), ('x'), ('x'), (NULL), (NULL)""")
    unique = doc("Note:\n  fields:\n    body: {type: text, unique: true}\n")
    result = refused(tdb, unique, "invalid", allow_destructive=True)
    assert codes(result) == [("migration.constraint_violated", "/entities/Note/fields/body")]
    assert "2 existing rows" in result.errors[0]["message"]
    tdb.sql("""DELETE FROM "Note" WHERE body = 'x' AND ctid <> (SELECT min(ctid) FROM "Note" WHERE body = 'x')""")
    result = applied(tdb, unique)
    assert ops(result) == [("additive", "add_unique", "Note.body")]
    assert 'ADD CONSTRAINT "Note_body_key" UNIQUE ("body")' in sql_of(result)


def test_adding_and_removing_indexes_and_composite_uniques(tdb):
    applied(tdb, doc("Note:\n  fields:\n    a: {type: text}\n    b: {type: integer}\n"))
    tdb.sql("""INSERT INTO "Note" (a, b) VALUES ('x', 1), ('x', 2), ('y', 1)""")
    keyed = doc("""
    Note:
      fields:
        a: {type: text, index: true}
        b: {type: integer}
      unique: [[a, b]]
      indexes: [[b, created_at]]
    """)
    result = applied(tdb, keyed)
    assert sorted(ops(result)) == [
        ("additive", "add_index", "Note"), ("additive", "add_index", "Note.a"), ("additive", "add_unique", "Note"),
    ]
    assert 'CREATE INDEX "Note_b_created_at_idx" ON "Note" ("b", "created_at")' in sql_of(result)
    assert 'ADD CONSTRAINT "Note_a_b_key" UNIQUE ("a", "b")' in sql_of(result)
    result = refused(tdb, keyed.replace("[[a, b]]", "[[a, b], [b]]"), "invalid")  # b repeats
    assert codes(result) == [("migration.constraint_violated", "/entities/Note/unique")]
    result = applied(tdb, doc("Note:\n  fields:\n    a: {type: text}\n    b: {type: integer}\n"))
    assert sorted(ops(result)) == [
        ("additive", "drop_constraint", "Note"), ("additive", "drop_index", "Note"), ("additive", "drop_index", "Note.a"),
    ]


def test_keys_that_repeat_a_field_option_do_not_clash(tdb):
    # `unique: [[a]]` says what `a: {unique: true}` says; an index on a ref is made anyway;
    # a field named a_b and a key on (a, b) would both be called Note_a_b_...
    source = doc("""
    Note:
      fields:
        a: {type: text, unique: true}
        b: {type: text, index: true}
        a_b: {type: text, index: true, unique: false}
        parent: {type: ref, to: Note}
      unique: [[a], [id]]
      indexes: [[b], [parent], [a, b]]
    """)
    applied(tdb, source)
    shape = tdb.shape()["Note"]
    assert shape["uniques"] == {"Note_a_key": ("a",)}  # and the primary key
    assert shape["indexes"]["Note_a_b_idx"] == ("btree", ("a_b",))
    (key,) = [name for name, (_, cols) in shape["indexes"].items() if cols == ("a", "b")]
    assert key.startswith("Note_a_b_") and key.endswith("_idx") and key != "Note_a_b_idx"
    assert plan_migration(load_definition(source), load_definition(source)).changes == []


def test_a_renamed_field_may_take_the_name_a_key_had(tdb):
    # Found by the property test: an index on (a, b) is Note_a_b_idx until a field renamed
    # to a_b needs that name for its own index; the key moves aside to a hashed name in the
    # same push (through temporary names, so the renames do not collide).
    applied(tdb, doc("""
    Note:
      fields:
        a: {type: text}
        b: {type: text}
        amount: {type: text, index: true}
      indexes: [[a, b]]
    """))
    tdb.sql('INSERT INTO "Note" (a, b, amount) VALUES (%s, %s, %s)', ["x", "y", "z"])
    result = applied(tdb, doc("""
    Note:
      fields:
        a: {type: text}
        b: {type: text}
        a_b: {type: text, index: true, renamed_from: amount}
      indexes: [[a, b]]
    """))
    assert tdb.shape()["Note"]["indexes"]["Note_a_b_idx"] == ("btree", ("a_b",))
    assert tdb.sql('SELECT a_b FROM "Note"') == [("z",)]
    assert "renaming" in sql_of(result)


# search, relations, checks --------------------------------------------------------------


def test_adding_search_makes_a_generated_column_with_a_gin_index(tdb):
    applied(tdb, doc("Note:\n  fields:\n    title: {type: string}\n    body: {type: text}\n"))
    tdb.sql("""INSERT INTO "Note" (title, body) VALUES ('Cooking', 'Boiling potatoes'), ('Garden', 'Roses')""")
    result = applied(tdb, doc("""
    Note:
      fields:
        title: {type: string}
        body: {type: text}
      search: [title, body]
    """))
    assert ops(result) == [("additive", "add_search", "Note")]
    assert 'GENERATED ALWAYS AS' in sql_of(result)
    assert 'CREATE INDEX "Note__search_idx" ON "Note" USING gin ("_search")' in sql_of(result)
    assert tdb.columns("Note")["_search"] == ("tsvector", False, True, "s")
    assert tdb.shape()["Note"]["indexes"]["Note__search_idx"] == ("gin", ("_search",))
    query = """SELECT title FROM "Note" WHERE _search @@ plainto_tsquery('english', %s)"""
    assert tdb.sql(query, ["potato"]) == [("Cooking",)]
    tdb.sql("""UPDATE "Note" SET body = 'Tulips' WHERE title = 'Garden'""")
    assert tdb.sql(query, ["tulip"]) == [("Garden",)]
    # narrowing the search to one field, then removing it, keeps the rows
    result = applied(tdb, doc("""
    Note:
      fields:
        title: {type: string}
        body: {type: text}
      search: [title]
    """))
    assert ops(result) == [("additive", "drop_search", "Note"), ("additive", "add_search", "Note")]
    assert tdb.sql(query, ["potato"]) == []
    applied(tdb, doc("Note:\n  fields:\n    title: {type: string}\n"), allow_destructive=True)
    assert "_search" not in tdb.columns("Note")


def test_removing_a_searched_field(tdb):
    applied(tdb, doc("Note:\n  fields:\n    title: {type: string}\n    body: {type: text}\n  search: [title, body]\n"))
    tdb.sql("""INSERT INTO "Note" (title, body) VALUES ('Cooking', 'Boiling potatoes')""")
    applied(tdb, doc("Note:\n  fields:\n    title: {type: string}\n  search: [title]\n"), allow_destructive=True)
    assert tdb.sql("""SELECT title FROM "Note" WHERE _search @@ plainto_tsquery('english', 'cook')""") == [("Cooking",)]


PARENT_CHILD = """
Parent:
  fields:
    name: {{type: text}}
Child:
  fields:
    parent: {{type: ref, to: Parent{options}}}
"""


def test_changing_on_delete_rebuilds_the_relation(tdb):
    applied(tdb, doc(PARENT_CHILD.format(options="")))
    parent = tdb.one('INSERT INTO "Parent" (name) VALUES (%s) RETURNING id', ["p"])
    tdb.sql('INSERT INTO "Child" (parent) VALUES (%s)', [parent])
    result = applied(tdb, doc(PARENT_CHILD.format(options=", on_delete: cascade")))
    assert ops(result) == [("additive", "drop_relation", "Child.parent"), ("additive", "add_relation", "Child.parent")]
    assert "ON DELETE CASCADE" in sql_of(result)
    assert tdb.shape()["Child"]["fks"] == {"Child_parent_fkey": ("parent", "Parent", "CASCADE")}
    tdb.sql('DELETE FROM "Parent"')
    assert tdb.one('SELECT count(*) FROM "Child"') == 0


def test_pointing_a_reference_elsewhere_is_refused_while_values_point_at_the_old_target(tdb):
    applied(tdb, doc(PARENT_CHILD.format(options="") + "Other:\n  fields:\n    x: {type: text}\n"))
    parent = tdb.one('INSERT INTO "Parent" (name) VALUES (%s) RETURNING id', ["p"])
    tdb.sql('INSERT INTO "Child" (parent) VALUES (%s), (NULL)', [parent])
    result = refused(tdb, doc(PARENT_CHILD.format(options="").replace("to: Parent", "to: Other")
                              + "Other:\n  fields:\n    x: {type: text}\n"), "invalid")
    assert codes(result) == [("migration.constraint_violated", "/entities/Child/fields/parent")]
    assert "1 existing rows" in result.errors[0]["message"]


BOUNDED = "Item:\n  fields:\n    qty: {{type: integer{options}}}\n"


def test_a_min_that_existing_rows_break_is_an_error_and_one_they_keep_is_additive(tdb):
    applied(tdb, doc(BOUNDED.format(options="")))
    tdb.sql("""INSERT INTO "Item" (qty) VALUES (1), (5), (NULL)""")
    result = refused(tdb, doc(BOUNDED.format(options=", min: 2, max: 10")), "invalid", allow_destructive=True)
    assert codes(result) == [("migration.constraint_violated", "/entities/Item/fields/qty")]
    assert "1 existing rows" in result.errors[0]["message"]
    result = applied(tdb, doc(BOUNDED.format(options=", min: 0, max: 10")))
    assert sorted(ops(result)) == [("additive", "add_check", "Item.qty")] * 2
    assert 'CHECK ("qty" >= 0)' in sql_of(result)
    assert set(tdb.shape()["Item"]["checks"]) == {"Item_qty_min", "Item_qty_max"}
    # loosening is additive
    result = applied(tdb, doc(BOUNDED.format(options=", max: 100")))
    assert sorted(op for _, op, _ in ops(result)) == ["add_check", "drop_constraint", "drop_constraint"]


# the push as a whole --------------------------------------------------------------------


def test_a_dry_run_plans_and_changes_nothing(notes):
    before = notes.shape()
    result = notes.push(WITH_BODY, dry_run=True)
    assert result.status == "planned"
    assert result.version == 1
    assert ops(result) == [("additive", "add_field", "Note.body")]
    assert notes.shape() == before
    assert live_version(notes.tenant).number == 1
    # a dry run of a destructive change without permission is still refused
    result = notes.push(doc("Other:\n  fields:\n    x: {type: text}\n"), dry_run=True)
    assert result.status == "destructive"


def test_a_push_that_fails_in_postgres_part_way_leaves_nothing_changed(notes):
    # The tenant made a view on Note.title, which the planner knows nothing about: the
    # first statement (adding `body`) runs, dropping `title` then fails. All or nothing.
    notes.sql('CREATE VIEW note_titles AS SELECT title FROM "Note"')
    before = notes.shape()
    result = notes.push(doc("""
    Note:
      fields:
        body: {type: text, default: x}
    """), allow_destructive=True)
    assert result.status == "failed"
    assert result.http_status == 409
    assert codes(result) == [("migration.failed", "")]
    assert "depend" in result.errors[0]["message"]
    assert notes.shape() == before
    assert live_version(notes.tenant).number == 1
    assert titles(notes) == ["first", "second"]


def test_pushing_the_same_definition_twice_is_unchanged(notes):
    result = notes.push(NOTE)
    assert (result.status, result.version, result.plan) == ("unchanged", 1, [])
    # the same tree written differently is the same definition
    result = notes.push('{"version": 1, "entities": {"Note": {"fields": {"title": '
                        '{"type": "string", "required": true, "max_length": 20}}}}}')
    assert result.status == "unchanged"


def test_rolling_back_is_pushing_the_older_version_through_the_planner(notes):
    applied(notes, WITH_BODY)
    notes.sql("""UPDATE "Note" SET body = 'text'""")
    result = refused(notes, NOTE, "destructive")  # v1 again drops body
    assert ops(result) == [("destructive", "drop_field", "Note.body")]
    result = applied(notes, NOTE, allow_destructive=True)
    assert result.version == 3
    assert titles(notes) == ["first", "second"]
    assert [v.number for v in notes.tenant.versions.all()] == [3, 2, 1]
