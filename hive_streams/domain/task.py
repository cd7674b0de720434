"""The task aggregate: decide(command, state, now) -> events; evolve(state, event) -> state."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import singledispatch
from typing import Mapping

from . import commands as c
from . import events as e
from .dag import InvalidGraph, topological_order
from .evolving import Handlers, copy_with, quick_init
from .tenancy import account_tenant, task_tenant
from .model import (Hardware, NodeOutput, NodeSpec, Requirement, TaskSpec, needed_capabilities, needs, node_digest,
                    result_digest)

TERMINAL = frozenset({"completed", "failed", "cancelled", "rejected"})
ACTIVE = frozenset({"assigned", "running"})
MAX_BACKOFF_MS = 60_000
DEADLINE_EXCEEDED = "deadline_exceeded"
NO_KEY = "no key for priced work"
BAD_DIGEST = "output digest does not match the output"
UNSIGNED = "result is not signed"


@quick_init
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
    budget: float | None = None
    max_retries: int = 2
    requires: tuple[Requirement, ...] = ()
    hardware: Hardware = field(default_factory=Hardware)
    after: tuple[str, ...] = ()
    retry_backoff_seconds: float = 1.0
    agent_id: str | None = None
    agent_key: str = ""
    escrow_id: str = ""
    attempt: int = 0
    failures: int = 0
    tried: tuple[str, ...] = ()
    pinned_to: str | None = None
    not_before: int = 0
    waiting_on: tuple[str, ...] = ()
    waiting_reason: str = ""
    watchers: tuple[str, ...] = ()
    node_status: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    progress: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    submitted_at: int = 0
    updated_at: int = 0
    definition_digest: str = ""
    callback_url: str = ""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.nodes, self.priority, self.deadline_at, self.budget, self.max_retries,
                        self.requires, self.hardware, self.after, self.retry_backoff_seconds, self.callback_url)


def backoff_ms(state: TaskState) -> int:
    """Exponential: base, 2x base, 4x base... capped at a minute."""
    return min(MAX_BACKOFF_MS, int(state.retry_backoff_seconds * 1000 * 2 ** state.failures))


# decide ---------------------------------------------------------------------------------

def decide(command: c.TaskCommand, state: TaskState, now: int) -> list[e.TaskEvent]:
    drafts = _decide(command, state, now)
    if any(isinstance(ev, e.TERMINAL_TASK_EVENTS) for ev in drafts) and state.watchers:
        outcome = _outcome(drafts[-1])
        drafts += [e.TaskOutcomeShared(**_base(state, now), watcher=w, outcome=outcome) for w in state.watchers]
    for i, ev in enumerate(drafts):  # drafts are new and unshared: numbering them in place is safe
        _set(ev, "seq", state.seq + i + 1)
    return drafts


def _outcome(event: e.TaskEvent) -> str:
    return {e.TaskCompleted: "completed", e.TaskFailed: "failed", e.TaskCancelled: "cancelled",
            e.TaskRejected: "rejected"}[type(event)]


def _base(state: TaskState, now: int) -> dict:
    return {"task_id": state.task_id, "seq": 0, "at": now}


def _is_current(cmd, state: TaskState) -> bool:
    return state.status in ACTIVE and cmd.agent_id == state.agent_id and cmd.attempt == state.attempt


def _attempt_failed(state: TaskState, now: int, reason: str) -> e.TaskEvent:
    b = _base(state, now)
    if state.failures < state.max_retries:
        return e.TaskRetryScheduled(**b, agent_id=state.agent_id or "", attempt=state.attempt, reason=reason,
                                    not_before=now + backoff_ms(state), escrow_id=state.escrow_id)
    retries = f"after {state.failures} retries" if state.failures else "no retries allowed"
    return e.TaskFailed(**b, reason=f"{reason} ({retries})", agent_id=state.agent_id or "", escrow_id=state.escrow_id)


def _queued(state: TaskState, now: int) -> e.TaskValidated:
    return e.TaskValidated(**_base(state, now), requires=needed_capabilities(state.spec), priority=state.priority,
                           hardware=state.hardware, budget=state.budget, requester=state.requester)


@singledispatch
def _decide(command, state: TaskState, now: int) -> list[e.TaskEvent]:
    raise TypeError(f"unknown task command {type(command).__name__}")


@_decide.register
def _(cmd: c.SubmitTask, state: TaskState, now: int):
    if state.status != "new":
        return []
    b = _base(state, now)
    problem = _submission_problem(cmd, now)
    queued = not problem and not cmd.after  # valid and free to run: one event, no TaskValidated
    submitted = e.TaskSubmitted(**b, name=cmd.name, requester=cmd.requester, nodes=cmd.nodes, priority=cmd.priority,
                                deadline_at=cmd.deadline_at, budget=cmd.budget, max_retries=cmd.max_retries,
                                requires=cmd.requires, hardware=cmd.hardware, after=cmd.after,
                                retry_backoff_seconds=cmd.retry_backoff_seconds, queued=queued,
                                definition_digest=cmd.definition_digest, callback_url=cmd.callback_url)
    if problem:
        return [submitted, e.TaskRejected(**b, reason=problem)]
    if cmd.after:
        return [submitted, e.TaskBlocked(**b, waiting_on=tuple(dict.fromkeys(cmd.after)))]
    return [submitted]


def with_default_deadline(command, deadline_ms: int):
    """A submission without a deadline gets one, `deadline_ms` after it was sent (the command's time, so a
    duplicate decides the same); every other command is returned as it is."""
    if isinstance(command, c.SubmitTask) and command.deadline_at is None and deadline_ms > 0:
        return copy_with(command, deadline_at=command.at + deadline_ms)
    return command


def _submission_problem(cmd: c.SubmitTask, now: int) -> str:
    tenancy = _tenancy_problem(cmd)
    if tenancy:
        return tenancy
    try:
        topological_order(cmd.nodes)
    except InvalidGraph as exc:
        return str(exc)
    if cmd.deadline_at is not None and cmd.deadline_at <= now:
        return "deadline already passed"
    if cmd.task_id in cmd.after:
        return "a task cannot wait for itself"
    return ""


def _tenancy_problem(cmd: c.SubmitTask) -> str:
    """A task belongs to its requester's tenant, and waits only for tasks of that tenant."""
    tenant = task_tenant(cmd.task_id)
    if tenant != account_tenant(cmd.requester):
        return f"task id {cmd.task_id!r} is not in the requester's tenant {account_tenant(cmd.requester)!r}"
    foreign = [t for t in cmd.after if task_tenant(t) != tenant]
    return f"dependency {foreign[0]!r} is not a task of tenant {tenant!r}" if foreign else ""


