"""validate_definition: stages gate each other, and the expression type checker is called last."""

from __future__ import annotations

import pytest

from runtime.definition import DefinitionError, DefinitionInvalid, validate_definition
from runtime.definition import validate as stage

GOOD = {"version": 1, "entities": {"Todo": {"fields": {"title": {"type": "string"}},
                                            "access": {"read": "true"}}}}


def errors_of(tree, **kwargs) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(tree, **kwargs)
    return [(e.code, e.path) for e in caught.value.errors]


def test_a_tree_that_is_not_a_mapping_is_a_schema_error():
    assert errors_of([1]) == [("schema.type", "")]


def test_schema_errors_stop_before_the_rules():
    tree = {"version": 1, "entities": {"Order": {"fields": {"total": {"type": "decimall"}}}},
            "invariants": {"x": {"for": "Nope", "rule": "true"}}}
    assert errors_of(tree) == [("schema.enum", "/entities/Order/fields/total/type")]


def test_the_type_checker_runs_once_the_structure_is_sound(monkeypatch):
    seen = []

    def checker(definition):
        seen.append(definition)
        return [DefinitionError("expr.type_mismatch", "/entities/Todo/access/read", "not a boolean")]

    monkeypatch.setattr(stage, "_typechecker", lambda: checker)
    assert errors_of(GOOD) == [("expr.type_mismatch", "/entities/Todo/access/read")]
    assert seen and seen[0].entities["Todo"].access["read"].source == "true"
    assert validate_definition(GOOD, typecheck=False).entities["Todo"]


def test_rule_and_type_errors_are_reported_together_once_per_place(monkeypatch):
    def checker(definition):
        return [DefinitionError("expr.unknown_field", "/entities/Todo/access/read", "no field nope"),
                DefinitionError("expr.unknown_secret", "/entities/Todo/access/update", "no secret X"),
                DefinitionError("expr.internal", "", "confused by the broken invariant")]

    monkeypatch.setattr(stage, "_typechecker", lambda: checker)
    tree = {**GOOD, "entities": {"Todo": {"access": {"read": "record.nope", "update": "secrets.X == 1"}}},
            "invariants": {"x": {"for": "Nope", "rule": "true"}}}
    assert errors_of(tree) == [("expr.unknown_field", "/entities/Todo/access/read"),
                               ("secret.not_allowed_here", "/entities/Todo/access/update"),
                               ("secret.unknown", "/entities/Todo/access/update"),
                               ("invariant.unknown_entity", "/invariants/x/for")]


def test_a_missing_type_checker_is_skipped(monkeypatch):
    monkeypatch.setattr(stage, "_typechecker", lambda: None)
    assert validate_definition(GOOD).entities["Todo"].fields["title"].type == "string"


def test_errors_are_sorted_and_unique():
    tree = {"version": 1, "secrets": ["A", "A", "A"], "auth": {"roles": ["x", "x"]}}
    assert errors_of(tree) == [("name.duplicate", "/auth/roles/1"), ("name.duplicate", "/secrets/1"),
                               ("name.duplicate", "/secrets/2")]
