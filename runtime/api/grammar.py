"""PostgREST's URL grammar: query string and headers in, an `ApiRequest` out
(compare PostgREST's `ApiRequest/QueryParams.hs`).

Pure text processing: nothing here knows the definition, so a name that parses is not yet
a name that exists (the planners check that). Malformed input raises `ApiError` 400
`PGRST100` saying which parameter failed where. Every parser bounds its nesting, so no
input can exhaust the stack.

Pieces the write side reuses: `parse_filter`, `parse_logic`, `parse_conditions`,
`parse_select`, `parse_columns` (also `on_conflict`), `parse_prefer`, `parse_request`.

>>> parse_select("id,title,owner:customer(name)")[2]
Embed(relation='customer', select=(Column(field=FieldRef(name='name', json_path=()), alias=None, cast=None),), alias='owner', hint=None, inner=False)
>>> parse_filter("done", "not.is.true")
Filter(field=FieldRef(name='done', json_path=()), op='is', value='true', negated=True, modifier=None)
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable
from urllib.parse import parse_qsl

from runtime.api.errors import ApiError, bad_request
from runtime.api.request import (
    FTS_OPS, IS_VALUES, LIST_OPS, OPERATORS, QUANTIFIABLE_OPS, ApiRequest, Column, Condition, Embed,
    EmbedPath, FieldRef, Filter, JsonStep, Logic, OrderTerm, Preferences, Range, SelectItem, Star,
)

# Query keys that are not filters (`apikey` is read by authentication, some clients send it
# in the query string).
RESERVED_KEYS = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict", "apikey"})
# `rel.order=...` etc.: the last segment of an embedded key that is not a filter
EMBED_KEYS = frozenset({"order", "limit", "offset", "or", "and"})
LOGIC_KEYS = frozenset({"or", "and"})

MAX_DEPTH = 16            # nesting of embeds and of and/or trees
MAX_ITEMS = 500           # items in one list (select, in.(...), order, a logic tree)
MAX_INT = 2**63 - 1
OBJECT_MEDIA = "application/vnd.pgrst.object+json"
ARRAY_MEDIA = ("application/json", "application/vnd.pgrst.array+json", "application/*", "*/*")

_NAME = re.compile(r"[^\s,.:()!<>\"*{}\-\[\]=&]+")     # a bare name: anything but delimiters
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")    # aliases become SQL identifiers
_CAST = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"-?[0-9]{1,9}")
_OPERATION = re.compile(r"(not\.)?([a-z]+)(?:\(([A-Za-z0-9_]*)\))?\.", re.S)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class _Scanner:
    """A cursor over one parameter's text, with PostgREST-style error messages."""

    def __init__(self, text: str, what: str):
        self.text, self.what, self.pos = text, what, 0

    def fail(self, expecting: str) -> ApiError:
        found = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of input"
        return bad_request(
            f'"failed to parse {self.what} parameter ({_short(self.text)})" (position {self.pos + 1})',
            f"unexpected {found} expecting {expecting}",
        )

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.take(token):
            raise self.fail(repr(token))

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\n\r":
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def name(self, expecting: str = "a name") -> str:
        """A bare name, or one in double quotes (PostgREST's quoted identifiers)."""
        if self.take('"'):
            end = self.text.find('"', self.pos)
            if end <= self.pos:
                raise self.fail('a closing "')
            value, self.pos = self.text[self.pos:end], end + 1
            return value
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise self.fail(expecting)
        self.pos = match.end()
        return match.group()

    def field(self) -> FieldRef:
        """`name` followed by a JSON path of `->key`, `->>key`, `->0`."""
        name = self.name("a field name")
        steps = []
        while self.peek("->"):
            arrow = "->>" if self.take("->>") else (self.take("->") and "->")
            index = _INDEX.match(self.text, self.pos)
            if index and not _NAME.match(self.text, index.end()):
                self.pos = index.end()
                steps.append(JsonStep(arrow, int(index.group())))
            else:
                steps.append(JsonStep(arrow, self.name("a JSON key")))
        return FieldRef(name, tuple(steps))


