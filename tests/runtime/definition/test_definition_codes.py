"""Every error code is registered, documented in docs/definition.md, and every rule is wired in."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

from runtime.definition import ERROR_CODES, rules

DOCS = Path(__file__).parents[3] / "docs" / "definition.md"


def documented_codes() -> set[str]:
    text = DOCS.read_text(encoding="utf-8")
    errors = text[text.index("## Errors"):]
    return set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", errors, re.MULTILINE))


def test_every_code_is_documented_and_every_documented_code_exists():
    assert documented_codes() == set(ERROR_CODES)


def test_codes_have_a_stage_prefix_and_a_meaning():
    for code, meaning in ERROR_CODES.items():
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", code), code
        assert meaning.strip(), code


def test_every_rule_module_is_registered_and_documented():
    modules = {name for _, name, _ in pkgutil.iter_modules(rules.__path__)}
    assert modules == {module.__name__.rsplit(".", 1)[1] for module in rules.RULES}
    for module in rules.RULES:
        assert module.__doc__ and module.CODES and callable(module.check), module.__name__

