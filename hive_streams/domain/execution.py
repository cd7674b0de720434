"""The execution aggregate: decide and evolve. Pure; time, ids and the checks come in as arguments.

A superstep starts with its frontier (StepStarted: each item becomes a task of the execution's
requester), collects each task's end (StepItemFinished), and once every item has ended, commits
(StepCommitted) and then starts the next step, waits at an interrupt, or completes. The state after
any committed step is the fold of these events: a restart folds them again and goes on.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import singledispatch

from . import execution_records as x
from .model import NodeSpec
from .superstep import Checks, commit_step
from .workflow import parsed

TASK_SUFFIX = re.compile(r"^(?P<execution>.+)\.s(?P<step>\d+)\.n(?P<ordinal>\d+)$")


def item_task_id(execution_id: str, step: int, ordinal: int) -> str:
    return f"{execution_id}.s{step}.n{ordinal}"


def execution_of_task(task_id: str) -> tuple[str, int, int] | None:
    """(execution id, step, ordinal) of a frontier task, or None for any other task."""
    m = TASK_SUFFIX.match(task_id)
    return (m["execution"], int(m["step"]), int(m["ordinal"])) if m else None


def interrupt_id(execution_id: str, step: int, ordinal: int) -> str:
    return f"{execution_id}/s{step}/n{ordinal}"


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def initial_values(definition_json: str, inputs: dict) -> dict:
    wf = parsed(definition_json)
    return {c.name: inputs.get(c.name, c.initial) for c in wf.channels if c.carried}


def _base(state: x.ExecutionState, now: int, n: int = 1) -> dict:
    return {"execution_id": state.execution_id, "seq": state.seq + n, "at": now}


class _Events:
    """Numbers events one after another from the state's seq."""

    def __init__(self, state: x.ExecutionState, now: int):
        self.state, self.now, self.out = state, now, []

    def add(self, cls, **fields) -> None:
        self.out.append(cls(**_base(self.state, self.now, len(self.out) + 1), **fields))


def decide(command, state: x.ExecutionState, now: int, checks: Checks) -> list:
    events = _Events(state, now)
    _decide(command, state, events, checks)
    return events.out


@singledispatch
def _decide(command, state, events, checks) -> None:
    raise TypeError(f"no decider for {type(command).__name__}")


@_decide.register
def _(cmd: x.StartExecution, state, events, checks) -> None:
    if state.status != "new":
        return
    wf = parsed(cmd.definition_json)
    inputs = json.loads(cmd.inputs_json)
    values = initial_values(cmd.definition_json, inputs)
    events.add(x.ExecutionStarted, workflow=cmd.workflow, version=cmd.version, requester=cmd.requester,
               definition_json=cmd.definition_json, values_json=dumps(values), budget=cmd.budget,
               deadline_at=cmd.deadline_at)
    started = evolve(state, events.out[-1])
    for name, value in inputs.items():
        channel = wf.channel(name)
        problem = "not a channel" if channel is None else checks.problem(channel.schema, value)
        if problem:
            events.add(x.ExecutionFailed, reason=f"input {name!r}: {problem}")
            return
    _start_step(started, [{"node": n, "input": None} for n in wf.entry], "null", events)


@_decide.register
def _(cmd: x.RecordItemOutcome, state, events, checks) -> None:
    place = execution_of_task(cmd.task_id)
    if state.status != "running" or place is None or place[1] != state.step:
        return
    item = next((i for i in state.items if i.task_id == cmd.task_id), None)
    if item is None or any(o.ordinal == item.ordinal for o in state.outcomes):
        return
    outcome = x.ItemOutcome(item.ordinal, item.task_id, cmd.outcome, cmd.output_json, cmd.error)
    events.add(x.StepItemFinished, step=state.step, outcome=outcome)
    state = evolve(state, events.out[-1])
    wf = parsed(state.definition_json)
    if cmd.outcome != "completed" and not any(e.source == item.node.id and e.on == "error" for e in wf.edges):
        events.add(x.ExecutionFailed, reason=f"node {item.node.id!r} (task {item.task_id}) {cmd.outcome}: "
                                             f"{cmd.error or 'no reason given'}", running=state.running_tasks)
        return
    if state.running_tasks:
        return
    commit = commit_step(wf, json.loads(state.values_json), json.loads(state.barriers_json), state.items,
                         state.outcomes, checks)
    if commit.failure:
        events.add(x.ExecutionFailed, reason=f"step {state.step}: {commit.failure}")
        return
    events.add(x.StepCommitted, step=state.step, writes_json=dumps(commit.writes), values_json=dumps(commit.values),
               barriers_json=dumps(commit.barriers), routes_json=dumps(commit.routes), next_json=dumps(commit.next))
    state = evolve(state, events.out[-1])
    if commit.interrupt is not None:
        ordinal, node, payload = commit.interrupt
        events.add(x.ExecutionInterrupted, step=state.step, interrupt_id=interrupt_id(state.execution_id, state.step,
                                                                                        ordinal),
                   ordinal=ordinal, node=node, payload_json=dumps(payload))
        return
    _start_step(state, commit.next, "null", events)


