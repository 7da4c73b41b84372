"""The types an expression can have, and how definition field types map onto them.

Scalars follow CEL's names (string, int, double, bool, ...) plus `decimal`, `date` and
`uuid`, which the definition needs and CEL lacks. References are their own types: a `Row`
is a reference to one row of an entity (record, a ref field, a ref input, a step result),
`User` a reference to one of the tenant's end users. A `Collection` is a set of rows or
values that only exists inside SQL (an entity, a reverse collection, a filter or map over
them, a list literal). `Obj` is a fixed record of named values (an `ai` step's output, an
`http` result, `event`); `Namespace` is a name that only makes sense followed by a field
(`input`, `secrets`). `ERROR` stands for an expression that already produced an error: it
fits everywhere, so one mistake is reported once.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.definition.model import Field


@dataclass(frozen=True)
class Type:
    def describe(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Scalar(Type):
    name: str                         # string int double decimal bool date timestamp duration uuid dyn null
    enum: tuple[str, ...] = ()        # the allowed values when the string comes from an enum field

    def describe(self) -> str:
        return "enum (" + ", ".join(self.enum) + ")" if self.enum else self.name


@dataclass(frozen=True)
class Row(Type):
    entity: str

    def describe(self) -> str:
        return f"a reference to {self.entity}"


@dataclass(frozen=True)
class User(Type):
    def describe(self) -> str:
        return "a reference to a user"


@dataclass(frozen=True)
class Collection(Type):
    elem: Type

    def describe(self) -> str:
        if isinstance(self.elem, Row):
            return f"a collection of {self.elem.entity} rows"
        return f"a collection of {self.elem.describe()} values"


@dataclass(frozen=True)
class Obj(Type):
    label: str
    fields: tuple[tuple[str, Type], ...]

    def field(self, name: str) -> Type | None:
        return dict(self.fields).get(name)

    def describe(self) -> str:
        return self.label


@dataclass(frozen=True)
class Namespace(Type):
    name: str

    def describe(self) -> str:
        return f"`{self.name}` (use {self.name}.<name>)"


@dataclass(frozen=True)
class ErrorType(Type):
    def describe(self) -> str:
        return "an invalid expression"


STRING, INT, DOUBLE, DECIMAL = Scalar("string"), Scalar("int"), Scalar("double"), Scalar("decimal")
BOOL, DATE, TIMESTAMP, DURATION = Scalar("bool"), Scalar("date"), Scalar("timestamp"), Scalar("duration")
UUID, DYN, NULL = Scalar("uuid"), Scalar("dyn"), Scalar("null")
ERROR = ErrorType()
USER = User()

NUMERIC = ("int", "decimal", "double")
ORDERED = NUMERIC + ("string", "date", "timestamp", "duration")

_FIELD_SCALARS = {
    "string": STRING, "text": STRING, "email": STRING, "url": STRING,
    "integer": INT, "decimal": DECIMAL, "float": DOUBLE, "boolean": BOOL,
    "date": DATE, "datetime": TIMESTAMP, "json": DYN, "uuid": UUID,
}

# The SQL type each scalar is cast to when it arrives as a parameter.
SQL_TYPES = {
    "string": "text", "int": "bigint", "double": "double precision", "decimal": "numeric",
    "bool": "boolean", "date": "date", "timestamp": "timestamptz", "duration": "interval",
    "uuid": "uuid", "dyn": "jsonb",
}


def field_type(field: Field) -> Type:
    if field.type == "enum":
        return Scalar("string", tuple(field.values))
    if field.type == "ref":
        return Row(field.to) if field.to else ERROR
    if field.type == "user":
        return USER
    return _FIELD_SCALARS.get(field.type, ERROR)


def plain(t: Type) -> Type:
    """The type without enum detail (enum strings are strings)."""
    return Scalar(t.name) if isinstance(t, Scalar) and t.enum else t


def is_scalar(t: Type, *names: str) -> bool:
    return isinstance(t, Scalar) and t.name in names


def is_nothing(t: Type) -> bool:
    """True for types that fit anywhere without checks: errors, dyn and null."""
    return isinstance(t, ErrorType) or is_scalar(t, "dyn", "null")


def ref_id_type(t: Type) -> bool:
    """Types whose value is a uuid in SQL: references and uuids."""
    return isinstance(t, (Row, User)) or is_scalar(t, "uuid")


def comparable(a: Type, b: Type) -> bool:
    """Whether `a == b` makes sense."""
    a, b = plain(a), plain(b)
    if is_nothing(a) or is_nothing(b) or a == b:
        return True
    if is_scalar(a, *NUMERIC) and is_scalar(b, *NUMERIC):
        return True
    if {getattr(a, "name", None), getattr(b, "name", None)} == {"date", "timestamp"}:
        return True
    if isinstance(a, Row) and isinstance(b, Row):
        return a.entity == b.entity
    if isinstance(a, (Row, User)) or isinstance(b, (Row, User)):
        # a reference equals a uuid, a reference of its kind; never the other kind
        return ref_id_type(a) and ref_id_type(b) and not (
            {type(a), type(b)} == {Row, User})
    return False


def orderable(a: Type, b: Type) -> bool:
    a, b = plain(a), plain(b)
    if isinstance(a, ErrorType) or isinstance(b, ErrorType):
        return True
    if is_scalar(a, "dyn") or is_scalar(b, "dyn"):
        other = b if is_scalar(a, "dyn") else a
        return is_scalar(other, *ORDERED, "dyn") and not (is_scalar(a, "dyn") and is_scalar(b, "dyn"))
    return is_scalar(a, *ORDERED) and is_scalar(b, *ORDERED) and comparable(a, b)


def numeric_result(a: Type, b: Type) -> Scalar:
    """The type of arithmetic on two numbers: the wider one (int < decimal < double)."""
    names = {plain(a).name, plain(b).name}
    for name in ("double", "decimal", "int"):
        if name in names:
            return Scalar(name)
    return DECIMAL


def unify(a: Type, b: Type) -> Type | None:
    """A type for values that may be either (ternary branches, list items); None if none fits."""
    if isinstance(a, ErrorType) or isinstance(b, ErrorType):
        return ERROR
    if is_scalar(a, "null"):
        return b
    if is_scalar(b, "null"):
        return a
    pa, pb = plain(a), plain(b)
    if pa == pb:
        return a if a == b else pa
    if is_scalar(pa, "dyn"):
        return pb
    if is_scalar(pb, "dyn"):
        return pa
    if is_scalar(pa, *NUMERIC) and is_scalar(pb, *NUMERIC):
        return numeric_result(pa, pb)
    if ref_id_type(pa) and ref_id_type(pb) and comparable(pa, pb):
        return UUID
    return None


def assignable(value: Type, target: Type) -> bool:
    """Whether a value of type `value` may be stored where `target` is expected."""
    value, target = plain(value), plain(target)
    if is_nothing(value) or is_nothing(target) or value == target:
        return True
    if is_scalar(value, *NUMERIC) and is_scalar(target, *NUMERIC):
        return True
    if is_scalar(target, "timestamp") and is_scalar(value, "date"):
        return True
    if isinstance(target, (Row, User)):
        return is_scalar(value, "uuid") or comparable(value, target)
    if is_scalar(target, "uuid"):
        return ref_id_type(value)
    return False
