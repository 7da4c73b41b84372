"""What holds on every write whoever writes (the service key included): checks (422), field
constraints (422/400 naming the field), unique (409), references (409), the state field
(transitions only); and the PostgREST write surface: upserts, PUT, columns, missing,
return, select, Content-Range; and the audit row of every written row."""

from __future__ import annotations

import json
import uuid

import pytest

from write_support import backend_with, example

NOTES = """
version: 1
auth: {roles: [member]}
entities:
  Folder:
    fields:
      name: {type: string, required: true, unique: true, max_length: 20}
    access: {read: "true", create: "auth != null", update: "auth != null", delete: "auth != null"}
  Note:
    fields:
      folder: {type: ref, to: Folder, on_delete: restrict, related_name: notes}
      title: {type: string, required: true, max_length: 20}
      body: {type: text, max_length: 50}
      code: {type: string, unique: true}
      rank: {type: integer, min: 0, max: 10}
      price: {type: decimal}
      ratio: {type: float}
      flag: {type: boolean, default: false}
      day: {type: date}
      at: {type: datetime}
      meta: {type: json}
      ext: {type: uuid}
      site: {type: url}
      mail: {type: email}
      kind: {type: enum, values: [a, b], default: a}
      status: {type: enum, values: [open, closed], default: open}
    unique: [[title, kind]]
    checks:
      - name: not_shouting
        rule: "record.body == null || record.body != upper(record.body)"
        message: "Notes may not be written in capitals only"
    states:
      field: status
      transitions:
        close: {from: open, to: closed}
    access: {read: "true", create: "auth != null", update: "auth != null", delete: "auth != null"}
"""


@pytest.fixture
def notes(committed_tenants, alice):
    b = backend_with(committed_tenants, alice, NOTES, "Notes")
    b.user("ann", "member")
    return b


def test_checks_answer_422_with_the_checks_name_and_message_for_every_caller(notes):
    for api in (notes.as_user("ann"), notes.service):
        r = api.post("Note", {"title": "t", "body": "LOUD"})
        assert r.status_code == 422, r.body
        assert r.body["code"] == "23514" and "not_shouting" in r.body["message"]
        assert "capitals only" in r.body["message"]
    ok = notes.service.post("Note", {"title": "t", "body": "quiet"}, prefer="return=representation")
    assert ok.status_code == 201
    r = notes.service.patch("Note", f"id=eq.{ok.body[0]['id']}", {"body": "NOW LOUD"})
    assert r.status_code == 422 and "not_shouting" in r.body["message"]
    assert notes.sql('SELECT body FROM "Note"') == [("quiet",)]


@pytest.mark.parametrize("body,status,says", [
    ({"title": "t", "rank": 11}, 422, "Note.rank is above the field's maximum"),
    ({"title": "t", "rank": -1}, 422, "Note.rank is below the field's minimum"),
    ({"title": "t", "kind": "c"}, 422, "Note.kind is not one of the field's values"),
    ({"title": "t", "mail": "nope"}, 422, "Note.mail is not an email address"),
    ({"title": "t", "site": "ftp://x"}, 422, "Note.site is not an http(s) URL"),
    ({"title": "t", "body": "x" * 51}, 422, "Note.body is longer than the field allows"),
    ({"title": "t" * 21}, 422, "Note.title is longer than the field allows"),
    ({"title": None}, 400, "Note.title is required"),
    ({}, 400, "Note.title is required"),
    ({"title": 5}, 400, "Note.title must be a string"),
    ({"title": "t", "rank": "x"}, 400, "Note.rank must be a whole number"),
    ({"title": "t", "rank": 2**63}, 400, "Note.rank must be a whole number"),
    ({"title": "t", "price": True}, 400, "Note.price must be a number"),
    ({"title": "t", "flag": 1}, 400, "Note.flag must be true or false"),
    ({"title": "t", "day": "2026-02-30"}, 400, "Note.day must be an ISO 8601 date"),
    ({"title": "t", "at": "yesterday"}, 400, "Note.at must be an ISO 8601 date and time"),
    ({"title": "t", "ext": "not-a-uuid"}, 400, "Note.ext must be a uuid"),
    ({"title": "t", "folder": str(uuid.uuid4())}, 409, "Note.folder: no Folder row has this id"),
    ({"title": "t", "nope": 1, "other": 2}, 400, "Note has no field 'nope', 'other'"),
    ({"title": "t", "created_at": "2026-01-01T00:00:00Z"}, 400, "Note.created_at cannot be written"),
    ({"title": "t", "title\u0000": 1}, 400, "Note has no field"),
    ({"title": "t\u0000"}, 400, "NUL"),
])
def test_field_values_are_checked_and_named(notes, body, status, says):
    r = notes.service.post("Note", body)
    assert r.status_code == status, r.body
    assert says in r.body["message"], r.body


