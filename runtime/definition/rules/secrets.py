"""Rule: secrets are read as `secrets.NAME`, of a declared secret, inside http and ai steps only.

Keeping secrets to the arguments of outbound calls is what lets the runtime promise they
never reach a row, a log, an error or a run history. A computed name (`secrets[x]`) would
defeat both checks, so it is refused.
"""

from __future__ import annotations

from typing import Iterator

from ..cel import secret_reads
from ..model import Definition, DefinitionError
from ..walk import all_exprs

CODES = {
    "secret.unknown": "`secrets.NAME` names a secret not declared in `secrets`.",
    "secret.not_allowed_here": "A secret is read outside the arguments of an http or ai step.",
    "secret.dynamic_access": "`secrets` is used other than as `secrets.NAME` (indexed, or on its own).",
}

CALL_STEPS = ("http", "ai")


def check(d: Definition) -> Iterator[DefinitionError]:
    declared = set(d.secrets)
    for expression, site in all_exprs(d):
        if expression.is_literal or "secrets" not in expression.source:
            continue  # the substring test skips parsing for nearly every expression
        reads = secret_reads(expression.source)
        if not reads.any:
            continue
        in_call = site is not None and site.step.kind in CALL_STEPS and \
            expression.path.startswith(f"{site.step.path}/{site.step.kind}/")
        if not in_call:
            yield DefinitionError("secret.not_allowed_here", expression.path,
                                  "Secrets can be read only in the arguments of http and ai steps.")
        if reads.dynamic:
            yield DefinitionError("secret.dynamic_access", expression.path,
                                  "Read a secret by its name, as secrets.NAME.")
        for name in reads.names:
            if name not in declared:
                known = ", ".join(d.secrets) or "none declared"
                yield DefinitionError("secret.unknown", expression.path,
                                      f"Secret '{name}' is not declared (secrets: {known}).")
