"""Steps between executions and tasks: a step's frontier becomes tasks, a frontier task's end goes
back to its execution, a failed or cancelled execution cancels its running tasks. Pure; every command
id derives from the event's id."""
from __future__ import annotations

from ..codec import event_id
from ..domain import commands as c
from ..domain import events as e
from ..domain import execution_records as x
from ..domain.execution import execution_of_task

OUTCOMES = {e.TaskCompleted: "completed", e.TaskFailed: "failed", e.TaskCancelled: "cancelled",
            e.TaskRejected: "rejected"}


def execution_follow_up(event, cid: str | None = None) -> list:
    """`cid`: the event's id (computed here when not given)."""
    cid = cid or event_id(event)
    if isinstance(event, x.StepStarted):
        return [c.SubmitTask(item.task_id, f"{cid}:{item.ordinal}", event.at, item.node.id, event.requester,
                             (item.node,), deadline_at=event.deadline_at, budget=item.budget,
                             max_retries=item.max_retries, requires=item.requires)
                for item in event.items]
    if isinstance(event, (x.ExecutionFailed, x.ExecutionCancelled)):
        reason = f"execution {event.execution_id} {type(event).__name__.removeprefix('Execution').lower()}"
        return [c.CancelTask(task_id, f"{cid}:{task_id}", event.at, reason) for task_id in event.running]
    outcome = OUTCOMES.get(type(event))
    if outcome is None:
        return []
    place = execution_of_task(event.task_id)
    if place is None:
        return []
    output = event.outputs[-1].output_json if isinstance(event, e.TaskCompleted) and event.outputs else "null"
    error = getattr(event, "reason", "") or ""
    return [x.RecordItemOutcome(place[0], f"{cid}:outcome", event.at, event.task_id, outcome, output, error)]
