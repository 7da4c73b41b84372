"""Type-check an expression against the definition and the scope it stands in.

`Checker.check` gives every node a type (kept in `types`, keyed by node identity, for the
compiler) and collects every problem it meets instead of stopping at the first. A node
that failed gets `ERROR`, which fits everywhere, so one mistake is reported once.
Operators live in `typecheck_ops.py`; this module handles names, paths, calls and macros.
"""

from __future__ import annotations

import difflib

from runtime.definition.model import Definition, Field
from runtime.expressions import ast, functions as F, types as T
from runtime.expressions.errors import ExprProblem
from runtime.expressions.scope import RESERVED, Scope, names_in, reverse_collections, row_member
from runtime.expressions.typecheck_ops import OperatorChecks

USER_FIELDS = {"id": T.UUID, "email": T.STRING, "role": T.STRING}


def suggest(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class Checker(OperatorChecks):
    def __init__(self, definition: Definition, scope: Scope, source: str):
        self.definition = definition
        self.scope = scope
        self.source = source
        self.types: dict[int, T.Type] = {}
        self.problems: list[ExprProblem] = []

    # -- helpers -----------------------------------------------------------------------
    def text(self, node: ast.Node) -> str:
        return self.source[node.span[0]:node.span[1]].strip() or self.source

    def fail(self, code: str, message: str) -> T.Type:
        self.problems.append(ExprProblem(code, message))
        return T.ERROR

    def type_of(self, node: ast.Node) -> T.Type:
        return self.types.get(id(node), T.ERROR)

    def check(self, node: ast.Node, env: dict[str, T.Type]) -> T.Type:
        method = getattr(self, "_" + type(node).__name__.lower())
        result = method(node, env)
        self.types[id(node)] = result
        return result

    def scalar(self, node: ast.Node, env, what: str) -> T.Type:
        """Check a node that must be one value (not a collection, not a bare namespace)."""
        t = self.check(node, env)
        if isinstance(t, T.Collection):
            return self.fail("expr.collection_as_scalar",
                             f"{self.text(node)} is {t.describe()}, but {what} needs one value; "
                             "use exists(), map() with sum(), size(), ...")
        if isinstance(t, T.Namespace):
            return self.fail("expr.type_mismatch", f"{self.text(node)}: {what} needs a value, "
                                                   f"found {t.describe()}")
        return t

    # -- leaves ------------------------------------------------------------------------
    def _lit(self, node: ast.Lit, env) -> T.Type:
        return {"int": T.INT, "double": T.DOUBLE, "string": T.STRING, "bool": T.BOOL}.get(
            node.kind, T.NULL)

    def _listlit(self, node: ast.ListLit, env) -> T.Type:
        elem: T.Type = T.NULL
        for item in node.items:
            t = self.scalar(item, env, "a list item")
            if isinstance(t, T.Obj):
                # a list becomes a SQL array, which holds values and row ids, not objects
                return self.fail("expr.type_mismatch", f"{self.text(node)}: list items must be values "
                                                       f"or rows, found {t.describe()}")
            joined = T.unify(elem, t)
            if joined is None:
                return self.fail("expr.type_mismatch",
                                 f"{self.text(node)}: list items must have one type, found "
                                 f"{elem.describe()} and {t.describe()}")
            elem = joined
        return T.Collection(elem)

    def _unsupported(self, node: ast.Node, env) -> T.Type:
        for child in ast.children(node):
            self.check(child, env)
        what = {"MapLit": "map literals are", "ObjectLit": "message literals are",
                "Index": "indexing with [] is"}[type(node).__name__]
        return self.fail("expr.unsupported", f"{self.text(node)}: {what} not supported "
                                             "(indexing works on json values only)")

    _maplit = _objectlit = _unsupported

    def _index(self, node: ast.Index, env) -> T.Type:
        t = self.check(node.operand, env)
        if T.is_scalar(t, "dyn") and isinstance(node.index, ast.Lit) and node.index.kind in ("int", "string"):
            self.check(node.index, env)
            return T.DYN       # json values: contact.body.items[0], record.meta['key']
        if isinstance(t, T.ErrorType):
            return t
        return self._unsupported(node, env)

    def _ident(self, node: ast.Ident, env) -> T.Type:
        name, scope = node.name, self.scope
        if name in env:
            return env[name]
        if name == "record":
            if scope.record:
                return T.Row(scope.record)
        elif name == "auth":
            return T.USER
        elif name == "now":
            return T.TIMESTAMP
        elif name == "input":
            if scope.input is not None:
                return T.Namespace("input")
            return self.fail("expr.input_not_available",
                             f"input is not available in {scope.where}: only actions, jobs and "
                             "workflows have an input (rules about rows hold on every write path)")
        elif name == "secrets":
            if scope.secrets:
                return T.Namespace("secrets")
            return self.fail("expr.secret_not_allowed",
                             f"secrets can only be read in the values of http and ai steps, "
                             f"not in {scope.where}")
        elif name == "event":
            if scope.event is not None:
                return scope.event
        elif name in scope.bindings:
            return scope.bindings[name]
        elif name in self.definition.entities:
            return T.Collection(T.Row(name))
        known = names_in(scope, self.definition) + sorted(env)
        return self.fail("expr.unknown_name", f"{name} is not available in {scope.where} "
                                              f"(names: {', '.join(known)}){suggest(name, known)}")

    # -- paths -------------------------------------------------------------------------
    def _select(self, node: ast.Select, env) -> T.Type:
        t = self.check(node.operand, env)
        name, text = node.name, self.text(node)
        if isinstance(t, T.ErrorType) or T.is_scalar(t, "dyn"):
            return t
        if isinstance(t, T.Namespace) and t.name == "input":
            inputs = self.scope.input or {}
            if name in inputs:
                return inputs[name]
            return self.fail("expr.unknown_field",
                             f"{text}: {self.scope.input_owner or self.scope.where} has no input "
                             f"'{name}' (inputs: {', '.join(inputs) or 'none'}){suggest(name, inputs)}")
        if isinstance(t, T.Namespace):
            if name in self.definition.secrets:
                return T.STRING
            return self.fail("expr.unknown_secret",
                             f"{text}: no secret '{name}' is declared (secrets: "
                             f"{', '.join(self.definition.secrets) or 'none'})"
                             f"{suggest(name, self.definition.secrets)}")
        if isinstance(t, T.Row):
            return self._row_member(t.entity, name, text)
        if isinstance(t, T.User):
            if name in USER_FIELDS:
                return USER_FIELDS[name]
            return self.fail("expr.unknown_field", f"{text}: a user has no field '{name}' "
                                                   f"(fields: id, email, role){suggest(name, USER_FIELDS)}")
        if isinstance(t, T.Obj):
            found = t.field(name)
            if found is not None:
                return found
            names = [n for n, _ in t.fields]
            return self.fail("expr.unknown_field", f"{text}: {t.describe()} has no field '{name}' "
                                                   f"(fields: {', '.join(names)}){suggest(name, names)}")
        if isinstance(t, T.Collection):
            return self.fail("expr.collection_as_scalar",
                             f"{text}: {self.text(node.operand)} is {t.describe()}, not one row; "
                             f"use map(x, x.{name}) or a macro such as exists()")
        return self.fail("expr.type_mismatch",
                         f"{text}: {self.text(node.operand)} is {t.describe()}, which has no fields")

    def _row_member(self, entity: str, name: str, text: str) -> T.Type:
        if entity not in self.definition.entities:
            return T.ERROR      # the definition validator reports the dangling `to`
        found = row_member(self.definition, entity, name)
        if isinstance(found, Field):
            return T.field_type(found)
        if found is not None:
            return T.Collection(T.Row(found[0]))
        fields = list(self.definition.entities[entity].fields)
        collections = list(reverse_collections(self.definition, entity))
        listing = f"fields: {', '.join(fields)}"
        if collections:
            listing += f"; collections: {', '.join(collections)}"
        return self.fail("expr.unknown_field", f"{text}: {entity} has no field '{name}' "
                                               f"({listing}){suggest(name, fields + collections)}")

    # -- calls and macros --------------------------------------------------------------
    def _call(self, node: ast.Call, env) -> T.Type:
        args = ((node.target,) if node.target is not None else ()) + node.args
        name = node.name
        if name in ast.MACROS:
            for a in args[:1]:
                self.check(a, env)
            form = "map(x, [filter,] value)" if name == "map" else f"{name}(x, predicate)"
            return self.fail("expr.bad_arguments", f"{self.text(node)}: expected "
                                                   f"<collection>.{form} with a variable name first")
        if name in F.LITERAL_FUNCTIONS:
            return self._literal_function(node, args, env)
        if name not in F.SCALAR_FUNCTIONS and name not in F.COLLECTION_FUNCTIONS:
            for a in args:
                self.check(a, env)
            return self.fail("expr.unknown_function", f"{self.text(node)}: unknown function "
                                                      f"'{name}' (functions: {', '.join(F.ALL_FUNCTIONS)})"
                                                      f"{suggest(name, F.ALL_FUNCTIONS)}")
        if name in F.COLLECTION_FUNCTIONS and len(args) == 1:
            t = self.check(args[0], env)
            if isinstance(t, T.Collection):
                return self.aggregate(node, name, t)
            if name != "size" or isinstance(t, T.ErrorType):
                return t if isinstance(t, T.ErrorType) else self.fail(
                    "expr.not_collection", f"{self.text(node)}: {name}() needs a collection, "
                                           f"found {t.describe()}")
            return self.call_scalar(node, F.STRING_SIZE, args, env, checked=[t])
        if name not in F.SCALAR_FUNCTIONS:
            for a in args:
                self.check(a, env)
            return self.fail("expr.bad_arguments",
                             f"{self.text(node)}: {name}() takes one collection")
        return self.call_scalar(node, F.SCALAR_FUNCTIONS[name], args, env)

    def call_scalar(self, node, fn: F.Function, args, env, checked=None) -> T.Type:
        types = checked or [self.scalar(a, env, f"{fn.signature}") for a in args]
        if len(args) != len(fn.params):
            return self.fail("expr.bad_arguments", f"{self.text(node)}: expected {fn.signature}, "
                                                   f"got {len(args)} argument(s)")
        for arg, t, want in zip(args, types, fn.params):
            ok = T.is_nothing(t) or (
                not isinstance(t, (T.Collection, T.Namespace, T.Obj)) if want == "any"
                else T.plain(t) == T.Scalar(want))
            if not ok:
                return self.fail("expr.type_mismatch", f"{self.text(node)}: expected {fn.signature}, "
                                                       f"but {self.text(arg)} is {t.describe()}")
        return fn.result

    def _literal_function(self, node: ast.Call, args, env) -> T.Type:
        arg = args[0] if len(args) == 1 else None
        if not (isinstance(arg, ast.Lit) and arg.kind == "string"):
            for a in args:
                self.check(a, env)
            return self.fail("expr.bad_arguments", f"{self.text(node)}: {node.name}() takes one "
                                                   "literal string, like duration('24h')")
        self.check(arg, env)
        try:
            if node.name == "duration":
                F.parse_duration(arg.value)
                return T.DURATION
            F.parse_timestamp(arg.value)
            return T.TIMESTAMP
        except ExprProblem as problem:
            self.problems.append(problem)
            return T.ERROR

    def _macro(self, node: ast.Macro, env) -> T.Type:
        t = self.check(node.target, env)
        if isinstance(t, T.Collection):
            elem = t.elem
        elif isinstance(t, T.ErrorType):
            elem = T.ERROR
        else:
            elem = self.fail("expr.not_collection", f"{self.text(node)}: {node.name}() needs a "
                                                    f"collection, but {self.text(node.target)} is {t.describe()}")
        var = node.var
        # An inner macro may reuse an outer macro's variable (lexical scoping, as in CEL), but
        # hiding record, input, an entity or a step's result would silently change meaning.
        if var in RESERVED or var in self.definition.entities or var in self.scope.bindings:
            self.fail("expr.shadowed_name", f"{self.text(node)}: the variable '{var}' hides "
                                            f"`{var}`; pick another name")
        inner = {**env, var: elem}
        if node.guard is not None:
            self.condition(node.guard, inner, f"the filter of {node.name}()")
        if node.name == "map":
            body = self.scalar(node.body, inner, "map()")
            return T.Collection(body) if not isinstance(elem, T.ErrorType) else T.ERROR
        self.condition(node.body, inner, f"the predicate of {node.name}()")
        if node.name == "filter":
            return t if isinstance(t, T.Collection) else T.ERROR
        return T.BOOL

    def condition(self, node: ast.Node, env, what: str) -> T.Type:
        t = self.scalar(node, env, what)
        if not (T.is_nothing(t) or T.plain(t) == T.BOOL) or T.is_scalar(t, "null"):
            return self.fail("expr.not_boolean", f"{what} must be a boolean, but "
                                                 f"{self.text(node)} is {t.describe()}")
        return T.BOOL
