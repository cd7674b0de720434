"""Commands: requests to an aggregate's decider. Reports from executors are commands too."""
from __future__ import annotations

from dataclasses import dataclass

from .model import Capability, NodeSpec, Requirement


@dataclass(frozen=True)
class TaskCommand:
    task_id: str
    command_id: str
    at: int


@dataclass(frozen=True)
class SubmitTask(TaskCommand):
    name: str
    requester: str
    nodes: tuple[NodeSpec, ...]
    priority: int = 0
    deadline_at: int | None = None
    budget: float = 0.0
    max_retries: int = 0
    requires: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class CancelTask(TaskCommand):
    reason: str = ""


@dataclass(frozen=True)
class AssignTask(TaskCommand):
    agent_id: str


@dataclass(frozen=True)
class StartTask(TaskCommand):
    agent_id: str
    attempt: int


@dataclass(frozen=True)
class ReportNodeStarted(TaskCommand):
    agent_id: str
    attempt: int
    node_id: str


@dataclass(frozen=True)
class ReportNodeProgress(TaskCommand):
    agent_id: str
    attempt: int
    node_id: str
    progress: float
    message: str = ""


@dataclass(frozen=True)
class ReportNodeCompleted(TaskCommand):
    agent_id: str
    attempt: int
    node_id: str
    output_json: str


@dataclass(frozen=True)
class ReportNodeFailed(TaskCommand):
    agent_id: str
    attempt: int
    node_id: str
    error: str


@dataclass(frozen=True)
class AgentCommand:
    agent_id: str
    command_id: str
    at: int


@dataclass(frozen=True)
class RegisterAgent(AgentCommand):
    name: str
    capabilities: tuple[Capability, ...]
    slots: int = 1


@dataclass(frozen=True)
class Heartbeat(AgentCommand):
    running: int = 0
    cpu_percent: float = 0.0


@dataclass(frozen=True)
class DeregisterAgent(AgentCommand):
    reason: str = ""


@dataclass(frozen=True)
class ReserveSlot(AgentCommand):
    task_id: str


@dataclass(frozen=True)
class ReleaseSlot(AgentCommand):
    task_id: str


TASK_COMMANDS = (SubmitTask, CancelTask, AssignTask, StartTask, ReportNodeStarted, ReportNodeProgress,
                 ReportNodeCompleted, ReportNodeFailed)
AGENT_COMMANDS = (RegisterAgent, Heartbeat, DeregisterAgent, ReserveSlot, ReleaseSlot)
