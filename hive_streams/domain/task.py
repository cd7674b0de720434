"""The task aggregate: decide(command, state, now) -> events; evolve(state, event) -> state."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import singledispatch
from typing import Mapping

from . import commands as c
from . import events as e
from .dag import InvalidGraph, topological_order
from .model import NodeOutput, NodeSpec, Requirement, TaskSpec, needed_capabilities

TERMINAL = frozenset({"completed", "failed", "cancelled", "rejected"})
ACTIVE = frozenset({"assigned", "running"})


@dataclass(frozen=True)
class TaskState:
    task_id: str
    seq: int = 0
    status: str = "new"
    name: str = ""
    requester: str = ""
    nodes: tuple[NodeSpec, ...] = ()
    priority: int = 0
    deadline_at: int | None = None
    budget: float = 0.0
    max_retries: int = 0
    requires: tuple[Requirement, ...] = ()
    agent_id: str | None = None
    attempt: int = 0
    node_status: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    progress: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    submitted_at: int = 0
    updated_at: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.nodes, self.priority, self.deadline_at, self.budget,
                        self.max_retries, self.requires)


# decide ---------------------------------------------------------------------------------

def decide(command: c.TaskCommand, state: TaskState, now: int) -> list[e.TaskEvent]:
    drafts = _decide(command, state, now)
    return [replace(ev, seq=state.seq + i + 1) for i, ev in enumerate(drafts)]


def _base(state: TaskState, now: int) -> dict:
    return {"task_id": state.task_id, "seq": 0, "at": now}


def _is_current(cmd, state: TaskState) -> bool:
    return state.status in ACTIVE and cmd.agent_id == state.agent_id and cmd.attempt == state.attempt


@singledispatch
def _decide(command, state: TaskState, now: int) -> list[e.TaskEvent]:
    raise TypeError(f"unknown task command {type(command).__name__}")


@_decide.register
def _(cmd: c.SubmitTask, state: TaskState, now: int):
    if state.status != "new":
        return []
    b = _base(state, now)
    submitted = e.TaskSubmitted(**b, name=cmd.name, requester=cmd.requester, nodes=cmd.nodes,
                                priority=cmd.priority, deadline_at=cmd.deadline_at, budget=cmd.budget,
                                max_retries=cmd.max_retries, requires=cmd.requires)
    try:
        topological_order(cmd.nodes)
    except InvalidGraph as exc:
        return [submitted, e.TaskRejected(**b, reason=str(exc))]
    if cmd.deadline_at is not None and cmd.deadline_at <= now:
        return [submitted, e.TaskRejected(**b, reason="deadline already passed")]
    spec = TaskSpec(cmd.name, cmd.nodes, requires=cmd.requires)
    return [submitted, e.TaskValidated(**b, requires=needed_capabilities(spec), priority=cmd.priority)]


@_decide.register
def _(cmd: c.CancelTask, state: TaskState, now: int):
    if state.status == "new" or state.terminal:
        return []
    return [e.TaskCancelled(**_base(state, now), reason=cmd.reason or "cancelled", agent_id=state.agent_id or "")]


@_decide.register
def _(cmd: c.AssignTask, state: TaskState, now: int):
    if state.status in ACTIVE and state.agent_id == cmd.agent_id:
        return []  # the same assignment again
    if state.status != "queued":
        return [e.TaskAssignmentDeclined(**_base(state, now), agent_id=cmd.agent_id, reason=f"task is {state.status}")]
    done = tuple(NodeOutput(k, v) for k, v in sorted(state.outputs.items()))
    return [e.TaskAssigned(**_base(state, now), agent_id=cmd.agent_id, attempt=state.attempt + 1,
                           nodes=state.nodes, completed=done)]


@_decide.register
def _(cmd: c.StartTask, state: TaskState, now: int):
    if state.status != "assigned" or not _is_current(cmd, state):
        return []
    return [e.TaskStarted(**_base(state, now), agent_id=cmd.agent_id, attempt=cmd.attempt)]


def _started_if_needed(cmd, state: TaskState, now: int) -> list[e.TaskEvent]:
    if state.status == "assigned":
        return [e.TaskStarted(**_base(state, now), agent_id=cmd.agent_id, attempt=cmd.attempt)]
    return []


def _open_node(cmd, state: TaskState) -> bool:
    return _is_current(cmd, state) and state.node_status.get(cmd.node_id, "missing") not in ("missing", "completed")


@_decide.register
def _(cmd: c.ReportNodeStarted, state: TaskState, now: int):
    if not _open_node(cmd, state) or state.node_status[cmd.node_id] == "running":
        return []
    return _started_if_needed(cmd, state, now) + [
        e.NodeStarted(**_base(state, now), node_id=cmd.node_id, agent_id=cmd.agent_id, attempt=cmd.attempt)]


@_decide.register
def _(cmd: c.ReportNodeProgress, state: TaskState, now: int):
    if not _open_node(cmd, state) or state.node_status[cmd.node_id] != "running":
        return []
    progress = min(1.0, max(0.0, cmd.progress))
    if progress <= state.progress.get(cmd.node_id, -1.0):
        return []  # progress only moves forward; a replayed report says nothing new
    return [e.NodeProgress(**_base(state, now), node_id=cmd.node_id, progress=progress, message=cmd.message)]


@_decide.register
def _(cmd: c.ReportNodeCompleted, state: TaskState, now: int):
    if not _open_node(cmd, state):
        return []
    b = _base(state, now)
    out = _started_if_needed(cmd, state, now)
    out.append(e.NodeCompleted(**b, node_id=cmd.node_id, output_json=cmd.output_json, attempt=cmd.attempt))
    outputs = {**state.outputs, cmd.node_id: cmd.output_json}
    if all(n.id in outputs for n in state.nodes):
        final = tuple(NodeOutput(n.id, outputs[n.id]) for n in state.nodes)
        out.append(e.TaskCompleted(**b, agent_id=cmd.agent_id, outputs=final))
    return out


@_decide.register
def _(cmd: c.ReportNodeFailed, state: TaskState, now: int):
    if not _open_node(cmd, state):
        return []
    b = _base(state, now)
    return _started_if_needed(cmd, state, now) + [
        e.NodeFailed(**b, node_id=cmd.node_id, error=cmd.error, attempt=cmd.attempt),
        e.TaskFailed(**b, reason=f"node {cmd.node_id} failed: {cmd.error}", agent_id=cmd.agent_id),
    ]


# evolve ---------------------------------------------------------------------------------

def evolve(state: TaskState, event: e.TaskEvent) -> TaskState:
    if event.seq <= state.seq:
        return state  # already applied: redelivery after a crash
    return replace(_evolve(event, state), seq=event.seq, updated_at=event.at)


def fold(events, task_id: str) -> TaskState:
    state = TaskState(task_id)
    for event in events:
        state = evolve(state, event)
    return state


def _nodes(state: TaskState, **changes: str) -> Mapping[str, str]:
    return {**state.node_status, **changes}


@singledispatch
def _evolve(event, state: TaskState) -> TaskState:
    raise TypeError(f"unknown task event {type(event).__name__}")


@_evolve.register
def _(ev: e.TaskSubmitted, state: TaskState):
    return replace(state, status="submitted", name=ev.name, requester=ev.requester, nodes=ev.nodes,
                   priority=ev.priority, deadline_at=ev.deadline_at, budget=ev.budget,
                   max_retries=ev.max_retries, requires=ev.requires, submitted_at=ev.at,
                   node_status={n.id: "pending" for n in ev.nodes})


@_evolve.register
def _(ev: e.TaskValidated, state: TaskState):
    return replace(state, status="queued", requires=ev.requires)


@_evolve.register
def _(ev: e.TaskRejected, state: TaskState):
    return replace(state, status="rejected", reason=ev.reason)


@_evolve.register
def _(ev: e.TaskAssigned, state: TaskState):
    return replace(state, status="assigned", agent_id=ev.agent_id, attempt=ev.attempt)


@_evolve.register
def _(ev: e.TaskAssignmentDeclined, state: TaskState):
    return state


@_evolve.register
def _(ev: e.TaskStarted, state: TaskState):
    return replace(state, status="running")


@_evolve.register
def _(ev: e.NodeStarted, state: TaskState):
    return replace(state, node_status=_nodes(state, **{ev.node_id: "running"}))


@_evolve.register
def _(ev: e.NodeProgress, state: TaskState):
    return replace(state, progress={**state.progress, ev.node_id: ev.progress})


@_evolve.register
def _(ev: e.NodeCompleted, state: TaskState):
    return replace(state, node_status=_nodes(state, **{ev.node_id: "completed"}),
                   outputs={**state.outputs, ev.node_id: ev.output_json})


@_evolve.register
def _(ev: e.NodeFailed, state: TaskState):
    return replace(state, node_status=_nodes(state, **{ev.node_id: "failed"}))


@_evolve.register
def _(ev: e.TaskCompleted, state: TaskState):
    return replace(state, status="completed")


@_evolve.register
def _(ev: e.TaskFailed, state: TaskState):
    return replace(state, status="failed", reason=ev.reason)


@_evolve.register
def _(ev: e.TaskCancelled, state: TaskState):
    return replace(state, status="cancelled", reason=ev.reason)
