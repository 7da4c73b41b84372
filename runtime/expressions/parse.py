"""CEL text to `ast` nodes, using cel-python's lark grammar.

The lark parser is expensive to build (~0.2 s), so one instance is built lazily and shared;
its LALR `parse` keeps no state between calls, so sharing it across threads is safe (we call
the lark object directly rather than `CELParser.parse`, which stores the text on itself).
Parsed trees are immutable and cached by source text.

cel-python's grammar nests one tree level per precedence rule; the converter walks through
those pass-through levels in a loop so that Python recursion only grows with real nesting,
and a depth limit turns pathological input into `expr.too_complex` instead of a crash.
"""

from __future__ import annotations

import functools
import re
import threading

from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from runtime.expressions import ast
from runtime.expressions.errors import ExprProblem

MAX_SOURCE_CHARS = 4000
MAX_DEPTH = 50

_lock = threading.Lock()
_lark = None

# Rules that only wrap their single child: the converter steps through them without recursing.
_PASS = {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
         "unary", "member", "primary", "paren_expr"}
_BINARY = {
    "relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
    "relation_eq": "==", "relation_ne": "!=", "relation_in": "in",
    "addition_add": "+", "addition_sub": "-",
    "multiplication_mul": "*", "multiplication_div": "/", "multiplication_mod": "%",
}
_ESCAPE = re.compile(r"\\(?:[abfnrtv\"'\\`?]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-3][0-7]{2})")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   '"': '"', "'": "'", "\\": "\\", "`": "`", "?": "?"}
INT64 = (-(2 ** 63), 2 ** 63 - 1)


def _parser():
    global _lark
    if _lark is None:
        with _lock:
            if _lark is None:
                from celpy.celparser import CELParser
                CELParser()   # builds the shared lark instance with cel-python's options
                _lark = CELParser.CEL_PARSER
    return _lark


@functools.lru_cache(maxsize=4096)
def parse(source: str) -> ast.Node:
    """Parse CEL text; raises `ExprProblem` (expr.syntax, expr.too_complex, ...)."""
    if not isinstance(source, str) or not source.strip():
        raise ExprProblem("expr.syntax", "empty expression")
    if len(source) > MAX_SOURCE_CHARS:
        raise ExprProblem("expr.too_complex",
                          f"expression is {len(source)} characters long (at most {MAX_SOURCE_CHARS})")
    try:
        tree = _parser().parse(source)
    except UnexpectedEOF:
        raise ExprProblem("expr.syntax", f"{source!r}: unexpected end of expression") from None
    except UnexpectedToken as ex:
        found = "end of expression" if ex.token.type == "$END" else repr(str(ex.token))
        raise ExprProblem("expr.syntax",
                          f"{source!r}: unexpected {found} at column {ex.column}") from None
    except UnexpectedCharacters as ex:
        char = source[ex.pos_in_stream] if 0 <= ex.pos_in_stream < len(source) else "?"
        raise ExprProblem("expr.syntax",
                          f"{source!r}: unexpected character {char!r} at column {ex.column}") from None
    except (LarkError, RecursionError) as ex:
        raise ExprProblem("expr.syntax", f"{source!r}: {type(ex).__name__}") from None
    try:
        return _Converter(source).convert(tree, (0, len(source)), 0)
    except RecursionError:
        raise ExprProblem("expr.too_complex", "expression nests too deeply") from None