@_decide.register
def _(cmd: c.DependencyFinished, state: TaskState, now: int):
    if state.status != "blocked" or cmd.dependency not in state.waiting_on:
        return []
    b = _base(state, now)
    resolved = e.DependencyResolved(**b, dependency=cmd.dependency, outcome=cmd.outcome)
    if cmd.outcome != "completed":
        return [resolved, e.TaskFailed(**b, reason=f"dependency {cmd.dependency} {cmd.outcome}")]
    if len(state.waiting_on) == 1:
        return [resolved, _queued(state, now)]
    return [resolved]


@_decide.register
def _(cmd: c.WatchTask, state: TaskState, now: int):
    if cmd.watcher in state.watchers:
        return []
    watched = e.TaskWatched(**_base(state, now), watcher=cmd.watcher)
    if state.terminal:
        return [watched, e.TaskOutcomeShared(**_base(state, now), watcher=cmd.watcher, outcome=state.status)]
    return [watched]


@_decide.register
def _(cmd: c.CancelTask, state: TaskState, now: int):
    if state.status == "new" or state.terminal:
        return []
    return [e.TaskCancelled(**_base(state, now), reason=cmd.reason or "cancelled", agent_id=_holder(state),
                            escrow_id=_escrow(state))]


def _holder(state: TaskState) -> str:
    return state.agent_id or "" if state.status in ACTIVE else ""


def _escrow(state: TaskState) -> str:
    return state.escrow_id if state.status in ACTIVE else ""


@_decide.register
def _(cmd: c.ExpireTask, state: TaskState, now: int):
    if state.terminal or state.status == "new" or state.deadline_at is None or now < state.deadline_at:
        return []
    return [e.TaskFailed(**_base(state, now), reason=DEADLINE_EXCEEDED, agent_id=_holder(state),
                         escrow_id=_escrow(state))]


@_decide.register
def _(cmd: c.NoteWaiting, state: TaskState, now: int):
    if state.status != "queued" or cmd.reason == state.waiting_reason:
        return []
    return [e.TaskWaiting(**_base(state, now), reason=cmd.reason)]


@_decide.register
def _(cmd: c.PinTask, state: TaskState, now: int):
    if state.status not in ("queued", "blocked") or state.pinned_to == cmd.agent_id:
        return []
    return [e.TaskPinned(**_base(state, now), agent_id=cmd.agent_id)]


