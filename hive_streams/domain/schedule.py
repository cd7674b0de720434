"""The schedule aggregate: a cron expression in a time zone and what to submit at each slot. Pure.

The slots themselves come from outside (the worker's sweep computes them with croniter and sends
FireSchedule); the aggregate keeps the latest slot it accounted for, so a slot fires at most once
whoever sends it and however often. Each fired slot names the task it submits, its id derived from
the schedule id and the slot's instant, so the task aggregate dedupes a repeat as well.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import singledispatch

from .evolving import Handlers, copy_with, quick_init
from .tenancy import account_tenant, local_id, task_tenant

CATCH_UP_POLICIES = ("skip", "once", "all")
TARGET_KINDS = ("task", "workflow")


@dataclass(frozen=True)
class ScheduleCommand:
    schedule_id: str
    command_id: str
    at: int


@dataclass(frozen=True)
class CreateSchedule(ScheduleCommand):
    requester: str
    cron: str
    timezone: str
    catchup: str
    target_json: str  # {"task": <definition>} or {"workflow": <name>, "inputs": {...}}
    callback_url: str = ""


@dataclass(frozen=True)
class DeleteSchedule(ScheduleCommand):
    reason: str = ""


@dataclass(frozen=True)
class FireSchedule(ScheduleCommand):
    """Sent by the worker's sweep: the slots to fire, the missed slots skipped, the latest slot accounted for."""
    fire: tuple[int, ...] = ()
    skip: tuple[int, ...] = ()
    through: int = 0


@dataclass(frozen=True)
class ScheduleEvent:
    schedule_id: str
    seq: int
    at: int


@dataclass(frozen=True)
class ScheduleCreated(ScheduleEvent):
    requester: str
    cron: str
    timezone: str
    catchup: str
    target_json: str
    callback_url: str = ""


@dataclass(frozen=True)
class ScheduleDeleted(ScheduleEvent):
    reason: str = ""


@dataclass(frozen=True)
class ScheduleFired(ScheduleEvent):
    """One slot: the task it submits (`task_id`), with what the schedule said to submit."""
    slot_at: int
    task_id: str
    requester: str
    target_json: str
    callback_url: str = ""


@dataclass(frozen=True)
class ScheduleSkipped(ScheduleEvent):
    """Missed slots the catch-up policy does not run (listed up to a cap), up to `through`."""
    slots: tuple[int, ...]
    through: int


SCHEDULE_COMMANDS = (CreateSchedule, DeleteSchedule, FireSchedule)
SCHEDULE_EVENTS = (ScheduleCreated, ScheduleDeleted, ScheduleFired, ScheduleSkipped)


@quick_init
@dataclass(frozen=True)
class ScheduleState:
    schedule_id: str
    seq: int = 0
    status: str = "new"
    requester: str = ""
    cron: str = ""
    timezone: str = "UTC"
    catchup: str = "skip"
    target_json: str = ""
    callback_url: str = ""
    created_at: int = 0
    last_slot_at: int = 0  # the latest slot fired or skipped: the next one comes after it
    fired: int = 0
    skipped: int = 0
    updated_at: int = 0

    @property
    def active(self) -> bool:
        return self.status == "active"


def slot_task_id(schedule_id: str, slot_at: int) -> str:
    """The task a slot submits: in the schedule's tenant, named by the schedule and the slot's instant."""
    tenant, local = task_tenant(schedule_id), local_id(schedule_id)
    name = f"sched.{local}.{slot_at}"
    return f"{tenant}:{name}" if tenant else name


def target_kind(target_json: str) -> str:
    target = json.loads(target_json) if target_json else {}
    kinds = [k for k in TARGET_KINDS if k in target]
    return kinds[0] if len(kinds) == 1 else ""


# decide ---------------------------------------------------------------------------------

def decide(command: ScheduleCommand, state: ScheduleState, now: int) -> list[ScheduleEvent]:
    drafts = _decide(command, state)
    return [replace(ev, seq=state.seq + i + 1) for i, ev in enumerate(drafts)]


def _base(state: ScheduleState, cmd: ScheduleCommand) -> dict:
    return {"schedule_id": state.schedule_id, "seq": 0, "at": cmd.at}


@singledispatch
def _decide(command, state: ScheduleState) -> list[ScheduleEvent]:
    raise TypeError(f"unknown schedule command {type(command).__name__}")


def creation_problem(cmd: CreateSchedule) -> str:
    if account_tenant(cmd.requester) != task_tenant(cmd.schedule_id):
        return f"schedule id {cmd.schedule_id!r} is not in the requester's tenant"
    if cmd.catchup not in CATCH_UP_POLICIES:
        return f"catchup {cmd.catchup!r} is not one of {', '.join(CATCH_UP_POLICIES)}"
    try:
        kind = target_kind(cmd.target_json)
    except (ValueError, AttributeError, TypeError):
        kind = ""
    return "" if kind in TARGET_KINDS else "the target must be {\"task\": <definition>} or a pinned workflow version"


@_decide.register
def _(cmd: CreateSchedule, state: ScheduleState):
    if state.status != "new" or creation_problem(cmd):
        return []
    return [ScheduleCreated(**_base(state, cmd), requester=cmd.requester, cron=cmd.cron, timezone=cmd.timezone,
                            catchup=cmd.catchup, target_json=cmd.target_json, callback_url=cmd.callback_url)]


@_decide.register
def _(cmd: DeleteSchedule, state: ScheduleState):
    if not state.active:
        return []
    return [ScheduleDeleted(**_base(state, cmd), reason=cmd.reason)]


@_decide.register
def _(cmd: FireSchedule, state: ScheduleState):
    if not state.active:
        return []
    last = state.last_slot_at
    out: list[ScheduleEvent] = [
        ScheduleFired(**_base(state, cmd), slot_at=slot, task_id=slot_task_id(state.schedule_id, slot),
                      requester=state.requester, target_json=state.target_json, callback_url=state.callback_url)
        for slot in sorted(set(cmd.fire)) if slot > last]
    fired_to = max([last] + [ev.slot_at for ev in out])
    skipped = tuple(s for s in sorted(set(cmd.skip)) if s > last and s not in cmd.fire)
    if skipped or cmd.through > fired_to:
        out.append(ScheduleSkipped(**_base(state, cmd), slots=skipped, through=max(cmd.through, fired_to)))
    return out


# evolve ---------------------------------------------------------------------------------

def evolve(state: ScheduleState, event: ScheduleEvent) -> ScheduleState:
    if event.seq <= state.seq:
        return state
    return copy_with(state, _on(event, state), seq=event.seq, updated_at=event.at)


_on = Handlers("schedule")


@_on.on(ScheduleCreated)
def _(ev: ScheduleCreated, state: ScheduleState):
    return {"status": "active", "requester": ev.requester, "cron": ev.cron, "timezone": ev.timezone,
            "catchup": ev.catchup, "target_json": ev.target_json, "callback_url": ev.callback_url,
            "created_at": ev.at, "last_slot_at": ev.at}


@_on.on(ScheduleDeleted)
def _(ev: ScheduleDeleted, state: ScheduleState):
    return {"status": "deleted"}


@_on.on(ScheduleFired)
def _(ev: ScheduleFired, state: ScheduleState):
    return {"last_slot_at": max(state.last_slot_at, ev.slot_at), "fired": state.fired + 1}


@_on.on(ScheduleSkipped)
def _(ev: ScheduleSkipped, state: ScheduleState):
    return {"last_slot_at": max(state.last_slot_at, ev.through), "skipped": state.skipped + len(ev.slots)}
