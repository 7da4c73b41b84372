"""Rule: no loops that can never end or never start.

Jobs and workflows that enqueue or start each other in a circle (a enqueues b enqueues a,
or a enqueues itself) would run forever once triggered; periodic work is a `schedule` or a
workflow with `sleep`. Entities whose required references form a circle (Order needs an
Invoice that needs the Order, or a required reference to its own entity) can never get
their first row, whatever `on_delete` says. One error per circle, on the first edge of the
alphabetically first member.
"""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError
from ..walk import walk_steps

CODES = {
    "cycle.enqueue": "Jobs and workflows enqueue or start each other in a circle.",
    "cycle.required_ref": "Required references form a circle (or point at their own entity), so no row can be inserted first.",
}

Graph = dict[str, list[tuple[str, str]]]   # node -> [(next node, JSON Pointer of the edge)]


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a long chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            edges = graph.get(node, [])
            if i < len(edges):
                work.append((node, i + 1))
                succ = edges[i][0]
                if succ not in index:
                    work.append((succ, 0))
                elif succ in on_stack:
                    low[node] = min(low[node], index[succ])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _cycles(graph: Graph) -> Iterator[tuple[list[str], str, str]]:
    """(members, first node, path of its first edge inside the circle) for each circle."""
    for component in strongly_connected(graph):
        members = set(component)
        first = min(component)
        edges = [(succ, path) for succ, path in graph.get(first, []) if succ in members]
        if len(component) > 1 or edges:
            yield sorted(component), first, edges[0][1]


def _run_graph(d: Definition) -> Graph:
    graph: Graph = {}
    for kind, owners in (("job", d.jobs), ("workflow", d.workflows)):
        for owner in owners.values():
            edges = graph.setdefault(f"{kind} {owner.name}", [])
            for step, _ in walk_steps(owner.steps):
                if step.kind == "enqueue" and step.target in d.jobs:
                    edges.append((f"job {step.target}", step.path + "/enqueue"))
                elif step.kind == "start" and step.target in d.workflows:
                    edges.append((f"workflow {step.target}", step.path + "/start"))
    return graph


def _ref_graph(d: Definition) -> Graph:
    graph: Graph = {}
    for entity in d.entities.values():
        graph[entity.name] = [
            (f.to, f.path) for f in entity.fields.values()
            if f.type == "ref" and f.required and f.to in d.entities
        ]
    return graph


def check(d: Definition) -> Iterator[DefinitionError]:
    for members, _first, path in _cycles(_run_graph(d)):
        circle = " -> ".join(members + members[:1])
        yield DefinitionError("cycle.enqueue", path,
                              f"These runs start each other forever: {circle}. Use a schedule or a "
                              "workflow with sleep for repeated work.")
    for members, first, path in _cycles(_ref_graph(d)):
        if len(members) == 1:
            message = f"{first} requires a reference to another {first}, so the first {first} can never be created."
        else:
            message = (f"{', '.join(members)} require references to each other in a circle, so none "
                       "can be created first.")
        yield DefinitionError("cycle.required_ref", path, message + " Make one of these references optional.")
