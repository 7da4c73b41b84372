"""What a deletion takes along (`on_delete: cascade`) or clears (`set_null`), through every
level of references and through an end user's deletion, is a write like any other: each
changed row is audited, its invariants are evaluated (409, nothing deleted), and the checks
of a cleared row hold (422, nothing deleted)."""

from __future__ import annotations

import pytest
from platform_client import PlatformClient
from write_support import backend_with, in_thread, wait_while_running_until_blocked

from runtime.api.backends import backend_for
from runtime.api.context import Caller, resolve_tenant
from runtime.api.integrity import WriteSession
from runtime.db import tenant_transaction

BOARDS = """
version: 1
auth: {roles: [member]}
entities:
  Board:
    fields:
      owner: {type: user, required: true, default: auth.id}
      name: {type: string, required: true}
    access: {read: "true", create: "auth != null", delete: "record.owner == auth.id"}
  Lane:
    fields:
      board: {type: ref, to: Board, required: true, on_delete: cascade, related_name: lanes}
      name: {type: string, required: true}
    access: {read: "true", create: "auth != null"}
  Label:
    fields:
      name: {type: string, required: true}
      min_cards: {type: integer, default: 0}
    access: {read: "true", create: "auth != null", update: "auth != null", delete: "auth != null"}
  Card:
    fields:
      lane: {type: ref, to: Lane, required: true, on_delete: cascade, related_name: cards}
      label: {type: ref, to: Label, on_delete: set_null, related_name: cards}
      reviewer: {type: user}
      watcher: {type: user}
      title: {type: string, required: true}
      urgent: {type: boolean, default: false}
    checks:
      - name: urgent_cards_are_labelled
        rule: "!record.urgent || record.label != null"
        message: "An urgent card needs a label"
    access: {read: "true", create: "auth != null"}
  Note:
    fields:
      author: {type: user, required: true, default: auth.id, on_delete: restrict}
      text: {type: string, required: true}
    access: {read: "true", create: "auth != null"}
invariants:
  label_in_use:
    for: Label
    rule: "size(record.cards) >= record.min_cards"
    message: "A label keeps its minimum of cards"
"""


@pytest.fixture
def boards(committed_tenants, alice):
    b = backend_with(committed_tenants, alice, BOARDS, "Boards")
    b.user("ann", "member")
    b.user("bob", "member")
    return b


def make_board(b, who: str, *, label: str | None = None, urgent: bool = False, reviewer: str | None = None,
               watcher: str | None = None) -> dict:
    api = b.as_user(who)
    board = api.post("Board", {"name": "plans"}, prefer="return=representation").body[0]
    lanes = api.post("Lane", [{"board": board["id"], "name": n} for n in ("todo", "done")],
                     prefer="return=representation").body
    cards = api.post("Card", [{"lane": lane["id"], "title": f"card {n}", "label": label, "urgent": urgent,
                               "reviewer": reviewer, "watcher": watcher} for n, lane in enumerate(lanes)],
                     prefer="return=representation").body
    assert len(cards) == 2
    return {"board": board["id"], "lanes": sorted(x["id"] for x in lanes), "cards": sorted(x["id"] for x in cards)}


def audit(b, after: int = 0) -> list[tuple]:
    return b.sql("SELECT actor_kind, actor_id::text, entity, row_id::text, operation, changed, before, after"
                 " FROM _audit WHERE id > %s ORDER BY id", [after])


def last_audit_id(b) -> int:
    return b.sql("SELECT coalesce(max(id), 0) FROM _audit")[0][0]


def count(b, entity: str) -> int:
    return b.sql(f'SELECT count(*) FROM "{entity}"')[0][0]


def delete_user(b, user_id: str):
    return PlatformClient().delete(f"/t/{b.slug}/auth/v1/admin/users/{user_id}",
                                   headers={"apikey": b.keys["service"], "Authorization": f"Bearer {b.keys['service']}"})


def deletion_refused(b, user_id: str, says: str) -> None:
    """The end user's deletion is refused (409 in Supabase Auth's shape, naming `says`),
    and nothing changed: no audit row, the user still there."""
    mark = last_audit_id(b)
    r = delete_user(b, user_id)
    assert r.status_code == 409, r.content
    assert r.json()["error_code"] == "conflict" and says in r.json()["msg"], r.json()
    assert audit(b, mark) == []
    assert b.sql("SELECT count(*) FROM _users WHERE id = %s", [user_id])[0][0] == 1


