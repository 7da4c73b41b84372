"""Property tests: whatever an author (or an agent) sends, the front end answers with errors,
never with a crash, and every error points at a real place in the document."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from runtime.definition import DefinitionInvalid, load_definition, parse_definition, validate_definition

EXAMPLES = Path(__file__).parents[3] / "examples"
TREES = [parse_definition(p.read_text(encoding="utf-8")) for p in sorted(EXAMPLES.glob("*.yaml"))]
_MISSING = object()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 1, -1, 2 ** 63, 10 ** 400, -(10 ** 400), 1e308, 0.5])
    | st.text(max_size=12) | st.sampled_from(["Order", "Customer", "now", "auth.id", "30s", "draft", "Order.paid"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def locations(tree: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += locations(value, path + (key,))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found += locations(value, path + (i,))
    return found


def strings(tree: Any) -> list[str]:
    if isinstance(tree, dict):
        return list(tree) + [s for v in tree.values() for s in strings(v)]
    if isinstance(tree, list):
        return [s for v in tree for s in strings(v)]
    return [tree] if isinstance(tree, str) else []


def node(tree: Any, path: tuple) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def resolve(tree: Any, pointer: str) -> Any:
    for raw in pointer.split("/")[1:] if pointer else ():
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(tree, dict) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        else:
            return _MISSING
    return tree


@st.composite
def mutated(draw) -> dict:
    tree = copy.deepcopy(draw(st.sampled_from(TREES)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(locations(tree)))
        if not path:
            continue
        parent, key = node(tree, path[:-1]), path[-1]
        action = draw(st.sampled_from(["drop", "replace", "rename_ref", "rename_key", "duplicate"]))
        if action == "drop":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        elif action == "rename_ref":
            parent[key] = draw(st.sampled_from(strings(tree) or ["x"]))
        elif action == "rename_key" and isinstance(parent, dict):
            new = draw(st.sampled_from(strings(tree) + ["Order", "id", "steps", "x"]))
            parent[new] = parent.pop(key)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return tree


def check_errors(tree: Any, errors: list) -> None:
    assert errors
    for error in errors:
        assert error.code and "." in error.code and error.message, error
        assert isinstance(error.path, str) and (error.path == "" or error.path.startswith("/")), error
        assert resolve(tree, error.path) is not _MISSING, error


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_examples_give_errors_not_crashes(tree):
    original = json.dumps(tree, sort_keys=True)
    try:
        definition = validate_definition(tree)
    except DefinitionInvalid as invalid:
        check_errors(tree, invalid.errors)
    else:
        assert definition.source is tree
    assert json.dumps(tree, sort_keys=True) == original   # validation never changes the tree


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TREES), st.data())
def test_damaged_text_gives_errors_not_crashes(tree, data):
    import yaml

    text = yaml.safe_dump(tree, sort_keys=False)
    at = data.draw(st.integers(0, len(text)))
    insert = data.draw(st.sampled_from(["", ":", "- ", "  ", "\n", "{", "]", "'", '"', "&a ", "*a", "!!", "#", "\t", "\x00", "é"]))
    cut = data.draw(st.integers(0, 5))
    damaged = text[:at] + insert + text[at + cut:]
    try:
        load_definition(damaged)
    except DefinitionInvalid as invalid:
        assert all(e.code and e.message for e in invalid.errors)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_input_gives_errors_not_crashes(blob):
    try:
        load_definition(blob)
    except DefinitionInvalid as invalid:
        assert invalid.errors
