"""The JSON Schema of the definition language, and its errors turned into DefinitionErrors.

`definition.schema.json` is the published contract (served at GET /api/v1/definition-schema)
and the first validation stage. jsonschema's errors are mapped to stable `schema.*` codes
with a JSON Pointer each. A schema node may carry `x-error-code` (and `x-error-message`,
where `{value}` stands for the offending value) to report a domain code instead, e.g.
`name.invalid` for a name that fails its pattern; `type` errors keep `schema.type`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from pathlib import Path
from typing import Any, Iterator

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .model import DefinitionError, pointer

SCHEMA_FILE = Path(__file__).with_name("definition.schema.json")

CODES = {
    "schema.version": "`version` is not 1, the only version this platform reads.",
    "schema.type": "A value has the wrong JSON type (a list where a mapping belongs, a number for a string, ...).",
    "schema.required": "A required key is missing (the path is the mapping that lacks it).",
    "schema.unknown_key": "A key the language does not define at this place (the message suggests the closest one).",
    "schema.enum": "A value is not one of the allowed words (field type, on_delete, http method, signup, ...).",
    "schema.minimum": "A number is below its minimum (retry attempts >= 1, min_length >= 0, ...).",
    "schema.maximum": "A number is above its maximum (retry attempts <= 100, precision <= 1000, ...).",
    "schema.min_items": "A list is empty where at least one item is needed (steps, index fields, `from`, `on`).",
    "schema.min_properties": "A mapping is empty where at least one entry is needed (transitions, let).",
    "schema.unique_items": "A list repeats an item where each must appear once (a transition's `from`).",
    "schema.max_length": "A string is longer than allowed (name label).",
    "schema.invalid": "Any other shape problem; the message says which.",
    # Reported by the schema through x-error-code, named after what they are about:
    "name.invalid": "A name of the wrong shape: entities PascalCase, secrets UPPER_SNAKE_CASE, "
                    "everything else snake_case; ASCII, at most 48 characters, not starting with _.",
    "name.reserved": "A name that is taken: a system field (id, created_at, updated_at), a CEL "
                     "keyword used as a field, input or binding name, a write event (created, "
                     "updated, deleted) as a transition name, or `record` as an input of a job or "
                     "workflow started by events.",
    "auth.builtin_role": "A role in `auth.roles` is named like a built-in role (anon, authenticated, service).",
    "enum.empty": "An enum field has an empty `values` list.",
    "enum.duplicate_value": "An enum field lists a value twice.",
    "enum.invalid_value": "An enum value that is not 1 to 64 ASCII letters, digits, _, . or - (starting with a letter or digit).",
    "event.invalid_name": "An emit step's event is not snake_case words separated by dots.",
    "duration.invalid": "A duration that is not one or more <number><unit> groups (units s, m, h, d) adding up to more than zero.",
    "step.unknown_kind": "A step has none of the step keywords (create, update, ..., wait).",
    "expr.too_complex": "An expression longer than 4000 characters (the expression checker also "
                        "reports expressions that nest too deeply under this code).",
}

_KEYWORD_CODES = {
    "type": "schema.type",
    "required": "schema.required",
    "additionalProperties": "schema.unknown_key",
    "enum": "schema.enum",
    "const": "schema.enum",
    "minimum": "schema.minimum",
    "exclusiveMinimum": "schema.minimum",
    "maximum": "schema.maximum",
    "exclusiveMaximum": "schema.maximum",
    "minItems": "schema.min_items",
    "minProperties": "schema.min_properties",
    "uniqueItems": "schema.unique_items",
    "maxLength": "schema.max_length",
}

_JSON_TYPES = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "a boolean (true or false)", "null": "null",
}


def definition_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a definition; a fresh copy the caller may change."""
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Draft202012Validator:
    # Built once per process, from a copy with the non-recursive $refs inlined: resolving a
    # $ref is jsonschema's most expensive step, and inlining halves validation time.
    schema = _schema()
    defs = schema["$defs"]
    inlined = {key: _inline(value, defs) for key, value in schema.items()}
    return Draft202012Validator(inlined)


_RECURSIVE_DEFS = ("steps", "template")   # these refer to themselves and stay $refs
_ANNOTATIONS = ("title", "description")


def _inline(node: Any, defs: dict) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _inline(value, defs) for key, value in node.items() if key != "$ref"}
    ref = node.get("$ref")
    if ref is None:
        return out
    name = ref.removeprefix("#/$defs/")
    if name in _RECURSIVE_DEFS or name == ref:
        out["$ref"] = ref
        return out
    target = _inline(defs[name], defs)
    if all(key in _ANNOTATIONS for key in out):
        return {**target, **out}
    out["allOf"] = [target, *out.get("allOf", ())]
    return out