def test_typed_values_are_stored_exactly(notes):
    row = {"title": "typed", "rank": 3, "price": "12.345", "ratio": 0.5, "flag": True, "day": "2026-01-31",
           "at": "2026-01-31T10:00:00Z", "meta": {"n": "NUMBER", "deep": [1, {"x": None}]}, "ext": str(uuid.uuid4()),
           "site": "https://x.io", "mail": "a@b.io"}
    raw = json.dumps(row).replace('"NUMBER"', "1.10")   # a JSON number Python floats would shorten
    r = notes.service.post("Note", None, raw=raw, prefer="return=representation")
    assert r.status_code == 201, r.body
    got = r.body[0]
    assert got["price"] == 12.345 and b'"price": 12.345' in r.content
    assert b"1.10" in r.content      # JSON numbers keep their digits
    assert got["day"] == "2026-01-31" and got["at"].startswith("2026-01-31T10:00:00")
    assert got["meta"]["deep"] == [1, {"x": None}] and got["status"] == "open" and got["kind"] == "a"


def test_unique_fields_and_keys_conflict_with_409_naming_the_fields(notes):
    assert notes.service.post("Note", {"title": "a", "code": "X"}).status_code == 201
    r = notes.service.post("Note", {"title": "b", "code": "X"})
    assert r.status_code == 409 and r.body["code"] == "23505" and "Note (code)" in r.body["message"]
    r = notes.service.post("Note", {"title": "a", "code": "Y"})   # (title, kind) is a key too
    assert r.status_code == 409 and "Note (title, kind)" in r.body["message"]


def test_deleting_a_referenced_row_is_a_409(notes):
    folder = notes.service.post("Folder", {"name": "f"}, prefer="return=representation").body[0]["id"]
    assert notes.service.post("Note", {"title": "n", "folder": folder}).status_code == 201
    r = notes.service.delete("Folder", f"id=eq.{folder}")
    assert r.status_code == 409 and r.body["code"] == "23503"
    assert "still referenced by Note.folder" in r.body["message"]


def test_the_state_field_changes_only_through_transitions_even_for_the_service_key(notes, committed_tenants, alice):
    for api in (notes.service, notes.as_user("ann")):
        r = api.post("Note", {"title": "s", "status": "closed"})
        assert r.status_code == 403 and "rpc/Note.close" in r.body["message"], r.body
        ok = api.post("Note", {"title": f"s{api.token is None}", "status": "open"}, prefer="return=representation")
        assert ok.status_code == 201
        r = api.patch("Note", f"id=eq.{ok.body[0]['id']}", {"status": "closed"})
        assert r.status_code == 403 and "Note.status is the state of Note" in r.body["message"]
    assert notes.sql('SELECT DISTINCT status FROM "Note"') == [("open",)]
    shop = backend_with(committed_tenants, alice, example("shop"), "Shop states")
    customer = shop.service.post("Customer", {"name": "c", "email": "c@c.io"}, prefer="return=representation")
    r = shop.service.post("Order", {"customer": customer.body[0]["id"], "status": "placed"})
    assert r.status_code == 403 and "rpc/Order.place" in r.body["message"]


def test_upserts_merge_or_ignore_duplicates_on_a_unique_key(notes):
    api = notes.as_user("ann")
    first = api.post("Folder", [{"name": "a"}, {"name": "b"}], prefer="return=representation")
    ids = {row["name"]: row["id"] for row in first.body}
    merge = api.post("Folder", [{"id": ids["a"], "name": "a2"}, {"name": "c"}], query="on_conflict=id",
                     prefer="resolution=merge-duplicates,return=representation")
    assert merge.status_code == 201, merge.body
    assert sorted(row["name"] for row in merge.body) == ["a2", "c"]
    ignore = api.post("Folder", [{"id": ids["b"], "name": "b2"}, {"name": "d"}],
                      prefer="resolution=ignore-duplicates,return=representation")
    assert [row["name"] for row in ignore.body] == ["d"]
    by_name = api.post("Note", [{"title": "t", "kind": "a", "rank": 1}], query="on_conflict=title,kind",
                       prefer="resolution=merge-duplicates")
    assert by_name.status_code == 201
    again = api.post("Note", [{"title": "t", "kind": "a", "rank": 2}], query="on_conflict=title,kind",
                     prefer="resolution=merge-duplicates")
    assert again.status_code == 201
    assert notes.sql('SELECT rank FROM "Note"') == [(2,)]
    assert sorted(n for (n,) in notes.sql('SELECT name FROM "Folder"')) == ["a2", "b", "c", "d"]
    bad = api.post("Note", {"title": "t"}, query="on_conflict=rank", prefer="resolution=merge-duplicates")
    assert bad.status_code == 400 and "not a unique key" in bad.body["message"]
    # an upsert may not move the state either
    r = api.post("Note", {"title": "t", "kind": "a", "status": "closed"}, query="on_conflict=title,kind",
                 prefer="resolution=merge-duplicates")
    assert r.status_code == 403