# select ---------------------------------------------------------------------------------


def parse_select(text: str) -> tuple[SelectItem, ...]:
    """The `select` parameter: columns, aliases, casts, JSON paths and embeddings.

    >>> parse_select("*")
    (Star(),)
    >>> parse_select("id,t:title::text")
    (Column(field=FieldRef(name='id', json_path=()), alias=None, cast=None), Column(field=FieldRef(name='title', json_path=()), alias='t', cast='text'))
    >>> parse_select("meta->tags->>0")[0].field.json_path
    (JsonStep(arrow='->', key='tags'), JsonStep(arrow='->>', key=0))
    >>> parse_select("*,orders!inner(id,lines(*))")[1].inner
    True
    >>> parse_select("customer!customer(name)")[0].hint
    'customer'
    >>> parse_select("id,")
    Traceback (most recent call last):
    ...
    runtime.api.errors.ApiError: "failed to parse select parameter (id,)" (position 4)
    """
    if not text.strip():
        return (Star(),)
    scanner = _Scanner(text, "select")
    items = _select_list(scanner, 0)
    scanner.skip_spaces()
    if not scanner.at_end():
        raise scanner.fail("',' or the end of the select")
    return items


def _select_list(s: _Scanner, depth: int) -> tuple[SelectItem, ...]:
    if depth > MAX_DEPTH:
        raise bad_request(f"select nests embeddings more than {MAX_DEPTH} levels deep")
    items = [_select_item(s, depth)]
    while True:
        s.skip_spaces()
        if not s.take(","):
            break
        items.append(_select_item(s, depth))
        if len(items) > MAX_ITEMS:
            raise bad_request(f"select lists more than {MAX_ITEMS} items")
    return tuple(items)


def _select_item(s: _Scanner, depth: int) -> SelectItem:
    s.skip_spaces()
    if s.take("*"):
        return Star()
    if s.peek("..."):
        raise bad_request("Spread embeddings ('...relation(...)') are not supported.", code="PGRST100")
    start = s.pos
    first = s.name("a field, an alias or '*'")
    alias = None
    if s.peek(":") and not s.peek("::"):
        s.take(":")
        alias = first
        if not _ALIAS.fullmatch(alias):
            raise bad_request(f"The alias '{_short(alias)}' is not valid.",
                              hint="Aliases are letters, digits and _, at most 63, not starting with a digit.")
        s.skip_spaces()
        start = s.pos
    s.pos = start
    # an embedding is a name followed by hints and '(': look ahead without consuming a path
    name = s.name("a field or relationship name")
    if s.peek("!") or s.peek("("):
        hint, inner = None, False
        while s.take("!"):
            word = s.name("a join type or a relationship hint")
            if word in ("inner", "left"):
                inner = word == "inner"
            elif hint is None:
                hint = word
            else:
                raise s.fail("'(' after the relationship hint")
        s.expect("(")
        s.skip_spaces()
        select = () if s.peek(")") else _select_list(s, depth + 1)
        s.skip_spaces()
        s.expect(")")
        return Embed(name, select, alias, hint, inner)
    s.pos = start
    field = s.field()
    if s.peek("."):
        raise bad_request(f"Aggregates and function calls in select are not supported ({_short(s.text)}).")
    cast = None
    if s.take("::"):
        cast = s.name("a type")
        if not _CAST.fullmatch(cast):
            raise s.fail("a type name")
    return Column(field, alias, cast)


def parse_columns(text: str, what: str = "columns") -> tuple[str, ...]:
    """`columns=` (and `on_conflict=`): a comma-separated list of field names.

    >>> parse_columns("title, done")
    ('title', 'done')
    >>> parse_columns('"title",due')
    ('title', 'due')
    """
    scanner = _Scanner(text, what)
    names = []
    while True:
        scanner.skip_spaces()
        names.append(scanner.name("a field name"))
        scanner.skip_spaces()
        if scanner.at_end():
            return tuple(names)
        scanner.expect(",")
        if len(names) > MAX_ITEMS:
            raise bad_request(f"{what} lists more than {MAX_ITEMS} names")


