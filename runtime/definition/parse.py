"""Parse: definition text (YAML or JSON) to the plain tree every later stage reads.

The tree holds only what JSON can hold (dicts with string keys, lists, strings, finite
numbers, booleans, null), so a YAML document and its JSON spelling give the same tree.
YAML is read with the YAML 1.2 core schema rather than PyYAML's YAML 1.1 default: `on:`
stays the string "on" (YAML 1.1 reads it as `true`), `2024-01-01` stays a string, and
`1:30` is not the number 90. Size, depth and alias expansion are capped so that a hostile
document cannot exhaust memory or the stack.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from .model import DefinitionError, DefinitionInvalid, pointer

MAX_BYTES = 1_000_000     # a whole backend fits in far less; bigger is a mistake or an attack
MAX_DEPTH = 64            # deeply nested steps still stay well below this
MAX_NODES = 200_000       # after alias expansion: stops "billion laughs" documents

CODES = {
    "parse.encoding": "The document is not UTF-8 text.",
    "parse.too_large": "The document is bigger than 1 MB, or expands (through YAML aliases) to too many nodes.",
    "parse.too_deep": "The document nests deeper than 64 levels.",
    "parse.syntax": "The document is not valid YAML or JSON; the message gives line and column.",
    "parse.not_a_mapping": "The top level is not a mapping (an object).",
    "parse.duplicate_key": "A mapping has the same key twice.",
    "parse.key_not_string": "A mapping key is not a string (a number, boolean, null or collection).",
    "parse.unsupported_tag": "A YAML tag other than the core ones (!!str, !!int, !!float, !!bool, !!null, !!seq, !!map).",
    "parse.invalid_scalar": "A number that is not finite, or a tagged scalar that cannot be read as its tag.",
}

_TAG = "tag:yaml.org,2002:"


class _CoreResolver(BaseResolver):
    """Plain scalars resolved by the YAML 1.2 core schema (the JSON-compatible one)."""

    yaml_implicit_resolvers: dict = {}


_CoreResolver.add_implicit_resolver(
    _TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_CoreResolver.add_implicit_resolver(
    _TAG + "null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_CoreResolver.add_implicit_resolver(
    _TAG + "int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
_CoreResolver.add_implicit_resolver(
    _TAG + "float", re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"))


class _NodeLoader(Reader, Scanner, Parser, Composer, _CoreResolver):
    """Builds YAML nodes only; `_Tree` turns them into values, so no PyYAML constructor runs."""

    def __init__(self, stream: str):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _CoreResolver.__init__(self)


class _Abort(Exception):
    """Stops the walk on a limit; the error is already recorded."""


class _Tree:
    """Turns YAML nodes or decoded JSON into the plain tree, collecting every problem found."""

    def __init__(self) -> None:
        self.errors: list[DefinitionError] = []
        self.nodes = 0

    def fail(self, code: str, path: str, message: str) -> None:
        self.errors.append(DefinitionError(code, path, message))

    def _count(self, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail("parse.too_large", "", f"The document expands to more than {MAX_NODES} nodes "
                      "(YAML aliases count once per use).")
            raise _Abort
        if depth > MAX_DEPTH:
            self.fail("parse.too_deep", path, f"The document nests deeper than {MAX_DEPTH} levels here.")
            raise _Abort

    # -- YAML ------------------------------------------------------------------------

    def from_yaml(self, node: Any, path: str = "", depth: int = 0) -> Any:
        self._count(path, depth)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                return self._bad_tag(node, path)
            return [self.from_yaml(item, f"{path}/{i}", depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag != _TAG + "map":
                return self._bad_tag(node, path)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._key(key_node, path)
                if key is None:
                    continue
                child = path + pointer(key)
                if key in result:
                    line = key_node.start_mark.line + 1
                    self.fail("parse.duplicate_key", child, f"Key '{key}' appears twice in this mapping "
                              f"(again at line {line}); keep one.")
                    continue
                result[key] = self.from_yaml(value_node, child, depth + 1)
            return result
        raise AssertionError(f"unexpected YAML node {node!r}")  # the composer makes no other kinds

    def _key(self, node: Any, path: str) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _TAG + "str":
            return node.value
        where = f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"
        shown = repr(node.value) if isinstance(node, ScalarNode) else "a list or mapping"
        self.fail("parse.key_not_string", path, f"Mapping keys must be strings; {shown} at {where} "
                  "is not (quote it).")
        return None

    def _scalar(self, node: ScalarNode, path: str) -> Any:
        tag, text = node.tag, node.value
        try:
            if tag == _TAG + "str":
                return text
            if tag == _TAG + "null":
                if text in ("", "~", "null", "Null", "NULL"):
                    return None
            elif tag == _TAG + "bool":
                if text.lower() in ("true", "false"):
                    return text.lower() == "true"
            elif tag == _TAG + "int":
                return _yaml_int(text)
            elif tag == _TAG + "float":
                value = float(text)
                if math.isfinite(value):
                    return value
            else:
                return self._bad_tag(node, path)
        except ValueError:
            pass
        self.fail("parse.invalid_scalar", path, f"{text!r} cannot be read as {tag.replace(_TAG, '!!')} "
                  "(numbers must be finite; quote text).")
        return None

    def _bad_tag(self, node: Any, path: str) -> None:
        self.fail("parse.unsupported_tag", path, f"YAML tag {node.tag!r} is not supported; only plain "
                  "values, lists and mappings are.")
        return None

    # -- JSON ------------------------------------------------------------------------

    def from_json(self, value: Any, path: str = "", depth: int = 0) -> Any:
        self._count(path, depth)
        if isinstance(value, _JsonObject):
            result: dict[str, Any] = {}
            for key, item in value:
                child = path + pointer(key)
                if key in result:
                    self.fail("parse.duplicate_key", child, f"Key '{key}' appears twice in this object; keep one.")
                    continue
                result[key] = self.from_json(item, child, depth + 1)
            return result
        if isinstance(value, list):
            return [self.from_json(item, f"{path}/{i}", depth + 1) for i, item in enumerate(value)]
        if isinstance(value, float) and not math.isfinite(value):
            self.fail("parse.invalid_scalar", path, "Numbers must be finite.")
            return None
        return value


class _JsonObject(list):
    """A JSON object as its key/value pairs, so that duplicate keys survive until the walk."""


def _yaml_int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # YAML 1.2: a leading zero does not mean octal


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _decode(text: str | bytes) -> str:
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise _too_large()
        try:
            return text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DefinitionInvalid([DefinitionError(
                "parse.encoding", "", f"The document is not UTF-8 (byte {exc.start}).")]) from None
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _too_large()
    return text.removeprefix("\ufeff")


def _too_large() -> DefinitionInvalid:
    return DefinitionInvalid([DefinitionError(
        "parse.too_large", "", f"The document is larger than {MAX_BYTES} bytes.")])


def _too_deep() -> DefinitionInvalid:
    return DefinitionInvalid([DefinitionError(
        "parse.too_deep", "", f"The document nests deeper than {MAX_DEPTH} levels.")])


def _syntax(message: str) -> DefinitionInvalid:
    return DefinitionInvalid([DefinitionError("parse.syntax", "", message)])


def _wants_json(content_type: str | None, text: str) -> bool | None:
    """True for JSON, False for YAML, None when only sniffing says JSON (YAML is the fallback)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if "json" in kind:
        return True
    if "yaml" in kind or "yml" in kind:
        return False
    return None if text.lstrip().startswith(("{", "[")) else False


