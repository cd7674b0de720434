from __future__ import annotations

from dataclasses import dataclass, field

NODE_KINDS = ("shell", "python", "http", "echo", "sleep")


@dataclass(frozen=True)
class Requirement:
    name: str
    proficiency: float = 0.0


@dataclass(frozen=True)
class NodeSpec:
    id: str
    kind: str
    params_json: str = "{}"
    depends_on: tuple[str, ...] = ()
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class TaskSpec:
    name: str
    nodes: tuple[NodeSpec, ...]
    priority: int = 0
    deadline_at: int | None = None
    budget: float = 0.0
    max_retries: int = 0
    requires: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class Capability:
    name: str
    proficiency: float = 1.0


@dataclass(frozen=True)
class NodeOutput:
    node_id: str
    output_json: str


def needed_capabilities(spec: TaskSpec) -> tuple[Requirement, ...]:
    """Explicit requirements plus one per node kind, strongest proficiency per name."""
    best: dict[str, float] = {kind: 0.0 for kind in sorted({n.kind for n in spec.nodes})}
    for req in spec.requires:
        best[req.name] = max(best.get(req.name, 0.0), req.proficiency)
    return tuple(Requirement(name, p) for name, p in sorted(best.items()))


@dataclass(frozen=True)
class Offer:
    capabilities: tuple[Capability, ...] = field(default_factory=tuple)

    def satisfies(self, requires: tuple[Requirement, ...]) -> bool:
        have = {c.name: c.proficiency for c in self.capabilities}
        return all(r.name in have and have[r.name] >= r.proficiency for r in requires)
