"""Property: whatever select, filters, order and ranges a caller sends, a read never answers
500 and never shows a row the rules hide. Every row Ann may not read carries the marker
SECRET (which the generated queries never contain, so no error message can echo it);
the answer's bytes must never contain it."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from api_tenants import module_api_tenant
from hypothesis import HealthCheck, given, settings, strategies as st

NOTES = """
version: 1
entities:
  Note:
    fields:
      owner: {type: user, required: true}
      title: {type: string, required: true}
      body: {type: text}
      rank: {type: integer}
      score: {type: decimal}
      done: {type: boolean, default: false}
      due: {type: date}
      meta: {type: json}
      parent: {type: ref, to: Note, related_name: children}
    search: [title, body]
    access:
      read: "record.owner == auth.id"
  Tag:
    fields:
      note: {type: ref, to: Note, required: true, on_delete: cascade, related_name: tags}
      label: {type: string, required: true}
    access:
      read: "record.note.owner == auth.id"
"""


@pytest.fixture(scope="module")
def notes(django_db_setup, django_db_blocker):
    with module_api_tenant(django_db_blocker, source=NOTES) as api:
        api.ann = api.user("ann@example.com")
        api.bob = api.user("bob@example.com")
        bob_note = api.insert("Note", owner=api.bob.id, title="SECRET bob", body="SECRET cats", rank=1,
                              meta={"a": "SECRET", "b": [1, 2]}, due="2024-01-01")
        ann_note = api.insert("Note", owner=api.ann.id, title="ann one", body="cats and dogs", rank=2, score="2.5",
                              meta={"a": "x", "b": [3]}, due="2024-02-01", parent=bob_note)
        api.insert("Note", owner=api.ann.id, title="ann two", body=None, done=True, parent=ann_note)
        bob_child = api.insert("Note", owner=api.bob.id, title="SECRET child", parent=ann_note, meta={"SECRET": 1})
        api.insert("Tag", note=ann_note, label="red")
        bob_tag = api.insert("Tag", note=bob_note, label="SECRET blue")
        # ids no row of Ann's refers to (her note's `parent` shows the id of Bob's note, as
        # a reference column does; the row behind it stays hidden)
        api.hidden_ids = [bob_child, bob_tag]
        yield api


FIELDS = ["id", "title", "body", "rank", "score", "done", "due", "meta", "owner", "parent", "created_at", "nope",
          "meta->a", "meta->>a", "meta->b->0", "meta->>b"]
# filters that make sense, so that many requests do answer rows (the rest explore errors)
VALID_FILTERS = [
    ("title", "eq.ann one"), ("title", "like.*one*"), ("title", "ilike.ANN*"), ("title", "in.(ann one,ann two,x)"),
    ("title", "fts.cats"), ("body", "wfts.cats -dogs"), ("body", "plfts.cats dogs"), ("rank", "gt.1"),
    ("rank", "is.null"), ("rank", "not.is.null"), ("score", "gte.2"), ("done", "is.true"), ("done", "eq.false"),
    ("due", "lt.2024-03-01"), ("meta->>a", "eq.x"), ("meta", 'cs.{"a":"x"}'), ("meta->b->0", "eq.3"),
    ("parent", "not.is.null"), ("title", "match.^ann"), ("title", "neq.ann two"), ("rank", "isdistinct.2"),
]
RELATIONS = ["tags", "children", "parent", "Tag", "Note", "nope", "tags!inner", "parent!inner", "children!parent"]
OPS = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in", "is", "isdistinct", "cs",
       "cd", "fts", "plfts", "phfts", "wfts", "fts(simple)", "eq(any)", "like(all)", "bogus"]
# everything but the marker's letters in a row: values may be anything else
words = st.one_of(
    st.sampled_from(["1", "2", "2.5", "true", "null", "x", "ann one", "cats", "*a*", "(1,2)", "{1}", '{"a":"x"}',
                     "2024-01-15", "'", '"', ";", "--", "%", "%(p1)s", "\\", "()", ",", ".", "->", ""]),
    st.text(max_size=12),
).filter(lambda s: "SECRET" not in s.upper() and "\x00" not in s)


@st.composite
def select_items(draw, depth=0):
    kinds = ["field"] * 4 + ["star", "star", "embed", "embed", "text"]
    kind = draw(st.sampled_from(kinds if depth < 2 else ["field", "star"]))
    if kind == "star":
        return "*"
    if kind == "text":
        return draw(words)
    if kind == "field":
        alias = draw(st.sampled_from(["", "", "x:", "Y_1:"]))
        cast = draw(st.sampled_from(["", "", "", "", "::text", "::int", "::json"]))
        return alias + draw(st.sampled_from(FIELDS[:11] * 3 + FIELDS)) + cast
    inner = draw(st.lists(select_items(depth + 1), min_size=0, max_size=3))
    return draw(st.sampled_from(RELATIONS[:5] * 2 + RELATIONS)) + "(" + ",".join(inner) + ")"


@st.composite
def conditions(draw, depth=0):
    if depth < 2 and draw(st.booleans()):
        items = draw(st.lists(conditions(depth + 1), min_size=1, max_size=3))
        return draw(st.sampled_from(["or(", "and(", "not.or("])) + ",".join(items) + ")"
    if draw(st.integers(0, 3)):
        field, op_value = draw(st.sampled_from(VALID_FILTERS))
        return f"{field}.{op_value}" if "," not in op_value else f'{field}.eq."ann one"'
    return f"{draw(st.sampled_from(FIELDS))}.{draw(st.sampled_from(['', 'not.']))}{draw(st.sampled_from(OPS))}." \
           f"{draw(words)}"


@st.composite
def queries(draw):
    params = [("select", ",".join(draw(st.lists(select_items(), min_size=1, max_size=4))))]
    for _ in range(draw(st.integers(0, 3))):
        prefix = draw(st.sampled_from(["", "", "", "", "tags.", "children.", "parent.", "nope."]))
        kind = draw(st.sampled_from(["filter", "filter", "or", "order", "limit"]))
        if kind == "filter" and draw(st.integers(0, 3)):
            field, op_value = draw(st.sampled_from(VALID_FILTERS))
            params.append((prefix + field, op_value))
        elif kind == "filter":
            params.append((prefix + draw(st.sampled_from(FIELDS)),
                           draw(st.sampled_from(["", "not."])) + draw(st.sampled_from(OPS)) + "." + draw(words)))
        elif kind == "or":
            params.append((prefix + "or", "(" + ",".join(draw(st.lists(conditions(), min_size=1, max_size=3))) + ")"))
        elif kind == "order":
            params.append((prefix + "order", draw(st.sampled_from(FIELDS)) + draw(
                st.sampled_from(["", ".desc", ".asc.nullsfirst", ".desc.nullslast", ".sideways"]))))
        else:
            params.append((prefix + draw(st.sampled_from(["limit", "offset"])),
                           draw(st.sampled_from(["0", "1", "2", "-1", "x", "999"]))))
    return urlencode(params)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(query=queries(), headers=st.sampled_from([{}, {"Prefer": "count=exact"},
                                                  {"Accept": "application/vnd.pgrst.object+json"}]))
def test_reads_never_fail_and_never_leak(notes, db, query, headers):
    response = notes.get("Note?" + query, as_=notes.ann, headers=headers)
    assert response.status_code < 500, (query, response.content[:500])
    assert b"SECRET" not in response.content, (query, response.content[:500])
    for hidden in notes.hidden_ids:
        assert hidden.encode() not in response.content, (query, response.content[:500])
    if response.status_code == 200:
        response.json()      # always valid JSON


def test_the_generator_reaches_rows_at_all(notes, db):
    """The property above is only worth something if Ann's rows do come back."""
    rows = notes.get("Note?select=title,parent(title),children(title),tags(label)&order=title",
                     as_=notes.ann).json()
    assert rows == [
        {"title": "ann one", "parent": None, "children": [{"title": "ann two"}], "tags": [{"label": "red"}]},
        {"title": "ann two", "parent": {"title": "ann one"}, "children": [], "tags": []},
    ]