@_decide.register
def _(cmd: c.AssignTask, state: TaskState, now: int):
    if state.status in ACTIVE and state.agent_id == cmd.agent_id:
        if cmd.escrow_id == state.escrow_id:
            return []  # the same assignment again
        # a second reservation on the agent it runs on (only an offline written without `holds_kept` frees a
        # running task's slot): its escrow goes back; no slot is released here, the running attempt releases its own
        return [e.TaskAssignmentDeclined(**_base(state, now), agent_id="", reason=f"already runs on {cmd.agent_id}",
                                         escrow_id=cmd.escrow_id)]
    if state.status != "queued" or (state.pinned_to and state.pinned_to != cmd.agent_id):
        reason = f"pinned to {state.pinned_to}" if state.status == "queued" else f"task is {state.status}"
        return [e.TaskAssignmentDeclined(**_base(state, now), agent_id=cmd.agent_id, reason=reason,
                                         escrow_id=cmd.escrow_id)]
    if cmd.escrow_id and not cmd.agent_key:  # nobody is paid for a result nobody can verify as theirs
        return [e.TaskAssignmentDeclined(**_base(state, now), agent_id=cmd.agent_id, reason=NO_KEY,
                                         escrow_id=cmd.escrow_id)]
    done = tuple(NodeOutput(k, v) for k, v in sorted(state.outputs.items()))
    return [e.TaskAssigned(**_base(state, now), agent_id=cmd.agent_id, attempt=state.attempt + 1,
                           nodes=state.nodes, completed=done, escrow_id=cmd.escrow_id, agent_key=cmd.agent_key)]


@_decide.register
def _(cmd: c.ReportAgentLost, state: TaskState, now: int):
    if state.status not in ACTIVE or state.agent_id != cmd.agent_id:
        return []
    return [_attempt_failed(state, now, f"agent {cmd.agent_id} went offline")]


@_decide.register
def _(cmd: c.StartTask, state: TaskState, now: int):
    if state.status != "assigned" or not _is_current(cmd, state):
        return []
    return [e.TaskStarted(**_base(state, now), agent_id=cmd.agent_id, attempt=cmd.attempt)]


def _open_node(cmd, state: TaskState) -> bool:
    return _is_current(cmd, state) and state.node_status.get(cmd.node_id, "missing") not in ("missing", "completed")


@_decide.register
def _(cmd: c.ReportNodeStarted, state: TaskState, now: int):
    if not _open_node(cmd, state) or state.node_status[cmd.node_id] == "running":
        return []
    return [e.NodeStarted(**_base(state, now), node_id=cmd.node_id, agent_id=cmd.agent_id, attempt=cmd.attempt)]


@_decide.register
def _(cmd: c.ReportNodeProgress, state: TaskState, now: int):
    if not _open_node(cmd, state) or state.node_status[cmd.node_id] != "running":
        return []
    progress = min(1.0, max(0.0, cmd.progress))
    if progress <= state.progress.get(cmd.node_id, -1.0):
        return []  # progress only moves forward; a replayed report says nothing new
    return [e.NodeProgress(**_base(state, now), node_id=cmd.node_id, progress=progress, message=cmd.message)]


def reported_outputs(cmd: c.ReportTaskResult, state: TaskState) -> dict[str, str]:
    """Every output the result covers: those recorded, and those it carries for still open nodes."""
    outputs = dict(state.outputs)
    for node in cmd.nodes:
        if state.node_status.get(node.node_id, "completed") != "completed":
            outputs[node.node_id] = node.output_json
    return outputs


def result_problem(cmd: c.ReportNodeCompleted | c.ReportTaskResult, state: TaskState) -> str:
    """Why the current agent's result cannot be accepted, or empty. Needs no key: it always runs.

    The signature itself is checked at the decider's door (`streams/verify.py`), which has the crypto."""
    if state.escrow_id and not state.agent_key:
        return NO_KEY
    if isinstance(cmd, c.ReportNodeCompleted):
        expected = node_digest(state.task_id, cmd.attempt, cmd.node_id, cmd.output_json)
    else:
        expected = result_digest(state.task_id, cmd.attempt, reported_outputs(cmd, state))
    if cmd.digest != expected:
        return BAD_DIGEST
    if state.agent_key and not cmd.signature:
        return UNSIGNED
    return ""


def _rejected(cmd, state: TaskState, now: int, reason: str) -> list[e.TaskEvent]:
    rejected = e.ResultRejected(**_base(state, now), agent_id=cmd.agent_id, attempt=cmd.attempt, reason=reason)
    if not _is_current(cmd, state):
        return [rejected] if state.status != "new" else []  # a stranger's result: penalised, nothing else changes
    return [rejected, _attempt_failed(state, now, f"result rejected: {reason}")]