def test_a_cascade_audits_every_row_it_deletes_through_every_level(boards):
    mine = make_board(boards, "ann")
    other = make_board(boards, "ann")
    mark = last_audit_id(boards)
    r = boards.as_user("ann").delete("Board", f"id=eq.{mine['board']}", prefer="return=representation")
    assert r.status_code == 200 and [row["id"] for row in r.body] == [mine["board"]]   # the rows asked for
    rows = audit(boards, mark)
    deleted = sorted((entity, row) for _, _, entity, row, op, *_ in rows if op == "delete")
    assert deleted == sorted([("Board", mine["board"])] + [("Lane", i) for i in mine["lanes"]]
                             + [("Card", i) for i in mine["cards"]])
    assert len(rows) == 5
    for kind, actor, entity, row, op, changed, before, after in rows:
        assert (kind, actor, op, changed, after) == ("user", boards.users["ann"], "delete", None, None)
        assert before["id"] == row
    card = next(r for r in rows if r[2] == "Card")
    assert card[6]["title"].startswith("card ") and card[6]["lane"] in mine["lanes"]
    # the other board is untouched, and the database's cascade deleted exactly the audited rows
    assert (count(boards, "Board"), count(boards, "Lane"), count(boards, "Card")) == (1, 2, 2)
    assert sorted(i for (i,) in boards.sql('SELECT id::text FROM "Card"')) == other["cards"]


def test_a_cleared_reference_is_an_audited_update_and_its_checks_hold(boards):
    ann = boards.as_user("ann")
    calm, loud = (ann.post("Label", {"name": n}, prefer="return=representation").body[0]["id"] for n in ("calm", "loud"))
    plain = make_board(boards, "ann", label=calm)
    make_board(boards, "ann", label=loud, urgent=True)
    mark = last_audit_id(boards)

    assert ann.delete("Label", f"id=eq.{calm}").status_code == 204
    rows = audit(boards, mark)
    assert [(entity, op) for _, _, entity, _, op, *_ in rows] == [("Card", "update")] * 2 + [("Label", "delete")]
    for _, _, _, row, _, changed, before, after in rows[:2]:
        assert row in plain["cards"] and changed == ["label"]
        assert before["label"] == calm and after["label"] is None and after["title"] == before["title"]
    assert boards.sql('SELECT count(*) FROM "Card" WHERE label IS NULL')[0][0] == 2

    # clearing the label of urgent cards would break their check: 422, and nothing changed
    mark = last_audit_id(boards)
    r = ann.delete("Label", f"id=eq.{loud}")
    assert r.status_code == 422 and "urgent_cards_are_labelled" in r.content.decode(), r.content
    assert audit(boards, mark) == []
    assert boards.sql('SELECT count(*) FROM "Card" WHERE label = %s', [loud])[0][0] == 2
    assert boards.sql('SELECT count(*) FROM "Label" WHERE id = %s', [loud])[0][0] == 1


def test_invariants_reached_through_cascaded_rows_are_evaluated(boards):
    ann = boards.as_user("ann")
    label = ann.post("Label", {"name": "keep", "min_cards": 0}, prefer="return=representation").body[0]["id"]
    first = make_board(boards, "ann", label=label)
    make_board(boards, "ann", label=label)
    assert ann.patch("Label", f"id=eq.{label}", {"min_cards": 4}).status_code == 204

    # the board's cascade would take two of the label's four cards: the invariant refuses it
    mark = last_audit_id(boards)
    r = ann.delete("Board", f"id=eq.{first['board']}")
    assert r.status_code == 409 and "label_in_use" in r.content.decode(), r.content
    assert audit(boards, mark) == []
    assert (count(boards, "Board"), count(boards, "Lane"), count(boards, "Card")) == (2, 4, 4)

    # with a floor the remaining cards keep, the same deletion goes through
    assert ann.patch("Label", f"id=eq.{label}", {"min_cards": 2}).status_code == 204
    assert ann.delete("Board", f"id=eq.{first['board']}").status_code == 204
    assert (count(boards, "Board"), count(boards, "Lane"), count(boards, "Card")) == (1, 2, 2)


