"""Where a JSON Pointer lands in a YAML or JSON document, so that the console can show each
definition error next to its line."""

from __future__ import annotations

import yaml


def pointer_lines(source: str) -> dict[str, int]:
    """Every JSON Pointer in the document -> its 1-based line (empty when unparsable)."""
    try:
        root = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def walk(node, path: str) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                part = str(key.value).replace("~", "~0").replace("/", "~1")
                lines[f"{path}/{part}"] = key.start_mark.line + 1
                walk(value, f"{path}/{part}")
                lines[f"{path}/{part}"] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, value in enumerate(node.value):
                walk(value, f"{path}/{index}")

    if root is not None:
        walk(root, "")
    return lines


def line_of(lines: dict[str, int], pointer: str) -> int | None:
    """The line of `pointer`, or of its nearest ancestor present in the document."""
    while True:
        if pointer in lines:
            return lines[pointer]
        if not pointer:
            return None
        pointer = pointer.rsplit("/", 1)[0]
