"""The trigger aggregate: submit a task when task events matching a filter occur. Pure.

A filter names a task event type, field predicates, and how many matches within a window fire it
(per group, when it groups by a field). The worker's task deciders note each match as a command to
the trigger (its id derived from the matched event's), so the trigger holds its window in its own
log: a match counts once, the count and the cooldown survive any restart. After firing, a group
re-arms: its window starts empty, and matches inside the cooldown are not counted.
A trigger sees the tasks of its own tenant only, and never the tasks it submitted itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import singledispatch
from .evolving import Handlers, copy_with, quick_init
from .model import needs
from .tenancy import account_tenant, local_id, task_tenant

OPERATORS = ("eq", "ne", "in", "contains", "gt", "lt")
TASK_FIELDS = ("task.name", "task.capabilities", "task.requester")  # from the task's state, beside the event's own
ALL = "*"  # the group of a trigger that does not group


@dataclass(frozen=True)
class Predicate:
    field: str
    op: str
    value_json: str  # the value compared with, as JSON


@dataclass(frozen=True)
class GroupWindow:
    """One group's count: the matches inside the window (their times and event ids), and its last firing."""
    group: str
    times: tuple[int, ...] = ()
    events: tuple[str, ...] = ()
    fired_at: int | None = None


@dataclass(frozen=True)
class TriggerCommand:
    trigger_id: str
    command_id: str
    at: int


@dataclass(frozen=True)
class CreateTrigger(TriggerCommand):
    requester: str
    event_type: str
    where: tuple[Predicate, ...] = ()
    group_by: str = ""
    count: int = 1
    window_ms: int = 0  # 0: no window, every match counts until the trigger fires
    cooldown_ms: int = 0
    target_json: str = ""
    callback_url: str = ""


@dataclass(frozen=True)
class DeleteTrigger(TriggerCommand):
    reason: str = ""


@dataclass(frozen=True)
class NoteTriggerMatch(TriggerCommand):
    """A task event matched: `at` is the event's time, `event_id` names it."""
    event_id: str
    task_id: str
    group: str = ALL


@dataclass(frozen=True)
class TriggerEvent:
    trigger_id: str
    seq: int
    at: int


@dataclass(frozen=True)
class TriggerCreated(TriggerEvent):
    requester: str
    event_type: str
    where: tuple[Predicate, ...] = ()
    group_by: str = ""
    count: int = 1
    window_ms: int = 0
    cooldown_ms: int = 0
    target_json: str = ""
    callback_url: str = ""


@dataclass(frozen=True)
class TriggerDeleted(TriggerEvent):
    reason: str = ""


@dataclass(frozen=True)
class TriggerMatched(TriggerEvent):
    event_id: str
    task_id: str
    group: str = ALL


@dataclass(frozen=True)
class TriggerFired(TriggerEvent):
    """The count was reached: the task it submits, and the events that made it fire."""
    group: str
    task_id: str
    requester: str
    target_json: str
    events: tuple[str, ...] = ()
    callback_url: str = ""


TRIGGER_COMMANDS = (CreateTrigger, DeleteTrigger, NoteTriggerMatch)
TRIGGER_EVENTS = (TriggerCreated, TriggerDeleted, TriggerMatched, TriggerFired)


@quick_init
@dataclass(frozen=True)
class TriggerState:
    trigger_id: str
    seq: int = 0
    status: str = "new"
    requester: str = ""
    event_type: str = ""
    where: tuple[Predicate, ...] = ()
    group_by: str = ""
    count: int = 1
    window_ms: int = 0
    cooldown_ms: int = 0
    target_json: str = ""
    callback_url: str = ""
    created_at: int = 0
    groups: tuple[GroupWindow, ...] = ()  # by group name
    fired: int = 0

    @property
    def active(self) -> bool:
        return self.status == "active"

    def group(self, name: str) -> GroupWindow:
        return next((g for g in self.groups if g.group == name), GroupWindow(name))

    def with_group(self, window: GroupWindow) -> tuple[GroupWindow, ...]:
        return tuple(sorted([g for g in self.groups if g.group != window.group] + [window], key=lambda g: g.group))


def fired_task_id(trigger_id: str, seq: int) -> str:
    tenant, local = task_tenant(trigger_id), local_id(trigger_id)
    return f"{tenant}:trig.{local}.{seq}" if tenant else f"trig.{local}.{seq}"


def own_task(trigger_id: str, task_id: str) -> bool:
    """Whether the trigger submitted this task."""
    return task_id.startswith(fired_task_id(trigger_id, 0)[:-1])


# matching (called by the task deciders with the task's state) ----------------------------

def field_value(name: str, event, task) -> object:
    if name == "task.name":
        return task.name
    if name == "task.requester":
        return task.requester
    if name == "task.capabilities":
        return [r.name for r in needs(task.nodes, task.requires)]
    value = getattr(event, name, None)
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _holds(p: Predicate, event, task) -> bool:
    actual, wanted = field_value(p.field, event, task), json.loads(p.value_json)
    if p.op == "eq":
        return actual == wanted
    if p.op == "ne":
        return actual != wanted
    if p.op == "in":
        return isinstance(wanted, list) and actual in wanted
    if p.op == "contains":
        return isinstance(actual, (str, list)) and isinstance(wanted, str) and wanted in actual
    try:
        return actual > wanted if p.op == "gt" else actual < wanted
    except TypeError:
        return False


