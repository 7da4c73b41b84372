"""Rule: field options fit the field's type and agree with each other.

min/max belong to numbers, lengths and pattern to text, values to enums, to/related_name
to refs, on_delete to refs and users, precision/scale to decimals. Bounds must be ordered,
integer bounds integral, and a pattern must mean the same in Python (which checks inputs
early) and in Postgres (whose CHECK constraint is the one that holds).
"""

from __future__ import annotations

import re
from typing import Iterator

from ..model import Definition, DefinitionError, Field
from ..walk import all_fields, raw_at

CODES = {
    "field.option_not_allowed": "An option that does not apply to the field's type (min on a string, values on a non-enum, ...).",
    "field.min_greater_than_max": "`min` is greater than `max`, or `min_length` greater than `max_length` (255 for strings when not given).",
    "field.invalid_bound": "A bound of an integer field that is not a whole 64-bit number, or of a float field that no double can hold.",
    "field.invalid_pattern": "`pattern` is not a valid regular expression.",
    "field.pattern_not_portable": "`pattern` uses syntax Postgres regular expressions read differently or not at all (named groups, atomic groups, scoped flags, possessive quantifiers, \\b).",
    "field.invalid_scale": "`scale` without `precision`, or greater than it.",
}

NUMERIC = ("integer", "decimal", "float")
TEXTUAL = ("string", "text", "email", "url")
_APPLIES = {
    "min": NUMERIC, "max": NUMERIC,
    "min_length": TEXTUAL, "max_length": TEXTUAL, "pattern": TEXTUAL,
    "values": ("enum",), "to": ("ref",), "related_name": ("ref",), "on_delete": ("ref", "user"),
    "precision": ("decimal",), "scale": ("decimal",),
}
_BIGINT = (-(2 ** 63), 2 ** 63 - 1)

# Python-only regex syntax that Postgres' ARE engine rejects or reads differently. Escapes
# and bracket expressions are skipped by _outside_brackets before these are searched.
_NOT_PORTABLE = (
    (re.compile(r"\(\?P"), "named groups (?P<...>)"),
    (re.compile(r"\(\?<(?![=!])"), "named groups (?<...>)"),
    (re.compile(r"\(\?>"), "atomic groups (?>...)"),
    (re.compile(r"\(\?[aiLmsux-]+:"), "scoped flags (?i:...)"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers (*+, ++, ?+)"),
    (re.compile(r"\\b"), "\\b (a backspace in Postgres; use \\y for a word boundary)"),
    (re.compile(r"\\B"), "\\B (a backslash in Postgres; use \\Y)"),
)


def is_bigint(value: object) -> bool:
    """A whole number that fits Postgres' bigint (3.0 counts: JSON does not tell them apart)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not value.is_integer():
        return False
    return _BIGINT[0] <= value <= _BIGINT[1]


def _fits_double(value: float) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _outside_brackets(pattern: str) -> str:
    """The pattern with bracket expressions blanked, so only syntax outside them is searched.

    Escapes of letters stay (\\b matters); other escapes become `\\_`, so that an escaped
    quantifier character (`\\+`) never looks like a quantifier.
    """
    out, i, depth = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            out.append("  " if depth else "\\" + (escaped if escaped.isalnum() else "_"))
            i += 2
            continue
        if depth:
            if ch == "]":
                depth = False
            out.append(" ")
        elif ch == "[":
            depth = True
            out.append(" ")
            if pattern[i + 1:i + 2] == "^":
                out.append(" ")
                i += 1
            if pattern[i + 1:i + 2] == "]":  # a leading ] is a literal member
                out.append(" ")
                i += 1
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _pattern_errors(field: Field) -> Iterator[DefinitionError]:
    where = f"{field.path}/pattern"
    try:
        re.compile(field.pattern or "")
    except (re.error, RecursionError, OverflowError) as exc:
        yield DefinitionError("field.invalid_pattern", where, f"Not a valid regular expression: {exc}.")
        return
    plain = _outside_brackets(field.pattern or "")
    for regex, what in _NOT_PORTABLE:
        if regex.search(plain):
            yield DefinitionError("field.pattern_not_portable", where,
                                  f"Postgres regular expressions do not support {what}.")
            return


def check(d: Definition) -> Iterator[DefinitionError]:
    for field, _where in all_fields(d):
        raw_keys = raw_at(d.source, field.path) or {}
        for option, types in _APPLIES.items():
            if option in raw_keys and field.type not in types:
                yield DefinitionError("field.option_not_allowed", f"{field.path}/{option}",
                                      f"'{option}' does not apply to a {field.type} field "
                                      f"(only to {', '.join(types)}).")
        for option in ("min", "max"):
            value = getattr(field, option)
            if value is None or field.type not in ("integer", "float"):
                continue
            if field.type == "integer" and not is_bigint(value):
                yield DefinitionError("field.invalid_bound", f"{field.path}/{option}",
                                      f"An integer field's {option} must be a whole 64-bit number.")
            elif field.type == "float" and not _fits_double(value):
                yield DefinitionError("field.invalid_bound", f"{field.path}/{option}",
                                      f"A float field's {option} must fit a double precision number.")
        if field.type in NUMERIC and field.min is not None and field.max is not None and field.min > field.max:
            yield DefinitionError("field.min_greater_than_max", f"{field.path}/min",
                                  f"min ({field.min}) is greater than max ({field.max}).")
        if (field.type in TEXTUAL and field.min_length is not None and field.max_length is not None
                and field.min_length > field.max_length):
            yield DefinitionError("field.min_greater_than_max", f"{field.path}/min_length",
                                  f"min_length ({field.min_length}) is greater than max_length ({field.max_length}).")
        if field.pattern is not None and field.type in TEXTUAL:
            yield from _pattern_errors(field)
        if field.type == "decimal" and field.scale is not None:
            if field.precision is None:
                yield DefinitionError("field.invalid_scale", f"{field.path}/scale",
                                      "scale needs precision (the total number of digits) too.")
            elif field.scale > field.precision:
                yield DefinitionError("field.invalid_scale", f"{field.path}/scale",
                                      f"scale ({field.scale}) cannot exceed precision ({field.precision}).")
