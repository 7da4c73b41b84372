"""The definition language front end: text in, a typed `Definition` out, or every error.

    parse_definition(text, content_type)  YAML or JSON -> raw tree        (parse.*)
    validate_definition(tree)             raw tree -> Definition          (schema.*, rules, expression types)
    load_definition(text, content_type)   both
    definition_json_schema()              the published JSON Schema (draft 2020-12)
    ERROR_CODES                           every code with its meaning

Errors are `DefinitionInvalid(errors)`, each error a `DefinitionError(code, path, message)`
with a JSON Pointer into the document. The language itself is described in docs/definition.md.
"""

from __future__ import annotations

from .codes import ERROR_CODES
from .model import Definition, DefinitionError, DefinitionInvalid
from .parse import parse_definition
from .schema import definition_json_schema
from .validate import validate_definition


def load_definition(text: str | bytes, content_type: str | None = None) -> Definition:
    """Parse and validate: YAML or JSON text to a `Definition`; raises DefinitionInvalid."""
    return validate_definition(parse_definition(text, content_type))


__all__ = [
    "ERROR_CODES", "Definition", "DefinitionError", "DefinitionInvalid", "definition_json_schema",
    "load_definition", "parse_definition", "validate_definition",
]
