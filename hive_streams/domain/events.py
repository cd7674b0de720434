"""Events: facts in the log. Every event names its aggregate and its sequence number in it."""
from __future__ import annotations

from dataclasses import dataclass, field

from .evolving import quick_init_all

from .model import Capability, Hardware, Leg, NodeOutput, NodeSpec, Requirement


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
    budget: float | None = None
    max_retries: int = 2
    requires: tuple[Requirement, ...] = ()
    hardware: Hardware = field(default_factory=Hardware)
    after: tuple[str, ...] = ()
    retry_backoff_seconds: float = 1.0
    queued: bool = False  # valid and waiting for an agent at once: no TaskValidated follows
    definition_digest: str = ""  # of the definition as submitted: a repeat of the id must match it
    callback_url: str = ""  # where each of the task's status changes is POSTed, signed


@dataclass(frozen=True)
class TaskBlocked(TaskEvent):
    """The task waits for the tasks it depends on."""
    waiting_on: tuple[str, ...]


@dataclass(frozen=True)
class DependencyResolved(TaskEvent):
    dependency: str
    outcome: str


@dataclass(frozen=True)
class TaskValidated(TaskEvent):
    """The task is queued for the marketplace with everything matching needs."""
    requires: tuple[Requirement, ...] = ()
    priority: int = 0
    hardware: Hardware = field(default_factory=Hardware)
    budget: float | None = None
    requester: str = ""


@dataclass(frozen=True)
class TaskRejected(TaskEvent):
    reason: str


@dataclass(frozen=True)
class TaskWaiting(TaskEvent):
    """Why no agent has taken the queued task yet."""
    reason: str


@dataclass(frozen=True)
class TaskPinned(TaskEvent):
    """An operator chose the agent: the marketplace offers the task to it only."""
    agent_id: str


@dataclass(frozen=True)
class TaskAssigned(TaskEvent):
    agent_id: str
    attempt: int
    nodes: tuple[NodeSpec, ...]
    completed: tuple[NodeOutput, ...] = ()
    escrow_id: str = ""
    agent_key: str = ""


@dataclass(frozen=True)
class TaskAssignmentDeclined(TaskEvent):
    agent_id: str
    reason: str
    escrow_id: str = ""


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
    digest: str = ""
    signature: str = ""


@dataclass(frozen=True)
class NodeFailed(TaskEvent):
    node_id: str
    error: str
    attempt: int


@dataclass(frozen=True)
class TaskRetryScheduled(TaskEvent):
    """An attempt failed; the task is queued again, not before `not_before`, preferably elsewhere."""
    agent_id: str
    attempt: int
    reason: str
    not_before: int
    escrow_id: str = ""


@dataclass(frozen=True)
class ResultRejected(TaskEvent):
    """A reported result failed verification: no payment, and a reputation penalty for its agent."""
    agent_id: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class TaskCompleted(TaskEvent):
    agent_id: str
    outputs: tuple[NodeOutput, ...]
    escrow_id: str = ""
    result_digest: str = ""
    signature: str = ""


@dataclass(frozen=True)
class TaskFailed(TaskEvent):
    reason: str
    agent_id: str = ""
    escrow_id: str = ""


@dataclass(frozen=True)
class TaskCancelled(TaskEvent):
    reason: str = ""
    agent_id: str = ""
    escrow_id: str = ""


@dataclass(frozen=True)
class TaskWatched(TaskEvent):
    """Another task depends on this one and wants its outcome."""
    watcher: str


@dataclass(frozen=True)
class TaskOutcomeShared(TaskEvent):
    watcher: str
    outcome: str


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
    endpoint: str = ""
    model: str = ""
    hardware: Hardware = field(default_factory=Hardware)
    price: float = 0.0
    targets: dict[str, float] = field(default_factory=dict)
    public_key: str = ""


@dataclass(frozen=True)
class AgentHeartbeat(AgentEvent):
    running: int = 0
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    gpu_percent: float | None = None  # null where the host has no GPU or no NVML: never a made-up 0
    gpu_memory_percent: float | None = None
    gpu_temperature_c: float | None = None
    tokens_per_second: float | None = None
    response_seconds: float | None = None  # mean run time of the executor's recent tasks