# filters --------------------------------------------------------------------------------


def parse_filter(key: str, value: str, *, quoted: bool = False) -> Filter:
    """One filter: `key` is the field (JSON path allowed), `value` is `[not.]op[(mod)].value`.

    `quoted`: the value sits inside a logic tree, where double quotes delimit it.

    >>> parse_filter("age", "gte.18")
    Filter(field=FieldRef(name='age', json_path=()), op='gte', value='18', negated=False, modifier=None)
    >>> parse_filter("id", 'in.(1,"2,3")').value
    ('1', '2,3')
    >>> parse_filter("title", "wfts(french).chat noir").modifier
    'french'
    >>> parse_filter("name", "like(any).{a*,b*}").value
    ('a*', 'b*')
    >>> parse_filter("meta->>plan", "eq.pro").field
    FieldRef(name='meta', json_path=(JsonStep(arrow='->>', key='plan'),))
    >>> parse_filter("id", "5")
    Traceback (most recent call last):
    ...
    runtime.api.errors.ApiError: "failed to parse filter (5)"
    """
    field = _field_cached(key)
    return _operation(field, value, quoted=quoted)


def _field_of(key: str) -> FieldRef:
    scanner = _Scanner(key, "filter")
    field = scanner.field()
    if not scanner.at_end():
        raise scanner.fail("an operator after the field")
    return field


def _operation(field: FieldRef, text: str, *, quoted: bool) -> Filter:
    match = _OPERATION.match(text)
    if not match:
        raise bad_request(f'"failed to parse filter ({_short(text)})"',
                          "a filter is <operator>.<value>, for example eq.5, in.(1,2), is.null, not.like.*x*")
    negated, op, modifier = bool(match.group(1)), match.group(2), match.group(3)
    raw = text[match.end():]
    if op not in OPERATORS:
        raise bad_request(f'"failed to parse filter ({_short(text)})"', f"unknown operator '{_short(op, 20)}'",
                          hint="Operators: " + ", ".join(OPERATORS))
    value: str | tuple[str, ...]
    if op in LIST_OPS:
        if modifier is not None:
            raise bad_request(f'"failed to parse filter ({_short(text)})"', "in takes no modifier")
        value = _list_value(raw, "(", ")", text)
    elif modifier in ("any", "all"):
        if op not in QUANTIFIABLE_OPS:
            raise bad_request(f'"failed to parse filter ({_short(text)})"', f"{op} takes no (any) or (all)")
        value = _list_value(raw, "{", "}", text)
    elif op == "is":
        value = raw.lower()
        if value not in IS_VALUES or modifier is not None:
            raise bad_request(f'"failed to parse filter ({_short(text)})"',
                              "is takes one of null, not_null, true, false, unknown")
    else:
        if modifier is not None and op not in FTS_OPS:
            raise bad_request(f'"failed to parse filter ({_short(text)})"', f"{op} takes no modifier")
        if op in FTS_OPS and modifier == "":
            raise bad_request(f'"failed to parse filter ({_short(text)})"', "empty text search configuration")
        value = _unquote(raw) if quoted else raw
    return Filter(field, op, value, negated, modifier)


def _unquote(raw: str) -> str:
    """A value in a logic tree or list may be double-quoted, with \\" and \\\\ escapes."""
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


def _list_value(raw: str, open_: str, close: str, text: str) -> tuple[str, ...]:
    """`(a,"b,c",d)` -> ('a', 'b,c', 'd'); quotes protect commas and parentheses."""
    if not (raw.startswith(open_) and raw.endswith(close)) or len(raw) < 2:
        raise bad_request(f'"failed to parse filter ({_short(text)})"', f"expected a list in {open_}...{close}")
    inner = raw[1:-1]
    if not inner.strip():
        return ()
    items = [_unquote(item.strip()) for item in _split_top(inner, text, "filter")]
    if len(items) > MAX_ITEMS * 20:
        raise bad_request(f"a list holds more than {MAX_ITEMS * 20} values")
    return tuple(items)


