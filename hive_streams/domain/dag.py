from __future__ import annotations

from .model import NodeSpec


class InvalidGraph(ValueError):
    pass


def topological_order(nodes: tuple[NodeSpec, ...]) -> list[str]:
    """Node ids in a dependency-respecting order (stable by declaration); raises InvalidGraph."""
    if len(nodes) == 1 and not nodes[0].depends_on:
        return [nodes[0].id]  # the common one-node task
    ids = [n.id for n in nodes]
    seen: set[str] = set()
    for node_id in ids:
        if node_id in seen:
            raise InvalidGraph(f"duplicate node id {node_id!r}")
        seen.add(node_id)
    if not ids:
        raise InvalidGraph("a task needs at least one node")
    deps = {n.id: n.depends_on for n in nodes}
    for n in nodes:
        for d in n.depends_on:
            if d not in deps:
                raise InvalidGraph(f"node {n.id!r} depends on unknown node {d!r}")
            if d == n.id:
                raise InvalidGraph(f"node {n.id!r} depends on itself")
    remaining = {n.id: set(n.depends_on) for n in nodes}
    order: list[str] = []
    while remaining:
        ready = [i for i in ids if i in remaining and not remaining[i]]
        if not ready:
            raise InvalidGraph("cycle: " + " -> ".join(_find_cycle(remaining)))
        for node_id in ready:
            del remaining[node_id]
            order.append(node_id)
        for pending in remaining.values():
            pending.difference_update(ready)
    return order


def _find_cycle(remaining: dict[str, set[str]]) -> list[str]:
    path: list[str] = []
    node_id = next(iter(remaining))
    while node_id not in path:
        path.append(node_id)
        node_id = sorted(remaining[node_id])[0]
    return path[path.index(node_id):] + [node_id]


def ready_nodes(nodes: tuple[NodeSpec, ...], done: set[str], started: set[str]) -> list[str]:
    return [n.id for n in nodes if n.id not in done and n.id not in started and all(d in done for d in n.depends_on)]