@_decide.register
def _(cmd: c.ReportNodeCompleted, state: TaskState, now: int):
    if not _open_node(cmd, state):
        return []
    problem = result_problem(cmd, state)
    if problem:
        return _rejected(cmd, state, now, problem)
    return [
        e.NodeCompleted(**_base(state, now), node_id=cmd.node_id, output_json=cmd.output_json, attempt=cmd.attempt,
                        digest=cmd.digest, signature=cmd.signature)]


@_decide.register
def _(cmd: c.ReportTaskResult, state: TaskState, now: int):
    """The only way a task completes: a final result whose digest covers every output."""
    outputs = reported_outputs(cmd, state) if cmd.nodes else state.outputs
    if not _is_current(cmd, state) or not all(n.id in outputs for n in state.nodes):
        return []
    problem = result_problem(cmd, state)
    if problem:
        return _rejected(cmd, state, now, problem)
    final = tuple(NodeOutput(n.id, outputs[n.id]) for n in state.nodes)
    return [e.TaskCompleted(**_base(state, now), agent_id=cmd.agent_id, outputs=final, escrow_id=state.escrow_id,
                            result_digest=cmd.digest, signature=cmd.signature)]


@_decide.register
def _(cmd: c.RejectResult, state: TaskState, now: int):
    return _rejected(cmd, state, now, cmd.reason)


@_decide.register
def _(cmd: c.ReportNodeFailed, state: TaskState, now: int):
    if not _open_node(cmd, state):
        return []
    b = _base(state, now)
    return [
        e.NodeFailed(**b, node_id=cmd.node_id, error=cmd.error, attempt=cmd.attempt),
        _attempt_failed(state, now, f"node {cmd.node_id} failed: {cmd.error}"),
    ]


EXECUTOR_STOPS = (e.TaskCancelled, e.TaskFailed, e.TaskRetryScheduled)  # an executor stops the task it runs


def delivery(event: e.TaskEvent, state: TaskState) -> tuple[str, str] | None:
    """The agent that must act on `event`, and its key (from the state before the event): an assignment
    to it, or a stop of the task it holds. None for everything else, which executors never see."""
    if isinstance(event, e.TaskAssigned):
        return event.agent_id, event.agent_key
    if isinstance(event, EXECUTOR_STOPS) and event.agent_id and event.agent_id == state.agent_id and state.agent_key:
        return event.agent_id, state.agent_key
    return None


def signing_key(cmd, state: TaskState) -> tuple[str, str]:
    """The key an executor's report on this task must be signed with: that of the agent holding it (or
    that held it last), from its assignment. Any other agent's key is unknown here, so its report is refused."""
    if cmd.agent_id != state.agent_id:
        return "", f"agent {cmd.agent_id} does not hold task {state.task_id}, so its signature cannot be checked"
    if not state.agent_key:
        return "", f"agent {cmd.agent_id} was assigned task {state.task_id} without a key"
    return state.agent_key, ""


# evolve ---------------------------------------------------------------------------------

def evolve(state: TaskState, event: e.TaskEvent) -> TaskState:
    if event.seq <= state.seq:
        return state  # already applied: redelivery after a crash
    changes = _on[event.__class__](event, state)
    fields = state.__dict__.copy()  # evolving.copy_with, inline: the fold's hottest line
    if changes:
        fields.update(changes)
    fields["seq"] = event.seq
    fields["updated_at"] = event.at
    new = _new(state.__class__)
    _set(new, "__dict__", fields)
    return new


_new = object.__new__
_set = object.__setattr__


def fold(events, task_id: str) -> TaskState:
    state = TaskState(task_id)
    for event in events:
        state = evolve(state, event)
    return state


_on = Handlers("task")


def _nodes(state: TaskState, node_id: str, status: str) -> dict[str, str]:
    return {**state.node_status, node_id: status}


@_on.on(e.TaskSubmitted)
def _(ev: e.TaskSubmitted, state: TaskState):
    if ev.queued:
        return {**_submitted(ev), "status": "queued", "requires": needs(ev.nodes, ev.requires)}
    return _submitted(ev)


