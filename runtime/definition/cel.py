"""CEL syntax for the definition stage: parse an expression, and find its `secrets.NAME` reads.

Only syntax lives here; what an expression means (types, fields, SQL) belongs to
`runtime.expressions`. Parse trees are cached by source text because the same rule text
recurs (access rules repeated across operations) and several rules look at each one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from celpy.celparser import CELParseError, CELParser
from lark import Token, Tree


@dataclass(frozen=True)
class SecretReads:
    names: tuple[str, ...]     # NAME of every secrets.NAME
    dynamic: bool              # `secrets` used other than as secrets.NAME (secrets['X'], bare)

    @property
    def any(self) -> bool:
        return bool(self.names) or self.dynamic


@functools.cache
def _parser() -> CELParser:
    # Building the grammar costs ~100 ms; do it once per process, on first use.
    return CELParser()


@functools.lru_cache(maxsize=4096)
def parse_cel(source: str) -> Tree:
    """The lark tree of `source`; raises CELParseError."""
    return _parser().parse(source)


def syntax_error(source: str) -> str | None:
    """None if `source` is a syntactically valid CEL expression, else a one-line reason."""
    try:
        parse_cel(source)
    except CELParseError as exc:
        where = f" at column {exc.column}" if exc.column else ""
        if exc.line and exc.line > 1:
            where = f" at line {exc.line}, column {exc.column}"
        return f"CEL syntax error{where}: {_first_line(exc)}"
    except RecursionError:
        return "CEL expression nests too deeply"
    return None


def _first_line(exc: CELParseError) -> str:
    text = str(exc.args[0]) if exc.args else ""
    lines = [line for line in text.splitlines() if line.strip() and line.strip() != "^"]
    return f"cannot parse {lines[0].strip()!r}" if lines else "cannot parse"


def secret_reads(source: str) -> SecretReads:
    """Which secrets an expression reads; an unparseable expression reads none."""
    try:
        tree = parse_cel(source)
    except (CELParseError, RecursionError):
        return SecretReads((), False)
    names: list[str] = []
    dotted = 0
    for node in tree.iter_subtrees_topdown():
        if node.data == "member_dot" and _is_secrets(node.children[0]):
            dotted += 1
            names.append(str(node.children[1]))
    total = sum(1 for node in tree.iter_subtrees() if node.data == "ident" and _is_token(node, "secrets"))
    return SecretReads(tuple(names), total > dotted)


def _is_secrets(member: object) -> bool:
    """True for the subtree `member > primary > ident 'secrets'`."""
    if not (isinstance(member, Tree) and member.data == "member" and member.children):
        return False
    primary = member.children[0]
    if not (isinstance(primary, Tree) and primary.data == "primary" and primary.children):
        return False
    ident = primary.children[0]
    return isinstance(ident, Tree) and ident.data == "ident" and _is_token(ident, "secrets")


def _is_token(node: Tree, value: str) -> bool:
    return len(node.children) == 1 and isinstance(node.children[0], Token) and node.children[0] == value