class _Converter:
    def __init__(self, source: str):
        self.source = source

    def convert(self, tree, span, depth: int) -> ast.Node:
        if depth > MAX_DEPTH:
            raise ExprProblem("expr.too_complex",
                              f"expression nests more than {MAX_DEPTH} levels deep; split it up")
        while True:
            span = _span(tree, span)
            kind = tree.data
            kids = tree.children
            if kind == "expr" and len(kids) == 3:
                return ast.Cond(span, *(self.convert(k, span, depth + 1) for k in kids))
            if kind in ("conditionalor", "conditionaland") and len(kids) == 2:
                op = "||" if kind == "conditionalor" else "&&"
                return ast.Binary(span, op, self.convert(kids[0], span, depth + 1),
                                  self.convert(kids[1], span, depth + 1))
            if kind in ("relation", "addition", "multiplication") and len(kids) == 2:
                left = kids[0]
                return ast.Binary(span, _BINARY[left.data],
                                  self.convert(left.children[0], span, depth + 1),
                                  self.convert(kids[1], span, depth + 1))
            if kind == "unary" and len(kids) == 2:
                op = "!" if kids[0].data == "unary_not" else "-"
                return ast.Unary(span, op, self.convert(kids[1], span, depth + 1))
            if kind in _PASS and len(kids) == 1 and isinstance(kids[0], Tree):
                tree = kids[0]
                continue
            return self.construct(tree, span, depth)

    def construct(self, tree, span, depth: int) -> ast.Node:
        kind, kids = tree.data, tree.children
        sub = functools.partial(self.convert, span=span, depth=depth + 1)
        if kind == "literal":
            return _literal(kids[0], span)
        if kind in ("ident", "dot_ident"):
            return ast.Ident(span, str(kids[0]))
        if kind == "member_dot":
            return ast.Select(span, sub(kids[0]), str(kids[1]))
        if kind == "member_dot_arg":
            args = tuple(sub(k) for k in kids[2].children) if len(kids) > 2 else ()
            return _method(span, sub(kids[0]), str(kids[1]), args)
        if kind in ("ident_arg", "dot_ident_arg"):
            args = tuple(sub(k) for k in kids[1].children) if len(kids) > 1 else ()
            return ast.Call(span, str(kids[0]), args)
        if kind == "list_lit":
            return ast.ListLit(span, tuple(sub(k) for k in kids[0].children) if kids else ())
        if kind == "map_lit":
            items = [sub(k) for k in kids[0].children] if kids else []
            return ast.MapLit(span, tuple(zip(items[::2], items[1::2])))
        if kind == "member_index":
            return ast.Index(span, sub(kids[0]), sub(kids[1]))
        if kind == "member_object":
            inits = kids[1].children if len(kids) > 1 else []
            fields = tuple((str(n), sub(v)) for n, v in zip(inits[::2], inits[1::2]))
            return ast.ObjectLit(span, sub(kids[0]), fields)
        raise ExprProblem("expr.syntax", f"unexpected construct {kind!r}")


def _method(span, target: ast.Node, name: str, args: tuple[ast.Node, ...]) -> ast.Node:
    """A method call, or a macro when the name is one and the first argument is a variable."""
    if name in ast.MACROS and len(args) in (2, 3) and isinstance(args[0], ast.Ident):
        if len(args) == 3 and name != "map":
            return ast.Call(span, name, args, target)     # reported as bad arguments later
        guard = args[1] if len(args) == 3 else None
        return ast.Macro(span, name, target, args[0].name, args[-1], guard)
    return ast.Call(span, name, args, target)


def _span(tree, fallback):
    meta = getattr(tree, "meta", None)
    if meta is None or getattr(meta, "empty", True):
        return fallback
    return (meta.start_pos, meta.end_pos)


def _literal(token: Token, span) -> ast.Lit:
    text, kind = str(token), token.type
    if kind == "NULL_LIT":
        return ast.Lit(span, None, "null")
    if kind == "BOOL_LIT":
        return ast.Lit(span, text == "true", "bool")
    if kind in ("INT_LIT", "UINT_LIT"):
        digits = text.rstrip("uU")
        sign = -1 if digits.startswith("-") else 1
        digits = digits.lstrip("-")
        value = sign * (int(digits[2:], 16) if digits[:2].lower() == "0x" else int(digits))
        if not INT64[0] <= value <= INT64[1]:
            raise ExprProblem("expr.bad_literal", f"{text}: integers must fit in 64 bits")
        return ast.Lit(span, value, "int")
    if kind == "FLOAT_LIT":
        from decimal import Decimal
        value = Decimal(text)
        # Kept as an exact decimal: SQL compares it with numeric columns without rounding.
        if abs(value.adjusted()) > 300:
            raise ExprProblem("expr.bad_literal", f"{text}: number out of range")
        return ast.Lit(span, value, "double")
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        value = _string(text)
        if "\x00" in value:
            raise ExprProblem("expr.bad_literal", f"{text}: strings may not contain NUL characters")
        return ast.Lit(span, value, "string")
    if kind == "BYTES_LIT":
        raise ExprProblem("expr.unsupported", f"{text}: bytes literals are not supported")
    raise ExprProblem("expr.syntax", f"unknown literal {text!r}")


def _string(text: str) -> str:
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = 3 if text[:3] in ('"""', "'''") else 1
    body = text[quote:-quote]
    if raw:
        return body

    def expand(match: re.Match) -> str:
        esc = match.group()[1:]
        if esc[0] in "xuU":
            code = int(esc[1:], 16)
        elif esc[0].isdigit():
            code = int(esc, 8)
        else:
            return _SIMPLE_ESCAPES[esc]
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise ExprProblem("expr.bad_literal", f"\\{esc}: not a valid character")
        return chr(code)

    return _ESCAPE.sub(expand, body)