def _submitted(ev: e.TaskSubmitted) -> dict:
    return {"status": "submitted", "name": ev.name, "requester": ev.requester, "nodes": ev.nodes,
            "priority": ev.priority, "deadline_at": ev.deadline_at, "budget": ev.budget,
            "max_retries": ev.max_retries, "requires": ev.requires, "hardware": ev.hardware, "after": ev.after,
            "retry_backoff_seconds": ev.retry_backoff_seconds, "submitted_at": ev.at,
            "definition_digest": ev.definition_digest, "callback_url": ev.callback_url,
            "node_status": {n.id: "pending" for n in ev.nodes}}


@_on.on(e.TaskBlocked)
def _(ev: e.TaskBlocked, state: TaskState):
    return {"status": "blocked", "waiting_on": ev.waiting_on}


@_on.on(e.DependencyResolved)
def _(ev: e.DependencyResolved, state: TaskState):
    return {"waiting_on": tuple(t for t in state.waiting_on if t != ev.dependency)}


@_on.on(e.TaskValidated)
def _(ev: e.TaskValidated, state: TaskState):
    return {"status": "queued", "requires": ev.requires}


@_on.on(e.TaskRejected)
def _(ev: e.TaskRejected, state: TaskState):
    return {"status": "rejected", "reason": ev.reason}


@_on.on(e.TaskWaiting)
def _(ev: e.TaskWaiting, state: TaskState):
    return {"waiting_reason": ev.reason}


@_on.on(e.TaskPinned)
def _(ev: e.TaskPinned, state: TaskState):
    return {"pinned_to": ev.agent_id}


@_on.on(e.TaskAssigned)
def _(ev: e.TaskAssigned, state: TaskState):
    return {"status": "assigned", "agent_id": ev.agent_id, "attempt": ev.attempt, "waiting_reason": "",
            "tried": state.tried + (ev.agent_id,), "escrow_id": ev.escrow_id, "agent_key": ev.agent_key}


@_on.on(e.ResultRejected)
def _(ev: e.ResultRejected, state: TaskState):
    return None


@_on.on(e.TaskAssignmentDeclined)
def _(ev: e.TaskAssignmentDeclined, state: TaskState):
    return None


@_on.on(e.TaskStarted)
def _(ev: e.TaskStarted, state: TaskState):
    return {"status": "running"}


def _running(state: TaskState) -> str:
    """A node's first report also starts its task."""
    return "running" if state.status == "assigned" else state.status


@_on.on(e.NodeStarted)
def _(ev: e.NodeStarted, state: TaskState):
    return {"node_status": _nodes(state, ev.node_id, "running"), "status": _running(state)}


@_on.on(e.NodeProgress)
def _(ev: e.NodeProgress, state: TaskState):
    return {"progress": {**state.progress, ev.node_id: ev.progress}}


@_on.on(e.NodeCompleted)
def _(ev: e.NodeCompleted, state: TaskState):
    return {"node_status": _nodes(state, ev.node_id, "completed"), "outputs": {**state.outputs, ev.node_id: ev.output_json},
            "status": _running(state)}


@_on.on(e.NodeFailed)
def _(ev: e.NodeFailed, state: TaskState):
    return {"node_status": _nodes(state, ev.node_id, "failed"), "status": _running(state)}


@_on.on(e.TaskRetryScheduled)
def _(ev: e.TaskRetryScheduled, state: TaskState):
    # completed nodes keep their outputs; everything else runs again on the next attempt
    nodes = {k: ("completed" if v == "completed" else "pending") for k, v in state.node_status.items()}
    progress = {k: v for k, v in state.progress.items() if nodes.get(k) == "completed"}
    return {"status": "queued", "agent_id": None, "failures": state.failures + 1, "not_before": ev.not_before,
            "reason": ev.reason, "node_status": nodes, "progress": progress, "pinned_to": None,  # a pin is one placement
            "escrow_id": "", "agent_key": ""}


@_on.on(e.TaskCompleted)
def _(ev: e.TaskCompleted, state: TaskState):
    """Outputs a fast task reported only with its result are recorded here."""
    return {"status": "completed", "outputs": {o.node_id: o.output_json for o in ev.outputs},
            "node_status": {k: "completed" for k in state.node_status}}


@_on.on(e.TaskFailed)
def _(ev: e.TaskFailed, state: TaskState):
    return {"status": "failed", "reason": ev.reason}


@_on.on(e.TaskCancelled)
def _(ev: e.TaskCancelled, state: TaskState):
    return {"status": "cancelled", "reason": ev.reason}


@_on.on(e.TaskWatched)
def _(ev: e.TaskWatched, state: TaskState):
    return {"watchers": state.watchers + (ev.watcher,)}


@_on.on(e.TaskOutcomeShared)
def _(ev: e.TaskOutcomeShared, state: TaskState):
    return None