@dataclass(frozen=True)
class AgentStatusChanged(AgentEvent):
    status: str
    reason: str = ""
    lost_tasks: tuple[str, ...] = ()
    # an agent going offline keeps each slot it holds until that task's own release: a later reservation of a
    # lost task waits for it, so no release frees a slot another attempt holds. Written before: slots cleared
    holds_kept: bool = False


@dataclass(frozen=True)
class SlotReserved(AgentEvent):
    task_id: str
    escrow_id: str = ""
    public_key: str = ""
    round_id: str = ""  # the matcher round that proposed the slot


@dataclass(frozen=True)
class SlotRefused(AgentEvent):
    task_id: str
    reason: str
    escrow_id: str = ""
    round_id: str = ""  # the matcher round that proposed the slot


@dataclass(frozen=True)
class SlotReleased(AgentEvent):
    task_id: str


@dataclass(frozen=True)
class LedgerEvent:
    ledger_id: str
    seq: int
    at: int


@dataclass(frozen=True)
class FundsDeposited(LedgerEvent):
    account: str
    amount: int
    reference: str = ""
    legs: tuple[Leg, ...] = ()


@dataclass(frozen=True)
class FundsWithdrawn(LedgerEvent):
    account: str
    amount: int
    legs: tuple[Leg, ...] = ()


@dataclass(frozen=True)
class WithdrawalRefused(LedgerEvent):
    account: str
    amount: int
    reason: str


@dataclass(frozen=True)
class EscrowHeld(LedgerEvent):
    escrow_id: str
    task_id: str
    requester: str
    agent_id: str
    amount: int
    legs: tuple[Leg, ...] = ()
    round_id: str = ""  # the matcher round that proposed the escrow


@dataclass(frozen=True)
class EscrowRefused(LedgerEvent):
    escrow_id: str
    task_id: str
    requester: str
    agent_id: str
    amount: int
    reason: str
    round_id: str = ""  # the matcher round that proposed the escrow


@dataclass(frozen=True)
class EscrowReleased(LedgerEvent):
    escrow_id: str
    task_id: str
    agent_id: str
    amount: int
    fee: int
    legs: tuple[Leg, ...] = ()


@dataclass(frozen=True)
class EscrowRefunded(LedgerEvent):
    escrow_id: str
    task_id: str
    requester: str
    amount: int
    reason: str
    legs: tuple[Leg, ...] = ()


@dataclass(frozen=True)
class AlertEvent:
    alert_id: str  # `<rule>:<key>`: one history per rule and what it is about
    seq: int
    at: int


@dataclass(frozen=True)
class AlertRaised(AlertEvent):
    """A rule's condition holds (see domain/alerts.py)."""
    rule: str
    key: str
    severity: str
    message: str
    value: float | None = None


@dataclass(frozen=True)
class AlertResolved(AlertEvent):
    """The condition of a raised alert has stayed clear for the heartbeats the rules ask."""
    rule: str
    key: str
    message: str = ""


TERMINAL_TASK_EVENTS = (TaskCompleted, TaskFailed, TaskCancelled, TaskRejected)
TASK_EVENTS = (TaskSubmitted, TaskBlocked, DependencyResolved, TaskValidated, TaskRejected, TaskWaiting, TaskPinned,
               TaskAssigned, TaskAssignmentDeclined, TaskStarted, NodeStarted, NodeProgress, NodeCompleted,
               NodeFailed, TaskRetryScheduled, ResultRejected, TaskCompleted, TaskFailed, TaskCancelled, TaskWatched,
               TaskOutcomeShared)
AGENT_EVENTS = (AgentRegistered, AgentHeartbeat, AgentStatusChanged, SlotReserved, SlotRefused, SlotReleased)
LEDGER_EVENTS = (FundsDeposited, FundsWithdrawn, WithdrawalRefused, EscrowHeld, EscrowRefused, EscrowReleased,
                 EscrowRefunded)
ALERT_EVENTS = (AlertRaised, AlertResolved)

quick_init_all(globals())
