"""An execution's commands, events and state: one run of a pinned workflow version, in supersteps.

Channel values, inputs and node outputs travel as JSON text (their types are the workflow's own,
checked against its JSON Schemas); everything else is typed.
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import NodeSpec, Requirement


@dataclass(frozen=True)
class StepItem:
    """One frontier item: a node run as one task."""
    ordinal: int
    task_id: str
    node: NodeSpec
    requires: tuple[Requirement, ...] = ()
    budget: float | None = None
    max_retries: int = 2
    input_json: str = "null"


@dataclass(frozen=True)
class ItemOutcome:
    ordinal: int
    task_id: str
    outcome: str  # completed, failed, cancelled or rejected
    output_json: str = "null"
    error: str = ""


# commands ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExecutionCommand:
    execution_id: str
    command_id: str
    at: int


@dataclass(frozen=True)
class StartExecution(ExecutionCommand):
    workflow: str
    version: int
    requester: str
    definition_json: str
    inputs_json: str = "{}"
    budget: float | None = None
    deadline_at: int | None = None


@dataclass(frozen=True)
class RecordItemOutcome(ExecutionCommand):
    """A frontier task ended (sent by the task's decider with its terminal event)."""
    task_id: str
    outcome: str
    output_json: str = "null"
    error: str = ""


@dataclass(frozen=True)
class ResumeExecution(ExecutionCommand):
    interrupt_id: str
    payload_json: str = "null"


@dataclass(frozen=True)
class CancelExecution(ExecutionCommand):
    reason: str = ""


@dataclass(frozen=True)
class ExpireExecution(ExecutionCommand):
    pass


# events -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExecutionEvent:
    execution_id: str
    seq: int
    at: int


@dataclass(frozen=True)
class ExecutionStarted(ExecutionEvent):
    workflow: str
    version: int
    requester: str
    definition_json: str
    values_json: str = "{}"
    budget: float | None = None
    deadline_at: int | None = None


@dataclass(frozen=True)
class StepStarted(ExecutionEvent):
    """A superstep's frontier, submitted as tasks of the execution's requester."""
    step: int
    items: tuple[StepItem, ...]
    requester: str
    deadline_at: int | None = None
    spent: float = 0.0  # budget given to the execution's tasks so far, this step's included


@dataclass(frozen=True)
class StepItemFinished(ExecutionEvent):
    step: int
    outcome: ItemOutcome


@dataclass(frozen=True)
class StepCommitted(ExecutionEvent):
    """The step's writes in task-ordinal order, the merged values, barriers and the next frontier."""
    step: int
    writes_json: str = "[]"  # [[ordinal, node, channel, value], ...]; untracked channels' values are left out
    values_json: str = "{}"  # carried channel values after the merge
    barriers_json: str = "{}"  # join name -> sources fired since it last fired
    routes_json: str = "[]"  # [[ordinal, node, target or null], ...]
    next_json: str = "[]"  # [{"node": name, "input": value}, ...]


@dataclass(frozen=True)
class ExecutionInterrupted(ExecutionEvent):
    step: int
    interrupt_id: str
    ordinal: int
    node: str
    payload_json: str = "null"


@dataclass(frozen=True)
class ExecutionResumed(ExecutionEvent):
    interrupt_id: str
    payload_json: str = "null"


@dataclass(frozen=True)
class ExecutionCompleted(ExecutionEvent):
    values_json: str = "{}"


@dataclass(frozen=True)
class ExecutionFailed(ExecutionEvent):
    reason: str
    running: tuple[str, ...] = ()  # tasks still running: cancelled


@dataclass(frozen=True)
class ExecutionCancelled(ExecutionEvent):
    reason: str = ""
    running: tuple[str, ...] = ()


# state ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExecutionState:
    execution_id: str
    seq: int = 0
    status: str = "new"  # running, interrupted, completed, failed, cancelled
    workflow: str = ""
    version: int = 0
    requester: str = ""
    definition_json: str = ""
    budget: float | None = None
    deadline_at: int | None = None
    spent: float = 0.0
    step: int = 0
    values_json: str = "{}"
    barriers_json: str = "{}"
    pending_json: str = "[]"  # the next frontier while interrupted
    items: tuple[StepItem, ...] = ()
    outcomes: tuple[ItemOutcome, ...] = ()
    interrupt_id: str = ""
    interrupt_json: str = "null"
    resume_json: str = "null"
    reason: str = ""
    committed: int = 0  # steps committed

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    @property
    def running_tasks(self) -> tuple[str, ...]:
        done = {o.ordinal for o in self.outcomes}
        return tuple(i.task_id for i in self.items if i.ordinal not in done)


EXECUTION_TYPES = (StepItem, ItemOutcome)
EXECUTION_COMMANDS = (StartExecution, RecordItemOutcome, ResumeExecution, CancelExecution, ExpireExecution)
EXECUTION_EVENTS = (ExecutionStarted, StepStarted, StepItemFinished, StepCommitted, ExecutionInterrupted,
                    ExecutionResumed, ExecutionCompleted, ExecutionFailed, ExecutionCancelled)
TERMINAL_EXECUTION_EVENTS = (ExecutionCompleted, ExecutionFailed, ExecutionCancelled)
