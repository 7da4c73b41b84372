"""Typed expression nodes: the CEL parse tree reduced to what the compiler understands.

`parse.py` turns cel-python's lark tree into these nodes; `typecheck.py` gives each node a
type and `compile.py` turns the typed tree into SQL. Nodes compare by identity (`eq=False`)
so that the checker can key its type map on the node objects themselves.

`span` is the (start, end) offset of the node in the expression's source, used to quote the
exact text in error messages ("record.customer.emial: Customer has no field ...").
"""

from __future__ import annotations

from dataclasses import dataclass

Span = tuple[int, int]


@dataclass(frozen=True, eq=False)
class Node:
    span: Span


@dataclass(frozen=True, eq=False)
class Lit(Node):
    """A literal. `kind` is one of int, double, string, bytes, bool, null."""

    value: object
    kind: str


@dataclass(frozen=True, eq=False)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, eq=False)
class MapLit(Node):
    """`{k: v}`: parsed so that it can be reported, never compiled."""

    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, eq=False)
class ObjectLit(Node):
    """`Type{field: v}` (a protobuf message literal): parsed to be reported, never compiled."""

    type_name: Node
    fields: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, eq=False)
class Ident(Node):
    name: str


@dataclass(frozen=True, eq=False)
class Select(Node):
    """`operand.name`."""

    operand: Node
    name: str


@dataclass(frozen=True, eq=False)
class Index(Node):
    """`operand[index]`: parsed so that it can be reported, never compiled."""

    operand: Node
    index: Node


@dataclass(frozen=True, eq=False)
class Call(Node):
    """A function call `name(args)` or a method call `target.name(args)`."""

    name: str
    args: tuple[Node, ...]
    target: Node | None = None


@dataclass(frozen=True, eq=False)
class Macro(Node):
    """A comprehension `target.name(var, body)`: exists, all, exists_one, filter, map.

    `map(x, p, e)` (filter then map) keeps the filter in `guard`.
    """

    name: str
    target: Node
    var: str
    body: Node
    guard: Node | None = None


@dataclass(frozen=True, eq=False)
class Unary(Node):
    op: str            # "!" or "-"
    operand: Node


@dataclass(frozen=True, eq=False)
class Binary(Node):
    op: str            # == != < <= > >= in + - * / % && ||
    left: Node
    right: Node


@dataclass(frozen=True, eq=False)
class Cond(Node):
    """`cond ? then : other`."""

    cond: Node
    then: Node
    other: Node


MACROS = ("exists", "all", "exists_one", "filter", "map")


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of a node, in source order (for walkers and tests)."""
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, MapLit):
        return tuple(x for pair in node.entries for x in pair)
    if isinstance(node, ObjectLit):
        return (node.type_name,) + tuple(v for _, v in node.fields)
    if isinstance(node, Select):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.operand, node.index)
    if isinstance(node, Call):
        return ((node.target,) if node.target is not None else ()) + node.args
    if isinstance(node, Macro):
        guard = (node.guard,) if node.guard is not None else ()
        return (node.target,) + guard + (node.body,)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Cond):
        return (node.cond, node.then, node.other)
    return ()