def _split_top(text: str, whole: str, what: str = "logic tree") -> list[str]:
    """Split on commas outside parentheses, braces and double quotes."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
            if depth < 0:
                raise bad_request(f'"failed to parse {what} ({_short(whole)})"', "unbalanced parentheses")
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted or depth:
        raise bad_request(f'"failed to parse {what} ({_short(whole)})"', "unbalanced quotes or parentheses")
    parts.append(text[start:])
    return parts


def parse_logic(op: str, value: str, *, negated: bool = False, depth: int = 0) -> Logic:
    """`or=(...)` / `and=(...)`: filters written `field.op.value`, nested `and(...)`/`or(...)`.

    >>> tree = parse_logic("or", "(done.is.true,and(due.lt.2024-01-01,not.or(a.eq.1,b.eq.2)))")
    >>> [type(c).__name__ for c in tree.children]
    ['Filter', 'Logic']
    >>> tree.children[1].children[1].negated
    True
    >>> parse_logic("or", '(title.eq."a, b",title.not.like.*x*)').children[0].value
    'a, b'
    >>> parse_logic("or", "(done.is.true")
    Traceback (most recent call last):
    ...
    runtime.api.errors.ApiError: "failed to parse logic tree ((done.is.true)"
    """
    if depth > MAX_DEPTH:
        raise bad_request(f"and/or trees nest more than {MAX_DEPTH} levels deep")
    value = value.strip()
    if not (value.startswith("(") and value.endswith(")")) or len(value) < 2:
        raise bad_request(f'"failed to parse logic tree ({_short(value)})"', "expected (condition,condition,...)")
    parts = _split_top(value[1:-1], value)
    if len(parts) > MAX_ITEMS:
        raise bad_request(f"a logic tree holds more than {MAX_ITEMS} conditions")
    children: list[Condition] = []
    for part in parts:
        part = part.strip()
        match = re.match(r"(not\.)?(and|or)\(", part)
        if match:
            children.append(parse_logic(match.group(2), part[match.end() - 1:], negated=bool(match.group(1)),
                                        depth=depth + 1))
            continue
        scanner = _Scanner(part, "logic tree")
        try:
            field = scanner.field()
            scanner.expect(".")
        except ApiError:
            raise bad_request(f'"failed to parse logic tree ({_short(value)})"',
                              f"expected field.operator.value, got {_short(part, 60)!r}") from None
        children.append(_operation(field, part[scanner.pos:], quoted=True))
    return Logic(op, tuple(children), negated)


# order, ranges --------------------------------------------------------------------------


def parse_order(text: str) -> tuple[OrderTerm, ...]:
    """`order=a.desc.nullslast,b`; a to-one embedding's column as `customer(name).asc`.

    >>> parse_order("due.desc.nullslast,title")
    (OrderTerm(field=FieldRef(name='due', json_path=()), descending=True, nulls='last', relation=None), OrderTerm(field=FieldRef(name='title', json_path=()), descending=False, nulls=None, relation=None))
    >>> parse_order("customer(name).desc")[0].relation
    'customer'
    >>> parse_order("due.sideways")
    Traceback (most recent call last):
    ...
    runtime.api.errors.ApiError: "failed to parse order parameter (due.sideways)" (position 5)
    """
    s = _Scanner(text, "order")
    terms = []
    while True:
        s.skip_spaces()
        relation = None
        field = s.field()
        if s.take("("):
            relation = field.name
            if field.json_path:
                raise s.fail("'.' after the JSON path")
            field = s.field()
            s.expect(")")
        descending, direction, nulls = False, None, None
        while s.take("."):
            at = s.pos
            word = s.name("asc, desc, nullsfirst or nullslast")
            if word in ("asc", "desc") and direction is None and nulls is None:
                descending, direction = word == "desc", word
            elif word in ("nullsfirst", "nullslast") and nulls is None:
                nulls = word[5:]
            else:
                s.pos = at
                raise s.fail("asc, desc, nullsfirst or nullslast")
        terms.append(OrderTerm(field, descending, nulls, relation))
        s.skip_spaces()
        if s.at_end():
            return tuple(terms)
        s.expect(",")
        if len(terms) > MAX_ITEMS:
            raise bad_request(f"order lists more than {MAX_ITEMS} terms")


def parse_count(text: str, what: str) -> int:
    """`limit` and `offset`: whole numbers from 0.

    >>> parse_count("20", "limit")
    20
    >>> parse_count("-1", "limit")
    Traceback (most recent call last):
    ...
    runtime.api.errors.ApiError: "failed to parse limit parameter (-1)"
    """
    text = text.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise bad_request(f'"failed to parse {what} parameter ({_short(text)})"', f"{what} must be a whole number >= 0")
    return int(text)


def parse_range_header(value: str | None, unit: str | None) -> Range | None:
    """`Range: 0-9` (items): offset 0, limit 10; `Range: 5-`: from offset 5.

    >>> parse_range_header("0-9", "items")
    Range(offset=0, limit=10)
    >>> parse_range_header("5-", None)
    Range(offset=5, limit=None)
    >>> parse_range_header("9-0", None) is None
    True
    """
    if not value or (unit and unit.strip().lower() != "items"):
        return None
    match = re.fullmatch(r"\s*(?:items=)?(\d{1,18})-(\d{0,18})\s*", value)
    if not match:
        return None
    start = int(match.group(1))
    if not match.group(2):
        return Range(start, None)
    end = int(match.group(2))
    if end < start:
        return None
    return Range(start, end - start + 1)


def merge_ranges(a: Range, b: Range | None) -> Range:
    """The intersection of the query's limit/offset and the Range header."""
    if b is None:
        return a
    start = max(a.offset, b.offset)
    ends = [r.offset + r.limit for r in (a, b) if r.limit is not None]
    return Range(start, max(0, min(ends) - start) if ends else None)


