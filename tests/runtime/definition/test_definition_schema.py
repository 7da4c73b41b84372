"""The published JSON Schema: valid draft 2020-12, self-describing, and in step with the codes."""

from __future__ import annotations

import json
from typing import Any, Iterator

from jsonschema import Draft202012Validator

from runtime.definition import ERROR_CODES, definition_json_schema, parse_definition
from runtime.definition.schema import SCHEMA_FILE


def nodes(schema: Any) -> Iterator[dict]:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from nodes(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from nodes(item)


def test_it_is_a_valid_draft_2020_12_schema():
    schema = definition_json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://")


def test_it_accepts_the_examples(example_text):
    validator = Draft202012Validator(definition_json_schema())
    assert list(validator.iter_errors(parse_definition(example_text))) == []


def test_every_definition_part_has_a_title_and_a_description():
    schema = definition_json_schema()
    for name, part in schema["$defs"].items():
        assert part.get("title") and part.get("description"), name
    for name, part in schema["properties"].items():
        assert part.get("description") or "$ref" in part, name


def test_every_code_the_schema_reports_is_documented():
    declared = {node["x-error-code"] for node in nodes(definition_json_schema()) if "x-error-code" in node}
    assert declared <= set(ERROR_CODES)


def test_every_ref_resolves():
    schema = definition_json_schema()
    for node in nodes(schema):
        if "$ref" in node:
            assert node["$ref"].removeprefix("#/$defs/") in schema["$defs"], node["$ref"]


def test_callers_get_their_own_copy():
    definition_json_schema()["properties"].clear()
    assert definition_json_schema()["properties"]


def test_the_file_is_plain_json():
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == definition_json_schema()


def test_alternatives_report_only_the_branch_the_author_meant():
    from runtime.definition.schema import _convert

    validator = Draft202012Validator({"anyOf": [
        {"type": "string"},
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}},
    ]})
    error = next(validator.iter_errors({"a": "x"}))
    assert [(e.code, e.path) for e in _convert(error)] == [("schema.type", "/a")]