def test_deleting_an_end_user_audits_the_rows_their_user_fields_change(boards):
    ann, bob = boards.users["ann"], boards.users["bob"]
    anns = make_board(boards, "ann", reviewer=bob)
    bobs = make_board(boards, "bob", reviewer=bob)
    mark = last_audit_id(boards)

    r = delete_user(boards, bob)
    assert r.status_code == 200, r.content
    rows = audit(boards, mark)
    assert {kind for kind, *_ in rows} == {"service"}
    # bob's board goes (a required user field cascades), with its lanes and cards
    deleted = sorted((entity, row) for _, _, entity, row, op, *_ in rows if op == "delete")
    assert deleted == sorted([("Board", bobs["board"])] + [("Lane", i) for i in bobs["lanes"]]
                             + [("Card", i) for i in bobs["cards"]])
    # ann's cards lose their reviewer (an optional user field is cleared)
    updated = sorted((row, changed, before["reviewer"], after["reviewer"])
                     for _, _, entity, row, op, changed, before, after in rows if op == "update")
    assert updated == [(card, ["reviewer"], bob, None) for card in anns["cards"]]
    assert boards.sql('SELECT count(*) FROM "Card" WHERE reviewer IS NOT NULL')[0][0] == 0
    assert boards.sql('SELECT owner::text FROM "Board"') == [(ann,)]


def test_an_invariant_refuses_an_end_users_deletion_and_nothing_changes(boards):
    bob = boards.users["bob"]
    ann_api = boards.as_user("ann")
    label = ann_api.post("Label", {"name": "keep"}, prefer="return=representation").body[0]["id"]
    make_board(boards, "bob", label=label)
    assert ann_api.patch("Label", f"id=eq.{label}", {"min_cards": 2}).status_code == 204
    deletion_refused(boards, bob, "label_in_use")
    assert (count(boards, "Board"), count(boards, "Card")) == (1, 2)


def test_a_restricting_user_field_refuses_the_users_deletion_with_409_in_auths_shape(boards):
    bob = boards.users["bob"]
    make_board(boards, "bob")
    assert boards.as_user("bob").post("Note", {"text": "mine"}).status_code == 201
    deletion_refused(boards, bob, "Note.author")
    assert (count(boards, "Board"), count(boards, "Card"), count(boards, "Note")) == (1, 2, 1)


def test_a_row_losing_two_references_at_once_is_one_update(boards):
    ann, bob = boards.users["ann"], boards.users["bob"]
    anns = make_board(boards, "ann", reviewer=bob, watcher=bob)
    mark = last_audit_id(boards)
    assert delete_user(boards, bob).status_code == 200
    updates = [(row, sorted(changed), before["reviewer"], before["watcher"], after["reviewer"], after["watcher"])
               for _, _, entity, row, op, changed, before, after in audit(boards, mark) if op == "update"]
    assert sorted(updates) == [(card, ["reviewer", "watcher"], bob, bob, None, None) for card in anns["cards"]]
    assert boards.sql('SELECT owner::text FROM "Board"') == [(ann,)]


def test_a_row_written_for_an_end_user_while_they_are_deleted_is_followed_too(boards):
    """The user's row is locked before the deletion looks for what points at it: a row
    written meanwhile is waited for and then audited, not cascaded away unseen."""
    bob = boards.users["bob"]
    backend = backend_for(boards.tenant.id, resolve_tenant(boards.slug).version)
    mark = last_audit_id(boards)
    with tenant_transaction(boards.tenant.id) as conn:
        session = WriteSession(conn, backend, Caller("service"))
        board = session.insert("Board", [{"owner": bob, "name": "late"}])[0].row.id
        session.finish()
        deleting, answers = in_thread(lambda: delete_user(boards, bob))
        wait_while_running_until_blocked(deleting)       # the deletion waits for us
    deleting.join(60)
    assert answers and answers[0].status_code == 200, answers
    deleted = [(entity, row) for _, _, entity, row, op, *_ in audit(boards, mark) if op == "delete"]
    assert deleted == [("Board", board)]
    assert count(boards, "Board") == 0