# headers --------------------------------------------------------------------------------

_PREFER_VALUES = {
    "return": ("minimal", "headers-only", "representation"),
    "count": ("exact", "planned", "estimated"),
    "resolution": ("merge-duplicates", "ignore-duplicates"),
    "missing": ("default", "null"),
    "handling": ("lenient", "strict"),
    "tx": ("commit", "rollback"),
}


def parse_prefer(values: Iterable[str]) -> Preferences:
    """The `Prefer` header(s): `return=representation, count=exact`.

    >>> parse_prefer(["return=representation, count=exact"])
    Preferences(return_='representation', count='exact', resolution=None, missing=None, handling=None, tx=None, max_affected=None, invalid=())
    >>> parse_prefer(["count=bogus", "max-affected=5"]).invalid
    ('count=bogus',)
    """
    found: dict[str, str] = {}
    invalid: list[str] = []
    max_affected = None
    for header in values:
        for token in header.split(","):
            token = token.strip()
            if not token:
                continue
            key, _, val = (part.strip() for part in token.partition("="))
            if key == "max-affected" and val.isdigit() and len(val) <= 18:
                max_affected = int(val)
            elif key in _PREFER_VALUES and val in _PREFER_VALUES[key] and key not in found:
                found[key] = val
            elif key in ("timezone", "params"):
                continue    # accepted by PostgREST, meaningless here
            else:
                invalid.append(token)
    prefs = Preferences(
        return_=found.get("return"), count=found.get("count"), resolution=found.get("resolution"),
        missing=found.get("missing"), handling=found.get("handling"), tx=found.get("tx"),
        max_affected=max_affected, invalid=tuple(invalid),
    )
    if prefs.handling == "strict" and prefs.invalid:
        raise bad_request(f"Invalid preferences given with handling=strict: {', '.join(prefs.invalid)}",
                          code="PGRST122")
    return prefs


