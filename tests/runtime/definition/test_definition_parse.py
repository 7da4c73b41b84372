"""parse_definition: YAML and JSON to the same plain tree, and hostile input refused cleanly."""

from __future__ import annotations

import json

import pytest

from runtime.definition import DefinitionInvalid, parse_definition
from runtime.definition.parse import MAX_BYTES


def codes(text, content_type=None) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(text, content_type)
    return [(e.code, e.path) for e in caught.value.errors]


def test_json_and_yaml_give_the_same_tree(example_text):
    tree = parse_definition(example_text)
    assert parse_definition(json.dumps(tree), "application/json") == tree
    assert parse_definition(json.dumps(tree)) == tree          # sniffed
    assert parse_definition(json.dumps(tree).encode(), "application/json; charset=utf-8") == tree


def test_the_tree_holds_only_json_values(example_text):
    tree = parse_definition(example_text)
    assert json.loads(json.dumps(tree)) == tree


def test_yaml_is_read_as_yaml_1_2():
    tree = parse_definition("on: [a]\nyes: no\nday: 2024-01-01\nclock: 1:30\nzero: 017\nhex: 0x1F\n"
                            "octal: 0o17\nnothing: ~\nflag: True\nexp: 1e3\ninf: .inf\n")
    assert tree == {"on": ["a"], "yes": "no", "day": "2024-01-01", "clock": "1:30", "zero": 17,
                    "hex": 31, "octal": 15, "nothing": None, "flag": True, "exp": 1000.0, "inf": ".inf"}


def test_aliases_are_expanded():
    assert parse_definition("a: &x {k: 1}\nb: *x\n") == {"a": {"k": 1}, "b": {"k": 1}}


def test_duplicate_keys_are_refused_in_yaml_and_json():
    assert codes("a: 1\nb: {c: 1, c: 2}\na: 3\n") == [("parse.duplicate_key", "/a"),
                                                     ("parse.duplicate_key", "/b/c")]
    assert codes('{"a": {"x~y/z": 1, "x~y/z": 2}}') == [("parse.duplicate_key", "/a/x~0y~1z")]


def test_syntax_errors_say_where():
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition("version: 1\nentities: [a\n")
    assert "line 3" in caught.value.errors[0].message
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition('{"version": 1,\n "x": }', "application/json")
    assert "line 2, column 7" in caught.value.errors[0].message


def test_the_content_type_decides_the_format():
    assert codes("a: 1", "application/json") == [("parse.syntax", "")]
    assert parse_definition("a: 1", "application/x-yaml") == {"a": 1}
    assert parse_definition("{a: 1}") == {"a": 1}   # looks like JSON, is YAML flow style


def test_the_top_level_must_be_a_mapping():
    for text in ("[1, 2]", "", "# nothing\n", "42", "'text'", "null"):
        assert codes(text) == [("parse.not_a_mapping", "")]


def test_oversized_documents_are_refused_before_parsing():
    big = "a: " + "x" * MAX_BYTES
    assert codes(big) == [("parse.too_large", "")]
    assert codes(big.encode()) == [("parse.too_large", "")]


def test_deep_nesting_is_refused_in_both_formats():
    assert codes("a: " + "[" * 10_000 + "]" * 10_000) == [("parse.too_deep", "")]
    assert codes('{"a": ' + "[" * 10_000 + "]" * 10_000 + "}") == [("parse.too_deep", "")]


def test_json_numbers_must_be_finite():
    assert codes('{"a": 1e999}') == [("parse.invalid_scalar", "/a")]
    assert codes('{"a": NaN}', "application/json") == [("parse.syntax", "")]


def test_a_byte_order_mark_is_ignored_and_other_encodings_refused():
    assert parse_definition("\ufeffa: 1".encode()) == {"a": 1}
    assert parse_definition("\ufeffa: 1") == {"a": 1}
    assert codes("a: 'café'".encode("latin-1")) == [("parse.encoding", "")]
