"""Every error code the definition front end reports, with its meaning, in one place.

Built from the `CODES` of each stage (parse, schema, the semantic rules) so that a code
cannot be emitted without being documented; tests hold docs/definition.md to this list.
"""

from __future__ import annotations

from . import parse, schema
from .rules import RULES


def _collect() -> dict[str, str]:
    codes: dict[str, str] = {}
    for source in (parse, schema, *RULES):
        for code, meaning in source.CODES.items():
            codes.setdefault(code, meaning)
    return dict(sorted(codes.items()))


ERROR_CODES: dict[str, str] = _collect()