def parse_accept(value: str | None) -> bool:
    """True when the caller wants one object (`application/vnd.pgrst.object+json`); raises
    406 when it accepts nothing this API produces.

    >>> parse_accept("application/vnd.pgrst.object+json")
    True
    >>> parse_accept("text/html,application/xhtml+xml,*/*;q=0.8")
    False
    """
    if not value or not value.strip():
        return False
    offered = []
    for part in value.split(","):
        media = part.split(";")[0].strip().lower()
        if media == OBJECT_MEDIA:
            return True
        if media in ARRAY_MEDIA:
            return False
        offered.append(media)
    raise ApiError(406, "PGRST107", f"None of these media types are available: {_short(', '.join(offered))}",
                   hint="Accept application/json, or application/vnd.pgrst.object+json for one object.")


# the whole request ----------------------------------------------------------------------


def _embed_key(key: str) -> tuple[EmbedPath, str] | None:
    """`lines.product.order` -> (('lines', 'product'), 'order'); None for a filter key.

    >>> _embed_key("lines.not.or")
    (('lines',), 'not.or')
    >>> _embed_key("limit")
    ((), 'limit')
    >>> _embed_key("customer.name") is None
    True
    """
    parts = key.split(".")
    if parts[-2:-1] == ["not"] and parts[-1] in LOGIC_KEYS:
        return tuple(parts[:-2]), "not." + parts[-1]
    if parts[-1] in EMBED_KEYS:
        return tuple(parts[:-1]), parts[-1]
    return None


def _filter_key(key: str) -> tuple[EmbedPath, str]:
    """`customer.name` -> (('customer',), 'name'); JSON paths stay with the field:
    `lines.meta->>a.b` -> (('lines',), 'meta->>a.b')."""
    head, arrow, tail = key.partition("->")
    parts = head.split(".")
    for part in parts:
        if not part:
            raise bad_request(f'"failed to parse filter ({_short(key)})"', "an empty name in the filter's path")
    return tuple(parts[:-1]), parts[-1] + arrow + tail


def parse_conditions(items: Iterable[tuple[str, str]]) -> tuple[tuple[EmbedPath, Condition], ...]:
    """The filters and logic trees of a query string, with the embedding path each applies to;
    other keys (select, order, limit, ...) are skipped.

    >>> [(p, type(c).__name__) for p, c in parse_conditions([("done", "is.false"), ("lines.or", "(a.eq.1)"), ("limit", "5")])]
    [((), 'Filter'), (('lines',), 'Logic')]
    """
    conditions = []
    for key, value in items:
        if key in RESERVED_KEYS:
            continue
        embedded = _embed_key(key)
        if embedded:
            path, what = embedded
            if what in ("or", "and", "not.or", "not.and"):
                conditions.append((path, parse_logic(what.removeprefix("not."), value,
                                                     negated=what.startswith("not."))))
            continue
        path, field = _filter_key(key)
        conditions.append((path, parse_filter(field, value)))
    return tuple(conditions)