def _load_json(text: str, tree: _Tree) -> Any:
    try:
        raw = json.loads(text, object_pairs_hook=_JsonObject, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _syntax(f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # NaN/Infinity, or an integer with thousands of digits
        raise _syntax(f"JSON error: {exc}.") from None
    return tree.from_json(raw)


def _load_yaml(text: str, tree: _Tree) -> Any:
    loader = None
    try:
        loader = _NodeLoader(text)  # the reader refuses control characters right here
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise _syntax(f"YAML syntax error{where}: {problem}.") from None
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        raise _syntax(f"YAML error: {exc}.") from None
    except RecursionError:
        raise _too_deep() from None
    finally:
        if loader is not None:
            loader.dispose()
    return None if node is None else tree.from_yaml(node)


def parse_definition(text: str | bytes, content_type: str | None = None) -> dict:
    """YAML or JSON text to the raw definition tree; raises DefinitionInvalid with `parse.*` errors.

    `content_type` picks the format (`application/json`, `application/yaml`, ...); without
    one, text starting with `{` or `[` is tried as JSON first, anything else is YAML.
    """
    source = _decode(text)
    tree = _Tree()
    as_json = _wants_json(content_type, source)
    try:
        if as_json is None:
            try:
                value = _load_json(source, tree)
            except DefinitionInvalid as json_error:
                try:
                    tree = _Tree()
                    value = _load_yaml(source, tree)
                except DefinitionInvalid:
                    raise json_error from None
        elif as_json:
            value = _load_json(source, tree)
        else:
            value = _load_yaml(source, tree)
    except _Abort:
        raise DefinitionInvalid(tree.errors) from None
    if tree.errors:
        raise DefinitionInvalid(tree.errors)
    if not isinstance(value, dict):
        kind = "an empty document" if value is None else "a list" if isinstance(value, list) else "a single value"
        raise DefinitionInvalid([DefinitionError(
            "parse.not_a_mapping", "", f"A definition is a mapping (version, entities, ...), not {kind}.")])
    return value
