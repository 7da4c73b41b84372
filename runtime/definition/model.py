"""The typed tree of a definition: what `parse_definition` produces and every later stage reads.

These classes are the contract between the definition stages (parse, validate, typecheck,
compile) and the runtime. They hold what the document says, already normalised (a single
`from` state becomes a tuple, durations become seconds, system fields are present), and
each node knows its JSON Pointer so that any stage can report an error at the right place.
Nothing here talks to a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

FIELD_TYPES = (
    "string", "text", "integer", "decimal", "float", "boolean", "date", "datetime",
    "json", "email", "url", "uuid", "enum", "ref", "user",
)
SYSTEM_FIELDS = ("id", "created_at", "updated_at")
OPERATIONS = ("read", "create", "update", "delete")
BUILTIN_ROLES = ("anon", "authenticated", "service")
ON_DELETE = ("restrict", "cascade", "set_null")

# What an email or url field accepts: one definition for the validator (defaults) and the
# database (CHECK constraints in runtime/migrations/tables.py), both case-insensitive.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
URL_PATTERN = r"^https?://[^\s]+$"

# Marks a field default that is not a literal but evaluated at write time.
DEFAULT_NOW = "now"
DEFAULT_AUTH_ID = "auth.id"


def pointer(*parts: object) -> str:
    """A JSON Pointer (RFC 6901) from path parts: pointer('entities', 'a/b') == '/entities/a~1b'."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Expr:
    """An expression as written in the definition, with where it stands.

    `source` is the CEL text. Literal YAML values in `set`/`with`/`let` (numbers, booleans,
    null) are kept as `literal` with `source` set to their CEL spelling.
    """

    source: str
    path: str
    literal: Any = None
    is_literal: bool = False


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    path: str
    required: bool = False
    unique: bool = False
    index: bool = False
    has_default: bool = False
    default: Any = None              # a literal, or DEFAULT_NOW / DEFAULT_AUTH_ID
    min: Any = None
    max: Any = None
    min_length: int | None = None
    max_length: int | None = None    # strings default to 255 (set by the parser)
    pattern: str | None = None
    description: str | None = None
    renamed_from: str | None = None
    values: tuple[str, ...] = ()     # enum
    to: str | None = None            # ref: target entity name
    on_delete: str = "restrict"      # ref
    related_name: str | None = None  # ref: name of the reverse collection on `to`
    precision: int | None = None     # decimal
    scale: int | None = None         # decimal
    system: bool = False             # id, created_at, updated_at

    @property
    def is_reference(self) -> bool:
        return self.type in ("ref", "user")


@dataclass(frozen=True)
class Check:
    name: str
    rule: Expr
    message: str | None
    path: str


@dataclass(frozen=True)
class Step:
    """One step of an action, transition, job or workflow.

    `kind` is the step's keyword (`create`, `update`, `http`, `wait`, ...); `args` holds the
    step's other keys as parsed (expressions already wrapped in `Expr`); nested step lists
    (`then`, `else`, `do`, `compensate`) are tuples of `Step` inside `args`.
    """

    kind: str
    target: Any                       # the value under the keyword: entity, job name, expr, ...
    args: Mapping[str, Any]
    path: str
    as_name: str | None = None


@dataclass(frozen=True)
class Transition:
    name: str
    from_states: tuple[str, ...]
    to: str
    path: str
    when: Expr | None = None
    access: Expr | None = None
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class StateMachine:
    field: str
    transitions: Mapping[str, Transition]
    path: str


@dataclass(frozen=True)
class Entity:
    name: str
    fields: Mapping[str, Field]       # declared fields plus the system fields, in order
    path: str
    access: Mapping[str, Expr] = field(default_factory=dict)   # operation -> rule
    checks: tuple[Check, ...] = ()
    states: StateMachine | None = None
    search: tuple[str, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    renamed_from: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Invariant:
    name: str
    anchor: str                       # the `for` entity
    rule: Expr
    message: str | None
    path: str


@dataclass(frozen=True)
class Action:
    name: str
    input: Mapping[str, Field]
    steps: tuple[Step, ...]
    path: str
    access: Expr | None = None
    returns: Expr | None = None


@dataclass(frozen=True)
class Retry:
    attempts: int = 1
    backoff_seconds: float = 0.0


@dataclass(frozen=True)
class Job:
    name: str
    input: Mapping[str, Field]
    steps: tuple[Step, ...]
    path: str
    on: tuple[str, ...] = ()
    schedule: str | None = None
    retry: Retry = Retry()
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class Workflow:
    name: str
    input: Mapping[str, Field]
    steps: tuple[Step, ...]
    path: str
    on: tuple[str, ...] = ()
    retry: Retry = Retry()
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class Auth:
    roles: tuple[str, ...] = ()
    default_role: str | None = None
    signup: str = "open"


@dataclass(frozen=True)
class Definition:
    version: int
    name: str | None
    auth: Auth
    entities: Mapping[str, Entity]
    invariants: Mapping[str, Invariant] = field(default_factory=dict)
    actions: Mapping[str, Action] = field(default_factory=dict)
    jobs: Mapping[str, Job] = field(default_factory=dict)
    workflows: Mapping[str, Workflow] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)   # the raw tree, for storage and diffs


@dataclass(frozen=True)
class DefinitionError:
    """One problem in a definition: stable code, JSON Pointer, a message a person can act on."""

    code: str
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "path": self.path, "message": self.message}


class DefinitionInvalid(Exception):
    """Raised by a stage with every error it found (never just the first)."""

    def __init__(self, errors: list[DefinitionError]):
        self.errors = sorted(errors, key=lambda e: (e.path, e.code))
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in self.errors[:5]))