def schema_errors(tree: Any) -> list[DefinitionError]:
    """Every place where `tree` breaks the JSON Schema, one error per (code, path)."""
    seen: dict[tuple[str, str], DefinitionError] = {}
    for error in _validator().iter_errors(tree):
        for found in _convert(error):
            seen.setdefault((found.code, found.path), found)
    # A value of the wrong type fails every other keyword at its place too; say it once.
    mistyped = {path for code, path in seen if code == "schema.type"}
    return [e for (code, path), e in seen.items() if code == "schema.type" or path not in mistyped]


def _convert(error: ValidationError) -> Iterator[DefinitionError]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    path = pointer(*error.absolute_path)
    if "propertyNames" in error.relative_schema_path:
        path += pointer(error.instance)  # the key itself is what is wrong, not its parent
    override = schema.get("x-error-code")
    if override and error.validator != "type":
        template = schema.get("x-error-message") or error.message
        yield DefinitionError(override, path, template.replace("{value}", _shown(error.instance)))
    elif error.validator in ("anyOf", "oneOf") and error.context:
        yield from _best_branch(error)
    elif error.validator == "additionalProperties":
        yield from _unknown_keys(error, path)
    else:
        yield DefinitionError(_KEYWORD_CODES.get(str(error.validator), "schema.invalid"), path, _message(error))


def _best_branch(error: ValidationError) -> Iterator[DefinitionError]:
    # Reporting every failed alternative floods the reader. The branch the author meant is
    # one that accepts the value's type, and of those the one that got deepest into it.
    # (jsonschema's best_match prefers shallow errors, which is the wrong way round here.)
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0] if sub.relative_schema_path else None, []).append(sub)
    depth = len(error.absolute_path)

    def score(errors: list[ValidationError]) -> tuple:
        rejects_type = any(e.validator == "type" and len(e.absolute_path) == depth for e in errors)
        return (not rejects_type, max(len(e.absolute_path) for e in errors), -len(errors))

    for sub in max(branches.values(), key=score):
        yield from _convert(sub)


def _unknown_keys(error: ValidationError, path: str) -> Iterator[DefinitionError]:
    schema = error.schema
    known = list(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    what = schema.get("title", "this mapping")
    for key in error.instance:
        if key in known or any(p.search(key) for p in patterns):
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        allowed = f" Allowed here: {', '.join(known)}." if known else ""
        yield DefinitionError("schema.unknown_key", path + pointer(key),
                              f"Unknown key '{key}' in {_article(what)}.{hint}{allowed}")


def _message(error: ValidationError) -> str:
    keyword, expected, value = error.validator, error.validator_value, error.instance
    if keyword == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        title = error.schema.get("title") if isinstance(error.schema, dict) else None
        wanted = " or ".join(_JSON_TYPES.get(k, k) for k in kinds)
        what = f" ({_article(title)})" if title else ""
        return f"Expected {wanted}{what}, got {_json_kind(value)}."
    if keyword == "required":
        missing = [key for key in expected if isinstance(value, dict) and key not in value]
        title = error.schema.get("title", "this mapping")
        return f"Missing required key{'s' if len(missing) > 1 else ''} " \
               f"{', '.join(repr(k) for k in missing)} in {_article(title)}."
    if keyword in ("enum", "const"):
        allowed = [str(v) for v in (expected if keyword == "enum" else [expected])]
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"{_quoted(value)} is not allowed here; use one of: {', '.join(allowed)}.{hint}"
    if keyword in ("minimum", "exclusiveMinimum"):
        return f"{_shown(value)} is too small; the minimum is {expected}."
    if keyword in ("maximum", "exclusiveMaximum"):
        return f"{_shown(value)} is too large; the maximum is {expected}."
    if keyword == "minItems":
        return f"This list needs at least {expected} item{'s' if expected != 1 else ''}."
    if keyword == "minProperties":
        return f"This mapping needs at least {expected} entr{'ies' if expected != 1 else 'y'}."
    if keyword == "uniqueItems":
        return "This list repeats an item; each may appear once."
    if keyword == "maxLength":
        return f"This string is longer than {expected} characters."
    return error.message


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _quoted(value: Any) -> str:
    return f"'{_shown(value)}'" if isinstance(value, str) else _shown(value)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "a mapping"


def _article(noun: str) -> str:
    if noun.startswith("this "):
        return noun
    return ("an " if noun[:1] in "aeiou" else "a ") + noun