@_decide.register
def _(cmd: x.ResumeExecution, state, events, checks) -> None:
    if state.status != "interrupted" or cmd.interrupt_id != state.interrupt_id:
        return
    events.add(x.ExecutionResumed, interrupt_id=cmd.interrupt_id, payload_json=cmd.payload_json)
    state = evolve(state, events.out[-1])
    _start_step(state, json.loads(state.pending_json), cmd.payload_json, events)


@_decide.register
def _(cmd: x.CancelExecution, state, events, checks) -> None:
    if state.status in ("running", "interrupted"):
        events.add(x.ExecutionCancelled, reason=cmd.reason or "cancelled", running=state.running_tasks)


@_decide.register
def _(cmd: x.ExpireExecution, state, events, checks) -> None:
    if state.status in ("running", "interrupted") and state.deadline_at is not None and cmd.at >= state.deadline_at:
        events.add(x.ExecutionFailed, reason="deadline passed", running=state.running_tasks)


def _start_step(state: x.ExecutionState, seeds: list, resume_json: str, events: _Events) -> None:
    if not seeds:
        events.add(x.ExecutionCompleted, values_json=state.values_json)
        return
    wf = parsed(state.definition_json)
    step = state.step + 1
    values = json.loads(state.values_json)
    shared = None
    if state.budget is not None:
        unpriced = sum(1 for s in seeds if _budget(wf, s["node"]) is None)
        left = state.budget - state.spent - sum(_budget(wf, s["node"]) or 0 for s in seeds)
        shared = max(0.0, left) / unpriced if unpriced else 0.0
    items, spent = [], state.spent
    for ordinal, seed in enumerate(seeds):
        node = wf.node(seed["node"])
        budget = _budget(wf, seed["node"])
        if state.budget is not None and budget is None:
            budget = shared
        spent += budget or 0.0
        params = {**json.loads(node.spec.params_json),
                  "hive": {"execution_id": state.execution_id, "step": step, "node": node.spec.id, "ordinal": ordinal,
                           "input": seed.get("input"), "state": values, "resume": json.loads(resume_json)}}
        spec = NodeSpec(node.spec.id, node.spec.kind, dumps(params), (), node.spec.timeout_seconds)
        items.append(x.StepItem(ordinal, item_task_id(state.execution_id, step, ordinal), spec, node.requires, budget,
                                node.max_retries, dumps(seed.get("input"))))
    if state.budget is not None and spent > state.budget + 1e-9:
        events.add(x.ExecutionFailed, reason=f"budget exhausted: step {step} needs {spent - state.spent:g}, "
                                             f"{state.budget - state.spent:g} left")
        return
    events.add(x.StepStarted, step=step, items=tuple(items), requester=state.requester, deadline_at=state.deadline_at,
               spent=spent)


def _budget(wf, node_name: str) -> float | None:
    node = wf.node(node_name)
    return node.budget if node.budget is not None else wf.task_budget


# evolve -----------------------------------------------------------------------------------

def evolve(state: x.ExecutionState, event) -> x.ExecutionState:
    return _evolve(event, state)


@singledispatch
def _evolve(event, state: x.ExecutionState) -> x.ExecutionState:
    return state


def _next(state: x.ExecutionState, event, **changes) -> x.ExecutionState:
    return replace(state, seq=event.seq, **changes)


@_evolve.register
def _(event: x.ExecutionStarted, state) -> x.ExecutionState:
    return _next(state, event, status="running", workflow=event.workflow, version=event.version,
                 requester=event.requester, definition_json=event.definition_json, values_json=event.values_json,
                 budget=event.budget, deadline_at=event.deadline_at)


@_evolve.register
def _(event: x.StepStarted, state) -> x.ExecutionState:
    return _next(state, event, status="running", step=event.step, items=event.items, outcomes=(), spent=event.spent,
                 pending_json="[]", interrupt_id="", interrupt_json="null")


@_evolve.register
def _(event: x.StepItemFinished, state) -> x.ExecutionState:
    return _next(state, event, outcomes=state.outcomes + (event.outcome,))


@_evolve.register
def _(event: x.StepCommitted, state) -> x.ExecutionState:
    return _next(state, event, values_json=event.values_json, barriers_json=event.barriers_json,
                 pending_json=event.next_json, committed=state.committed + 1)


@_evolve.register
def _(event: x.ExecutionInterrupted, state) -> x.ExecutionState:
    return _next(state, event, status="interrupted", interrupt_id=event.interrupt_id, interrupt_json=event.payload_json)


@_evolve.register
def _(event: x.ExecutionResumed, state) -> x.ExecutionState:
    return _next(state, event, status="running", interrupt_id="", resume_json=event.payload_json)


@_evolve.register
def _(event: x.ExecutionCompleted, state) -> x.ExecutionState:
    return _next(state, event, status="completed", values_json=event.values_json)


@_evolve.register
def _(event: x.ExecutionFailed, state) -> x.ExecutionState:
    return _next(state, event, status="failed", reason=event.reason)


@_evolve.register
def _(event: x.ExecutionCancelled, state) -> x.ExecutionState:
    return _next(state, event, status="cancelled", reason=event.reason)


def fold(execution_id: str, events) -> x.ExecutionState:
    state = x.ExecutionState(execution_id)
    for event in events:
        state = evolve(state, event)
    return state