def test_put_upserts_one_row_by_id(notes):
    folder_id = str(uuid.uuid4())
    api = notes.as_user("ann")
    r = api.put("Folder", f"id=eq.{folder_id}", {"name": "new"}, prefer="return=representation")
    assert r.status_code == 200 and r.body[0]["id"] == folder_id
    r = api.put("Folder", f"id=eq.{folder_id}", {"id": folder_id, "name": "renamed"})
    assert r.status_code == 204
    assert notes.sql('SELECT name FROM "Folder"') == [("renamed",)]
    assert api.put("Folder", "name=eq.x", {"name": "y"}).status_code == 400
    assert api.put("Folder", f"id=eq.{folder_id}", {"id": str(uuid.uuid4()), "name": "y"}).status_code == 400


def test_columns_missing_default_return_and_content_range(notes):
    api = notes.service
    r = api.post("Note", [{"title": "a", "rank": 1, "junk": "ignored by columns"}, {"title": "b"}],
                 query="columns=title,rank", prefer="return=representation,missing=default")
    assert r.status_code == 201, r.body
    assert [(row["title"], row["rank"], row["flag"]) for row in r.body] == [("a", 1, False), ("b", None, False)]
    # without missing=default, a key some rows lack is null in them (PostgREST): flag is NOT NULL? no: nullable
    r = api.post("Note", [{"title": "c", "flag": True}, {"title": "d"}], prefer="return=representation")
    assert [row["flag"] for row in r.body] == [True, None]
    minimal = api.post("Note", {"title": "e"})
    assert minimal.status_code == 201 and minimal.content == b"" and minimal["Content-Range"] == "*/*"
    r = api.patch("Note", "title=in.(a,b)", {"rank": 5}, prefer="count=exact")
    assert r.status_code == 204 and r["Content-Range"] == "0-1/2"
    r = api.patch("Note", "title=eq.zzz", {"rank": 5})
    assert r.status_code == 204 and r["Content-Range"] == "*/*"
    r = api.call("DELETE", "Note", "rank=gte.5&select=title", prefer="return=representation")
    assert r.status_code == 200 and sorted(x["title"] for x in r.body) == ["a", "b"]
    one = api.patch("Note", "title=eq.c", {"rank": 1}, prefer="return=representation",
                    headers={"Accept": "application/vnd.pgrst.object+json"})
    assert one.status_code == 200 and one.body["title"] == "c"
    many = api.patch("Note", "title=in.(c,d)", {"rank": 9}, prefer="return=representation",
                     headers={"Accept": "application/vnd.pgrst.object+json"})
    assert many.status_code == 406
    assert notes.sql('SELECT rank FROM "Note" WHERE title = %s', ["d"]) == [(None,)]   # rolled back


def test_writes_without_filters_are_refused(notes):
    assert notes.service.patch("Note", "", {"rank": 1}).status_code == 400
    assert notes.service.delete("Note", "").status_code == 400


def test_every_written_row_has_an_audit_row_with_before_and_after(notes):
    ann = notes.as_user("ann")
    r = ann.post("Note", [{"title": "a"}, {"title": "b"}], prefer="return=representation")
    ids = [row["id"] for row in r.body]
    ann.patch("Note", f"id=eq.{ids[0]}", {"rank": 3})
    notes.service.delete("Note", f"id=eq.{ids[1]}")
    rows = notes.sql("SELECT actor_kind, actor_id, entity, row_id::text, operation, changed, before, after "
                     "FROM _audit ORDER BY id")
    assert [(k, op, row) for k, _, _, row, op, *_ in rows] == [
        ("user", "insert", ids[0]), ("user", "insert", ids[1]), ("user", "update", ids[0]),
        ("service", "delete", ids[1])]
    insert, _, update, delete = rows
    assert insert[1] == notes.users["ann"] and insert[6] is None and insert[7]["title"] == "a"
    assert "title" in insert[5]
    assert update[5] == ["rank"] and update[6]["rank"] is None and update[7]["rank"] == 3
    assert delete[1] == "service" and delete[6]["title"] == "b" and delete[7] is None and delete[5] is None
