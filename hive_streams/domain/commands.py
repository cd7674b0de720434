"""Commands: requests to an aggregate's decider. Reports from executors are commands too."""
from __future__ import annotations

from dataclasses import dataclass, field

from .evolving import quick_init_all

from .model import Capability, Hardware, NodeOutput, NodeSpec, Requirement, TaskSpec


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
    budget: float | None = None
    max_retries: int = 2
    requires: tuple[Requirement, ...] = ()
    hardware: Hardware = field(default_factory=Hardware)
    after: tuple[str, ...] = ()
    retry_backoff_seconds: float = 1.0
    definition_digest: str = ""  # of the definition as submitted: a repeat of the id must match it
    callback_url: str = ""

    @classmethod
    def of(cls, task_id: str, command_id: str, at: int, requester: str, spec: TaskSpec,
           definition_digest: str = "") -> "SubmitTask":
        return cls(task_id, command_id, at, spec.name, requester, spec.nodes, spec.priority, spec.deadline_at,
                   spec.budget, spec.max_retries, spec.requires, spec.hardware, spec.after, spec.retry_backoff_seconds,
                   definition_digest, spec.callback_url)


@dataclass(frozen=True)
class CancelTask(TaskCommand):
    reason: str = ""


@dataclass(frozen=True)
class AssignTask(TaskCommand):
    agent_id: str
    escrow_id: str = ""
    agent_key: str = ""


@dataclass(frozen=True)
class PinTask(TaskCommand):
    agent_id: str


@dataclass(frozen=True)
class NoteWaiting(TaskCommand):
    reason: str


@dataclass(frozen=True)
class ExpireTask(TaskCommand):
    """Sent by a timer when the deadline may have passed; the decider checks."""


@dataclass(frozen=True)
class ReportAgentLost(TaskCommand):
    agent_id: str


@dataclass(frozen=True)
class WatchTask(TaskCommand):
    watcher: str


@dataclass(frozen=True)
class DependencyFinished(TaskCommand):
    dependency: str
    outcome: str


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
    digest: str = ""
    signature: str = ""


@dataclass(frozen=True)
class ReportTaskResult(TaskCommand):
    """The executor's signature over the whole result, once every node has completed.

    `nodes` carries the outputs of nodes not reported before (a fast task reports only this):
    the result's digest covers them with every earlier output."""
    agent_id: str
    attempt: int
    digest: str
    signature: str
    nodes: tuple[NodeOutput, ...] = ()


@dataclass(frozen=True)
class RejectResult(TaskCommand):
    """A report that failed verification at the decider's door (signature, digest, or sender)."""
    agent_id: str
    attempt: int
    reason: str


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
    endpoint: str = ""
    model: str = ""
    hardware: Hardware = field(default_factory=Hardware)
    price: float = 0.0
    targets: dict[str, float] = field(default_factory=dict)
    public_key: str = ""


@dataclass(frozen=True)
class Heartbeat(AgentCommand):
    running: int = 0
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    gpu_percent: float | None = None  # null where the host has no GPU or no NVML: never a made-up 0
    gpu_memory_percent: float | None = None
    gpu_temperature_c: float | None = None
    tokens_per_second: float | None = None
    response_seconds: float | None = None  # mean run time of the executor's recent tasks


@dataclass(frozen=True)
class DeregisterAgent(AgentCommand):
    reason: str = ""


@dataclass(frozen=True)
class ExpireAgent(AgentCommand):
    """Sent by a timer when heartbeats may have stopped; the decider checks."""


@dataclass(frozen=True)
class ReserveSlot(AgentCommand):
    task_id: str
    escrow_id: str = ""
    round_id: str = ""  # the matcher round that proposed it (see streams/matcher.py), carried into its answer


@dataclass(frozen=True)
class ReleaseSlot(AgentCommand):
    task_id: str


@dataclass(frozen=True)
class LedgerCommand:
    ledger_id: str
    command_id: str
    at: int


@dataclass(frozen=True)
class DepositFunds(LedgerCommand):
    account: str
    amount: int
    reference: str = ""


@dataclass(frozen=True)
class WithdrawFunds(LedgerCommand):
    account: str
    amount: int


@dataclass(frozen=True)
class HoldEscrow(LedgerCommand):
    escrow_id: str
    task_id: str
    requester: str
    agent_id: str
    amount: int
    round_id: str = ""  # the matcher round that proposed it, carried into its answer and the slot request


@dataclass(frozen=True)
class ReleaseEscrow(LedgerCommand):
    """Pays an escrow to its agent: only the follow-up of the TaskCompleted (`completed_by`) that earned it."""
    escrow_id: str
    fee_bps: int = 0
    task_id: str = ""
    agent_id: str = ""
    completed_by: str = ""  # the id of the TaskCompleted event, `<task_id>/<seq>`


@dataclass(frozen=True)
class RefundEscrow(LedgerCommand):
    escrow_id: str
    reason: str = ""


TASK_COMMANDS = (SubmitTask, CancelTask, AssignTask, PinTask, NoteWaiting, ExpireTask, ReportAgentLost, WatchTask,
                 DependencyFinished, StartTask, ReportNodeStarted, ReportNodeProgress, ReportNodeCompleted,
                 ReportNodeFailed, ReportTaskResult, RejectResult)
AGENT_COMMANDS = (RegisterAgent, Heartbeat, DeregisterAgent, ExpireAgent, ReserveSlot, ReleaseSlot)
LEDGER_COMMANDS = (DepositFunds, WithdrawFunds, HoldEscrow, ReleaseEscrow, RefundEscrow)
# what executors send: signed with the agent's registered key, or refused at the decider's door
EXECUTOR_COMMANDS = (RegisterAgent, Heartbeat, DeregisterAgent, StartTask, ReportNodeStarted, ReportNodeProgress,
                     ReportNodeCompleted, ReportNodeFailed, ReportTaskResult)
DOOR_ONLY = (RejectResult,)  # made by the door itself from a report that failed its checks, never sent

quick_init_all(globals())
