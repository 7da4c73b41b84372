"""Small factories for `Definition` trees, and the shop-like definition the tables run on.

The definition parser is written in parallel, so these tests build the typed tree directly:
`entity("Order", customer="ref:Customer:orders", total="decimal")` and so on.
"""

from __future__ import annotations

from runtime.definition.model import (
    Action, Auth, Check, Definition, Entity, Expr, Field, Invariant, StateMachine, Transition, pointer,
)


def field(entity: str, name: str, spec: str, **options) -> Field:
    """`spec` is a type, `enum:a|b`, `ref:Target` or `ref:Target:related_name`."""
    kind, _, rest = spec.partition(":")
    path = pointer("entities", entity, "fields", name)
    if kind == "enum":
        return Field(name, "enum", path, values=tuple(rest.split("|")), **options)
    if kind == "ref":
        to, _, related = rest.partition(":")
        return Field(name, "ref", path, to=to, related_name=related or None, **options)
    return Field(name, kind, path, **options)


def entity(name: str, /, access: dict[str, str] | None = None, checks=(), states=None, **fields) -> Entity:
    all_fields = {"id": Field("id", "uuid", pointer("entities", name, "fields", "id"), system=True)}
    all_fields.update({n: field(name, n, spec) for n, spec in fields.items()})
    for sys_name in ("created_at", "updated_at"):
        all_fields[sys_name] = Field(sys_name, "datetime", pointer("entities", name, "fields", sys_name),
                                     system=True)
    rules = {op: Expr(src, pointer("entities", name, "access", op)) for op, src in (access or {}).items()}
    checked = tuple(Check(n, Expr(src, pointer("entities", name, "checks", i, "rule")), None,
                          pointer("entities", name, "checks", i)) for i, (n, src) in enumerate(checks))
    return Entity(name, all_fields, pointer("entities", name), access=rules, checks=checked, states=states)


def expr(source: str, path: str = "/test") -> Expr:
    return Expr(source, path)


def inputs(owner_path: str, **specs) -> dict[str, Field]:
    """Input fields of an action, job or workflow: `inputs(path, order="ref:Order", qty="integer")`."""
    return {n: _input(owner_path, n, spec) for n, spec in specs.items()}


def _input(owner_path: str, name: str, spec: str) -> Field:
    kind, _, rest = spec.partition(":")
    path = f"{owner_path}/input/{name}"
    if kind == "ref":
        return Field(name, "ref", path, to=rest)
    if kind == "enum":
        return Field(name, "enum", path, values=tuple(rest.split("|")))
    return Field(name, kind, path)


def shop() -> Definition:
    """Customer, Order, OrderLine, Product, Membership: every field type and relation once."""
    states = StateMachine("status", {
        "place": Transition("place", ("draft",), "placed", "/entities/Order/states/transitions/place",
                            when=Expr("record.total > 0", "/entities/Order/states/transitions/place/when"),
                            access=Expr("record.customer.account == auth.id",
                                        "/entities/Order/states/transitions/place/access")),
    }, "/entities/Order/states")
    entities = [
        entity("Customer", access={"read": "auth.role == 'staff' || record.account == auth.id"},
               account="user", name="string", email="email", credit_limit="decimal",
               tier="enum:basic|gold", meta="json", score="float"),
        entity("Order", access={"read": "auth.role == 'staff' || record.customer.account == auth.id"},
               checks=[("note_not_shouting", "record.note == null || record.note != upper(record.note)")],
               states=states,
               customer="ref:Customer:orders", total="decimal", note="text",
               status="enum:draft|placed|paid|shipped|cancelled", due="date",
               placed_at="datetime", receipt_sent="boolean", priority="integer", weight="float",
               owner="user", ref_code="uuid", website="url"),
        entity("OrderLine", order="ref:Order:lines", product="ref:Product", quantity="integer",
               unit_price="decimal"),
        entity("Product", sku="string", title="string", price="decimal", stock="integer"),
        entity("Membership", user="user", customer="ref:Customer:members", role="enum:member|admin"),
    ]
    actions = {
        "add_to_order": Action(
            "add_to_order",
            inputs("/actions/add_to_order", order="ref:Order", product="ref:Product",
                   quantity="integer", note="string", when="datetime", data="json"),
            (), "/actions/add_to_order"),
    }
    invariants = {
        "within_credit_limit": Invariant(
            "within_credit_limit", "Customer",
            Expr("record.orders.filter(o, o.status in ['placed', 'paid']).map(o, o.total).sum() "
                 "<= record.credit_limit", "/invariants/within_credit_limit/rule"),
            None, "/invariants/within_credit_limit"),
    }
    return Definition(1, "shop", Auth(("customer", "staff"), "customer"),
                      {e.name: e for e in entities}, invariants=invariants, actions=actions,
                      secrets=("MAIL_KEY",))
