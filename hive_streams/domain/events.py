"""Events: facts in the log. Every event names its aggregate and its sequence number in it."""
from __future__ import annotations

from dataclasses import dataclass

from .model import Capability, NodeOutput, NodeSpec, Requirement


@dataclass(frozen=True)
class TaskEvent:
    task_id: str
    seq: int
    at: int


@dataclass(frozen=True)
class TaskSubmitted(TaskEvent):
    name: str
    requester: str
    nodes: tuple[NodeSpec, ...]
    priority: int = 0
    deadline_at: int | None = None
    budget: float = 0.0
    max_retries: int = 0
    requires: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class TaskValidated(TaskEvent):
    requires: tuple[Requirement, ...] = ()
    priority: int = 0


@dataclass(frozen=True)
class TaskRejected(TaskEvent):
    reason: str


@dataclass(frozen=True)
class TaskAssigned(TaskEvent):
    agent_id: str
    attempt: int
    nodes: tuple[NodeSpec, ...]
    completed: tuple[NodeOutput, ...] = ()


@dataclass(frozen=True)
class TaskStarted(TaskEvent):
    agent_id: str
    attempt: int


@dataclass(frozen=True)
class NodeStarted(TaskEvent):
    node_id: str
    agent_id: str
    attempt: int


@dataclass(frozen=True)
class NodeProgress(TaskEvent):
    node_id: str
    progress: float
    message: str = ""


@dataclass(frozen=True)
class NodeCompleted(TaskEvent):
    node_id: str
    output_json: str
    attempt: int


@dataclass(frozen=True)
class NodeFailed(TaskEvent):
    node_id: str
    error: str
    attempt: int


@dataclass(frozen=True)
class TaskCompleted(TaskEvent):
    agent_id: str
    outputs: tuple[NodeOutput, ...]


@dataclass(frozen=True)
class TaskFailed(TaskEvent):
    reason: str
    agent_id: str = ""


@dataclass(frozen=True)
class TaskCancelled(TaskEvent):
    reason: str = ""
    agent_id: str = ""


@dataclass(frozen=True)
class AgentEvent:
    agent_id: str
    seq: int
    at: int


@dataclass(frozen=True)
class AgentRegistered(AgentEvent):
    name: str
    capabilities: tuple[Capability, ...]
    slots: int = 1


@dataclass(frozen=True)
class AgentHeartbeat(AgentEvent):
    running: int = 0
    cpu_percent: float = 0.0


@dataclass(frozen=True)
class AgentStatusChanged(AgentEvent):
    status: str
    reason: str = ""


@dataclass(frozen=True)
class SlotReserved(AgentEvent):
    task_id: str


@dataclass(frozen=True)
class SlotRefused(AgentEvent):
    task_id: str
    reason: str


@dataclass(frozen=True)
class SlotReleased(AgentEvent):
    task_id: str


@dataclass(frozen=True)
class TaskAssignmentDeclined(TaskEvent):
    agent_id: str
    reason: str


TERMINAL_TASK_EVENTS = (TaskCompleted, TaskFailed, TaskCancelled, TaskRejected)
TASK_EVENTS = (TaskSubmitted, TaskValidated, TaskRejected, TaskAssigned, TaskStarted, NodeStarted,
               NodeProgress, NodeCompleted, NodeFailed, TaskCompleted, TaskFailed, TaskCancelled,
               TaskAssignmentDeclined)
AGENT_EVENTS = (AgentRegistered, AgentHeartbeat, AgentStatusChanged, SlotReserved, SlotRefused, SlotReleased)
