from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

from .evolving import quick_init_all

NODE_KINDS = ("shell", "python", "http", "echo", "sleep")


@dataclass(frozen=True)
class Requirement:
    name: str
    proficiency: float = 0.0


@dataclass(frozen=True)
class Capability:
    name: str
    proficiency: float = 1.0


@dataclass(frozen=True)
class Hardware:
    """What an agent has, or (in a task) the least it needs; empty gpu_type means any or none."""
    gpu_type: str = ""
    vram_gb: float = 0.0
    cpu_cores: int = 0
    ram_gb: float = 0.0

    def covers(self, need: "Hardware") -> str:
        """Empty when this hardware meets the need, else the first shortfall."""
        if need.gpu_type and need.gpu_type != self.gpu_type:
            return f"gpu {need.gpu_type!r} needed, has {self.gpu_type or 'none'!r}"
        for name in ("vram_gb", "cpu_cores", "ram_gb"):
            if getattr(self, name) < getattr(need, name):
                return f"{name} {getattr(need, name)} needed, has {getattr(self, name)}"
        return ""


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
    budget: float | None = None
    max_retries: int = 2
    requires: tuple[Requirement, ...] = ()
    hardware: Hardware = field(default_factory=Hardware)
    after: tuple[str, ...] = ()
    retry_backoff_seconds: float = 1.0
    callback_url: str = ""  # where each of the task's status changes is POSTed, signed


@dataclass(frozen=True)
class Leg:
    """One side of a ledger entry: cents into (positive) or out of an account's bucket."""
    account: str
    bucket: str
    delta: int


@dataclass(frozen=True)
class NodeOutput:
    node_id: str
    output_json: str


def needed_capabilities(spec: TaskSpec) -> tuple[Requirement, ...]:
    return needs(spec.nodes, spec.requires)


def needs(nodes: tuple[NodeSpec, ...], requires: tuple[Requirement, ...]) -> tuple[Requirement, ...]:
    """Explicit requirements plus one per node kind, strongest proficiency per name."""
    return _needs(frozenset([n.kind for n in nodes]), tuple(requires))


@functools.lru_cache(maxsize=4096)  # few distinct answers: a fold asks once per submitted task
def _needs(kinds: frozenset[str], requires: tuple[Requirement, ...]) -> tuple[Requirement, ...]:
    best: dict[str, float] = {kind: 0.0 for kind in sorted(kinds)}
    for req in requires:
        best[req.name] = max(best.get(req.name, 0.0), req.proficiency)
    return tuple(Requirement(name, p) for name, p in sorted(best.items()))


def capability_shortfall(capabilities: tuple[Capability, ...], requires: tuple[Requirement, ...]) -> str:
    """Empty when every requirement is met at its proficiency, else the first one that is not."""
    have = {c.name: c.proficiency for c in capabilities}
    for r in requires:
        if r.name not in have:
            return f"capability {r.name!r} missing"
        if have[r.name] < r.proficiency:
            return f"capability {r.name!r} at {have[r.name]:.2f} < {r.proficiency:.2f}"
    return ""


def node_digest(task_id: str, attempt: int, node_id: str, output_json: str) -> str:
    """What an executor signs for one node: bound to the task, attempt and node, so it cannot be replayed."""
    return hashlib.sha256(f"node\n{task_id}\n{attempt}\n{node_id}\n{output_json}".encode()).hexdigest()


def result_digest(task_id: str, attempt: int, outputs: dict[str, str]) -> str:
    """What an executor signs for the whole task: every node's output, in node-id order."""
    body = "\n".join(f"{node_id}\n{outputs[node_id]}" for node_id in sorted(outputs))
    return hashlib.sha256(f"result\n{task_id}\n{attempt}\n{body}".encode()).hexdigest()

quick_init_all(globals())
