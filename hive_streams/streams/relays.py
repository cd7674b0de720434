"""Cross-aggregate steps: events of one aggregate call for commands to another.

The task, agent and ledger deciders write these commands in the same transaction as the event
that calls for them (an outbox in the log itself), so a step is taken exactly when its cause
is committed, and never by a deposed writer.
"""
from __future__ import annotations

import dataclasses
import json

from ..codec import event_id
from ..domain import commands as c
from ..domain import events as e
from ..domain.definition import definition_digest, in_tenant, parse_task
from ..domain.ledger import INSUFFICIENT_FUNDS, LEDGER_ID
from .execution_relays import execution_follow_up
from ..domain.execution_records import StartExecution
from ..domain.schedule import ScheduleFired
from ..domain.workflow import canonical
from ..domain.trigger import TriggerFired
from ..domain.tenancy import task_tenant


def follow_up(event, fee_bps: int = 0) -> list:
    """The commands that must follow an event. Pure; every command id derives from the event's id."""
    cid = event_id(event)
    return _follow_up(event, fee_bps, cid) + execution_follow_up(event, cid)


def _follow_up(event, fee_bps: int, cid: str) -> list:
    if isinstance(event, e.EscrowHeld):
        return [c.ReserveSlot(event.agent_id, cid, event.at, event.task_id, event.escrow_id, event.round_id)]
    if isinstance(event, e.EscrowRefused):
        return [c.NoteWaiting(event.task_id, cid, event.at, INSUFFICIENT_FUNDS)]
    if isinstance(event, e.SlotReserved):
        return [c.AssignTask(event.task_id, cid, event.at, event.agent_id, event.escrow_id, event.public_key)]
    if isinstance(event, e.SlotRefused):
        return _refund(event, cid, f"slot refused: {event.reason}")
    if isinstance(event, e.AgentStatusChanged):
        return [c.ReportAgentLost(task_id, f"{cid}:{task_id}", event.at, event.agent_id) for task_id in event.lost_tasks]
    if isinstance(event, e.TaskCompleted):
        pay = [c.ReleaseEscrow(LEDGER_ID, f"{cid}:pay", event.at, event.escrow_id, fee_bps, event.task_id, event.agent_id,
                               completed_by=cid)] if event.escrow_id else []
        return _release(event, cid) + pay
    if isinstance(event, (e.TaskAssignmentDeclined, e.TaskRetryScheduled, e.TaskFailed, e.TaskCancelled)):
        return _release(event, cid) + _refund(event, cid, type(event).__name__)
    if isinstance(event, e.TaskSubmitted):
        return [c.WatchTask(dependency, f"{cid}:{dependency}", event.at, event.task_id) for dependency in event.after]
    if isinstance(event, ScheduleFired):
        return [_start(event.task_id, f"schedule:{event.schedule_id}:{event.slot_at}", event)]
    if isinstance(event, TriggerFired):
        return [_start(event.task_id, f"trigger:{event.trigger_id}:{event.seq}", event)]
    if isinstance(event, e.TaskOutcomeShared):
        return [c.DependencyFinished(event.watcher, cid, event.at, event.task_id, event.outcome)]
    return []


def _release(event, cid: str) -> list:
    return [c.ReleaseSlot(event.agent_id, f"{cid}:slot", event.at, event.task_id)] if event.agent_id else []


def _refund(event, cid: str, reason: str) -> list:
    return [c.RefundEscrow(LEDGER_ID, f"{cid}:refund", event.at, event.escrow_id, reason)] if event.escrow_id else []


def _start(target_id: str, command_id: str, event):
    """What a schedule's slot or a trigger's firing starts: a task, or an execution of the pinned workflow version
    (its id is the one a task would have had)."""
    target = json.loads(event.target_json)
    if "workflow" not in target:
        return _submission(target_id, command_id, event)
    return StartExecution(target_id, command_id, event.at, target["workflow"], target["version"], event.requester,
                          target["definition"], canonical(target.get("inputs", {})))


def _submission(task_id: str, command_id: str, event) -> c.SubmitTask:
    """The task a schedule's slot or a trigger's firing submits, as its creator; both ids derive from the event."""
    definition = json.loads(event.target_json)["task"]
    spec = in_tenant(parse_task(definition, event.at), task_tenant(task_id))
    if not spec.callback_url and getattr(event, "callback_url", ""):  # a schedule's or trigger's callback URL
        spec = dataclasses.replace(spec, callback_url=event.callback_url)
    return c.SubmitTask.of(task_id, command_id, event.at, event.requester, spec, definition_digest(definition))