def parse_query(method: str, items: list[tuple[str, str]], headers=None) -> ApiRequest:
    """The query string's (key, value) pairs and the headers, as an `ApiRequest`.

    >>> r = parse_query("GET", [("select", "id,lines(id)"), ("done", "eq.true"), ("order", "id.desc"),
    ...                         ("limit", "10"), ("lines.limit", "2")], {"Prefer": "count=exact"})
    >>> r.order_at(()), r.range_at(()), r.range_at(("lines",)), r.preferences.count
    ((OrderTerm(field=FieldRef(name='id', json_path=()), descending=True, nulls=None, relation=None),), Range(offset=0, limit=10), Range(offset=0, limit=2), 'exact')
    """
    headers = headers or {}
    select: tuple[SelectItem, ...] = (Star(),)
    orders: dict[EmbedPath, tuple[OrderTerm, ...]] = {}
    limits: dict[EmbedPath, int] = {}
    offsets: dict[EmbedPath, int] = {}
    columns = on_conflict = None
    for key, value in items:
        if key == "select":
            select = _select_cached(value)
        elif key == "columns":
            columns = parse_columns(value)
        elif key == "on_conflict":
            on_conflict = parse_columns(value, "on_conflict")
        elif key not in RESERVED_KEYS:
            embedded = _embed_key(key)
            if embedded and embedded[1] == "order":
                orders[embedded[0]] = _order_cached(value)
            elif embedded and embedded[1] in ("limit", "offset"):
                (limits if embedded[1] == "limit" else offsets)[embedded[0]] = parse_count(value, embedded[1])
        elif key == "order":
            orders[()] = _order_cached(value)
        elif key in ("limit", "offset"):
            (limits if key == "limit" else offsets)[()] = parse_count(value, key)
    ranges = {path: Range(offsets.get(path, 0), limits.get(path)) for path in set(limits) | set(offsets)}
    header_range = parse_range_header(headers.get("Range"), headers.get("Range-Unit"))
    if header_range is not None and method in ("GET", "HEAD"):
        ranges[()] = merge_ranges(ranges.get((), Range()), header_range)
    prefer = headers.get("Prefer")
    return ApiRequest(
        method=method,
        select=select,
        conditions=parse_conditions(items),
        orders=tuple(orders.items()),
        ranges=tuple(ranges.items()),
        preferences=_prefer_cached(prefer or ""),
        single=_accept_cached(headers.get("Accept")),
        columns=columns,
        on_conflict=on_conflict,
    )


class MetaHeaders:
    """Request headers read straight from the WSGI environ: `request.headers` parses every
    header of the request into a mapping, where the grammar reads four.

    >>> MetaHeaders({"HTTP_RANGE_UNIT": "items", "CONTENT_TYPE": "application/json"}).get("Range-Unit")
    'items'
    >>> MetaHeaders({"CONTENT_TYPE": "application/json"}).get("content-type")
    'application/json'
    """

    __slots__ = ("meta",)

    def __init__(self, meta):
        self.meta = meta

    def get(self, name: str, default=None):
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        return self.meta.get(key, default)


# The parts of a request that repeat from one request to the next (a select list, an order,
# a filter's field, the Prefer and Accept headers) are parsed once per worker; their results
# are immutable. Refusals raise, and are not remembered.
_CACHED = 1024
_select_cached = lru_cache(_CACHED)(parse_select)
_order_cached = lru_cache(_CACHED)(parse_order)
_field_cached = lru_cache(_CACHED)(_field_of)
_accept_cached = lru_cache(64)(parse_accept)


@lru_cache(256)
def _prefer_cached(header: str) -> Preferences:
    return parse_prefer([header] if header else [])


def query_items(request) -> list[tuple[str, str]]:
    """The query string's (key, value) pairs in order, decoded as Django's `request.GET`
    decodes them (UTF-8 with replacement, at most DATA_UPLOAD_MAX_NUMBER_FIELDS of them),
    without building its QueryDict."""
    from django.conf import settings

    raw = request.META.get("QUERY_STRING", "")
    try:
        text = raw.encode("iso-8859-1").decode()      # WSGI's str is the bytes as Latin-1
    except UnicodeError:
        text = raw
    try:
        items = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace",
                          max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)
    except ValueError:
        raise bad_request("The query string is not acceptable: it has too many parameters "
                          f"(at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}).") from None
    for key, value in items:
        if "\x00" in key or "\x00" in value:
            raise bad_request("The query string contains a NUL character.")
    return items


def parse_request(request) -> ApiRequest:
    """A Django request as an `ApiRequest`."""
    return parse_query(request.method, query_items(request), MetaHeaders(request.META))
