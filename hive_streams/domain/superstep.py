"""Committing one superstep: writes merged by reducers in task-ordinal order, then the next frontier
from static edges, routers, spawn seeds and join barriers. Pure; JSON Schema checks and router
conditions come in as `Checks` (the worker's shell provides them).

A node's output is a JSON object; every key is optional:
    {"writes": {channel: value}, "spawn": [{"node": name, "input": value}], "route": node,
     "interrupt": value}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from .execution_records import ItemOutcome, StepItem
from .reducers import ReducerError, reduce_all
from .workflow import Workflow

OUTPUT_KEYS = {"writes", "spawn", "route", "interrupt"}
MAX_SPAWN = 100


@dataclass(frozen=True)
class Checks:
    problem: Callable[[dict, Any], str]  # (JSON Schema, value) -> why the value does not fit, or ""
    truthy: Callable[[str, dict], bool]  # (JMESPath expression, channel values) -> take the route?


@dataclass
class Commit:
    writes: list = field(default_factory=list)  # [ordinal, node, channel, value]
    values: dict = field(default_factory=dict)  # carried channels after the merge
    view: dict = field(default_factory=dict)  # every channel after the merge (what routers see)
    barriers: dict = field(default_factory=dict)
    routes: list = field(default_factory=list)
    next: list = field(default_factory=list)  # [{"node": ..., "input": ...}]
    interrupt: tuple | None = None  # (ordinal, node, payload)
    failure: str = ""


class StepFailure(Exception):
    pass


@dataclass(frozen=True)
class Output:
    writes: dict
    spawn: tuple
    route: str | None
    interrupt: Any
    interrupts: bool


def read_output(text: str, who: str) -> Output:
    try:
        value = json.loads(text)
    except ValueError:
        raise StepFailure(f"{who} returned output that is not JSON") from None
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise StepFailure(f"{who} returned {type(value).__name__}, not an object with writes/spawn/route/interrupt")
    unknown = sorted(set(value) - OUTPUT_KEYS)
    if unknown:
        raise StepFailure(f"{who} output has unknown key {unknown[0]!r} (expected {', '.join(sorted(OUTPUT_KEYS))})")
    writes = value.get("writes", {})
    if not isinstance(writes, dict):
        raise StepFailure(f"{who} output.writes must be an object")
    spawn = value.get("spawn", [])
    if not isinstance(spawn, list) or len(spawn) > MAX_SPAWN:
        raise StepFailure(f"{who} output.spawn must be a list of at most {MAX_SPAWN} seeds")
    for i, seed in enumerate(spawn):
        if not isinstance(seed, dict) or not isinstance(seed.get("node"), str) or set(seed) - {"node", "input"}:
            raise StepFailure(f"{who} output.spawn[{i}] must be {{\"node\": name, \"input\": value}}")
    route = value.get("route")
    if route is not None and not isinstance(route, str):
        raise StepFailure(f"{who} output.route must be a node name")
    return Output(writes, tuple(spawn), route, value.get("interrupt"), "interrupt" in value)


def _who(item: StepItem) -> str:
    return f"node {item.node.id!r} (task {item.task_id})"


def commit_step(wf: Workflow, values: dict, barriers: dict, items: tuple[StepItem, ...],
                outcomes: tuple[ItemOutcome, ...], checks: Checks) -> Commit:
    try:
        return _commit(wf, values, barriers, items, outcomes, checks)
    except StepFailure as exc:
        return Commit(failure=str(exc))


def _commit(wf, values, barriers, items, outcomes, checks) -> Commit:
    by_ordinal = {i.ordinal: i for i in items}
    ordered = sorted(outcomes, key=lambda o: o.ordinal)
    outputs: dict[int, Output] = {}
    for o in ordered:
        if o.outcome == "completed":
            outputs[o.ordinal] = read_output(o.output_json, _who(by_ordinal[o.ordinal]))
    commit = Commit()
    _merge(wf, values, by_ordinal, outputs, checks, commit)
    _frontier(wf, barriers, by_ordinal, ordered, outputs, checks, commit)
    for ordinal in sorted(outputs):
        if outputs[ordinal].interrupts:
            commit.interrupt = (ordinal, by_ordinal[ordinal].node.id, outputs[ordinal].interrupt)
            break
    return commit


def _merge(wf: Workflow, values: dict, by_ordinal: dict, outputs: dict, checks: Checks, commit: Commit) -> None:
    written: dict[str, list] = {}
    first: dict[str, StepItem] = {}
    for ordinal in sorted(outputs):
        item = by_ordinal[ordinal]
        for name, value in outputs[ordinal].writes.items():
            channel = wf.channel(name)
            if channel is None:
                raise StepFailure(f"{_who(item)} wrote {name!r}, which is not a channel of this workflow")
            if channel.update == "single" and name in first:
                raise StepFailure(f"channel {name!r} (update: single) written twice in one step: by "
                                  f"{_who(first[name])} and by {_who(item)}")
            first.setdefault(name, item)
            written.setdefault(name, []).append(value)
            commit.writes.append([ordinal, item.node.id, name, value if channel.persistence == "checkpointed" else None])
    for channel in wf.channels:
        start = values.get(channel.name, channel.initial) if channel.carried else channel.initial
        value = start
        if channel.name in written:
            try:
                value = reduce_all(channel.reducer, start, written[channel.name])
            except ReducerError as exc:
                raise StepFailure(f"channel {channel.name!r}: {exc}") from None
            problem = checks.problem(channel.schema, value)
            if problem:
                raise StepFailure(f"channel {channel.name!r}: merged value does not fit its type: {problem}")
        commit.view[channel.name] = value
        if channel.carried:
            commit.values[channel.name] = value


def _frontier(wf: Workflow, barriers: dict, by_ordinal: dict, ordered: list, outputs: dict, checks: Checks,
              commit: Commit) -> None:
    plain: list[str] = []
    fired: set[str] = set()
    for o in ordered:
        item = by_ordinal[o.ordinal]
        node = item.node.id
        if o.outcome != "completed":
            handlers = [e.target for e in wf.edges if e.source == node and e.on == "error"]
            if not handlers:
                raise StepFailure(f"{_who(item)} {o.outcome}: {o.error or 'no reason given'}")
            error = {"node": node, "task_id": item.task_id, "outcome": o.outcome, "error": o.error}
            commit.next += [{"node": t, "input": error} for t in handlers]
            continue
        fired.add(node)
        output = outputs[o.ordinal]
        plain += [e.target for e in wf.edges if e.source == node and e.on == "ok"]
        router = next((r for r in wf.routers if r.source == node), None)
        if output.route is not None:
            if router is None or output.route not in router.targets:
                raise StepFailure(f"{_who(item)} chose route {output.route!r}, which its router does not offer")
            target = output.route
        elif router is not None:
            target = next((r.target for r in router.routes if checks.truthy(r.when, commit.view)), router.default)
        else:
            target = None
        if router is not None or output.route is not None:
            commit.routes.append([o.ordinal, node, target])
            if target:
                plain.append(target)
        for seed in output.spawn:
            if wf.node(seed["node"]) is None:
                raise StepFailure(f"{_who(item)} spawned {seed['node']!r}, which is not a node of this workflow")
            commit.next.append({"node": seed["node"], "input": seed.get("input")})
    for join in wf.joins:
        have = [s for s in join.sources if s in fired or s in barriers.get(join.name, ())]
        if len(have) == len(join.sources):
            plain.append(join.target)
            have = []
        if have:
            commit.barriers[join.name] = have
    seen = set()
    for target in plain:
        if target not in seen:
            seen.add(target)
            commit.next.append({"node": target, "input": None})