def matches(trigger: TriggerState, event, task) -> list[NoteTriggerMatch]:
    """The matches a task event makes for an active trigger: none, one, or one per group value."""
    task_id = getattr(event, "task_id", "")
    if (not trigger.active or type(event).__name__ != trigger.event_type
            or task_tenant(task_id) != task_tenant(trigger.trigger_id) or own_task(trigger.trigger_id, task_id)
            or not all(_holds(p, event, task) for p in trigger.where)):
        return []
    if trigger.group_by:
        value = field_value(trigger.group_by, event, task)
        groups = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    else:
        groups = [ALL]
    event_id = f"{task_id}/{event.seq}"
    return [NoteTriggerMatch(trigger.trigger_id, f"match:{event_id}:{group}", event.at, event_id, task_id, group)
            for group in dict.fromkeys(groups)]


# decide ---------------------------------------------------------------------------------

def decide(command: TriggerCommand, state: TriggerState, now: int) -> list[TriggerEvent]:
    drafts = _decide(command, state)
    return [replace(ev, seq=state.seq + i + 1) for i, ev in enumerate(drafts)]


def _base(state: TriggerState, cmd: TriggerCommand) -> dict:
    return {"trigger_id": state.trigger_id, "seq": 0, "at": cmd.at}


@singledispatch
def _decide(command, state: TriggerState) -> list[TriggerEvent]:
    raise TypeError(f"unknown trigger command {type(command).__name__}")


def creation_problem(cmd: CreateTrigger) -> str:
    if account_tenant(cmd.requester) != task_tenant(cmd.trigger_id):
        return f"trigger id {cmd.trigger_id!r} is not in the requester's tenant"
    if cmd.count < 1 or cmd.window_ms < 0 or cmd.cooldown_ms < 0:
        return "count must be at least 1, window and cooldown not negative"
    if any(p.op not in OPERATORS for p in cmd.where):
        return "unknown operator"
    return ""


@_decide.register
def _(cmd: CreateTrigger, state: TriggerState):
    if state.status != "new" or creation_problem(cmd):
        return []
    return [TriggerCreated(**_base(state, cmd), requester=cmd.requester, event_type=cmd.event_type, where=cmd.where,
                           group_by=cmd.group_by, count=cmd.count, window_ms=cmd.window_ms,
                           cooldown_ms=cmd.cooldown_ms, target_json=cmd.target_json, callback_url=cmd.callback_url)]


@_decide.register
def _(cmd: DeleteTrigger, state: TriggerState):
    return [TriggerDeleted(**_base(state, cmd), reason=cmd.reason)] if state.active else []


def counted(state: TriggerState, group: str, at: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The group's matches still inside the window that ends at `at`."""
    window = state.group(group)
    keep = [i for i, t in enumerate(window.times) if not state.window_ms or t > at - state.window_ms]
    return tuple(window.times[i] for i in keep), tuple(window.events[i] for i in keep)


@_decide.register
def _(cmd: NoteTriggerMatch, state: TriggerState):
    if not state.active or cmd.event_id in state.group(cmd.group).events:
        return []
    last = state.group(cmd.group).fired_at
    if last is not None and cmd.at < last + state.cooldown_ms:
        return []  # cooling down: the match is not counted
    matched = TriggerMatched(**_base(state, cmd), event_id=cmd.event_id, task_id=cmd.task_id, group=cmd.group)
    times, ids = counted(state, cmd.group, cmd.at)
    if len(times) + 1 < state.count:
        return [matched]
    seq = state.seq + 2  # the TriggerFired event's own seq names the task it submits
    return [matched, TriggerFired(**_base(state, cmd), group=cmd.group, task_id=fired_task_id(state.trigger_id, seq),
                                  requester=state.requester, target_json=state.target_json,
                                  events=ids + (cmd.event_id,), callback_url=state.callback_url)]


# evolve ---------------------------------------------------------------------------------

def evolve(state: TriggerState, event: TriggerEvent) -> TriggerState:
    if event.seq <= state.seq:
        return state
    return copy_with(state, _on(event, state), seq=event.seq)


_on = Handlers("trigger")


@_on.on(TriggerCreated)
def _(ev: TriggerCreated, state: TriggerState):
    return {"status": "active", "requester": ev.requester, "event_type": ev.event_type, "where": ev.where,
            "group_by": ev.group_by, "count": ev.count, "window_ms": ev.window_ms, "cooldown_ms": ev.cooldown_ms,
            "target_json": ev.target_json, "callback_url": ev.callback_url, "created_at": ev.at}


@_on.on(TriggerDeleted)
def _(ev: TriggerDeleted, state: TriggerState):
    return {"status": "deleted"}


@_on.on(TriggerMatched)
def _(ev: TriggerMatched, state: TriggerState):
    times, ids = counted(state, ev.group, ev.at)
    window = GroupWindow(ev.group, (times + (ev.at,))[-state.count:], (ids + (ev.event_id,))[-state.count:],
                         state.group(ev.group).fired_at)
    return {"groups": state.with_group(window)}


@_on.on(TriggerFired)
def _(ev: TriggerFired, state: TriggerState):
    return {"groups": state.with_group(GroupWindow(ev.group, fired_at=ev.at)), "fired": state.fired + 1}
