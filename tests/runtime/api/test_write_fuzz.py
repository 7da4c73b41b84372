"""No body, however malformed, gets a 500: random JSON documents, random field names, and
values of every wrong type, posted and patched through the data API."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_write_integrity import NOTES
from write_support import backend_with

FIELDS = ["folder", "title", "body", "code", "rank", "price", "ratio", "flag", "day", "at", "meta", "ext", "site",
          "mail", "kind", "status", "id", "created_at", "updated_at", "_search"]
EXPECTED = {200, 201, 204, 400, 403, 404, 406, 409, 413, 422}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["2026-01-01", "2026-01-01T00:00:00Z", "00000000-0000-0000-0000-000000000000", "open",
                     "closed", "a", "1e400", "-0", "x@y.io", "https://x.io", "\u0000", "\ud800", "NaN", ""]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                      max_leaves=8)
names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
rows = st.dictionaries(names, values, max_size=6)
bodies = st.one_of(rows, st.lists(rows, max_size=3), values)


@pytest.fixture
def notes(committed_tenants, alice):
    b = backend_with(committed_tenants, alice, NOTES, "Fuzz")
    b.user("ann", "member")
    return b


def _raw(body) -> str:
    try:
        return json.dumps(body)
    except (ValueError, UnicodeEncodeError):
        return "{}"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, method=st.sampled_from(["POST", "PATCH", "PUT"]),
       prefer=st.sampled_from([None, "return=representation", "resolution=merge-duplicates", "missing=default"]))
def test_random_bodies_never_get_a_500(notes, body, method, prefer):
    query = "" if method == "POST" else "id=eq.00000000-0000-0000-0000-000000000000"
    r = notes.service.call(method, "Note", query, None, raw=_raw(body), prefer=prefer)
    assert r.status_code in EXPECTED, (body, r.status_code, r.content[:300])
    if r.status_code >= 400:
        assert set(r.body) == {"code", "message", "details", "hint"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode),
                     st.sampled_from([b"[" * 5000, b'{"title": NaN}', b'{"title": 1e999999}', b"\xff\xfe",
                                      b'{"rank": 1' + b"0" * 5000 + b"}", b'{"meta": ' + b"[" * 200 + b"]" * 200 + b"}"])),
       filters=st.sampled_from(["title=eq.x", "rank=gt.notanumber", "ext=eq.nope", "title=in.(a,b", "nope=eq.1",
                                "title=zz.1", "at=lt.yesterday", "rank=is.maybe"]))
def test_malformed_bodies_and_filters_are_400s(notes, raw, filters):
    for method, query in (("POST", ""), ("PATCH", filters), ("DELETE", filters)):
        r = notes.as_user("ann").call(method, "Note", query, None, raw=raw)
        assert r.status_code in EXPECTED, (method, raw[:80], filters, r.status_code, r.content[:300])
