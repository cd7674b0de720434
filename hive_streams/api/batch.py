"""A list of task definitions in one request: each item accepted with its id or refused with its reason."""
from __future__ import annotations

from ..domain import commands as c
from ..domain.definition import DefinitionError, parse_task, requested_id
from .errors import RequestError
from .idempotency import CommandIds

MAX_BATCH = 1000


def task_links(task_id: str) -> dict[str, str]:
    return {"self": f"/api/tasks/{task_id}", "events": f"/api/tasks/{task_id}/events"}


def plan_batch(raws: list, now: int, ids: CommandIds, requester: str) -> tuple[list[c.SubmitTask], list[dict]]:
    """The commands to send, and one answer per item in the order given."""
    if not raws:
        raise RequestError(422, "$", "an empty list: send at least one task definition")
    if len(raws) > MAX_BATCH:
        raise RequestError(413, "$", f"a batch holds at most {MAX_BATCH} task definitions; this one has {len(raws)}")
    commands, items, first_of = [], [], {}
    for index, raw in enumerate(raws):
        try:
            spec = parse_task(raw, now)
            task_id = requested_id(raw) or ids.task_id(index)
        except DefinitionError as exc:
            items.append(_refused(index, 422, exc.path, exc.message))
            continue
        if task_id in first_of:
            items.append(_refused(index, 409, "id", f"repeats the id of item {first_of[task_id]}"))
            continue
        first_of[task_id] = index
        commands.append(c.SubmitTask.of(task_id, ids.command_id(index), now, requester, spec))
        items.append({"index": index, "status": "submitted", "task_id": task_id, "links": task_links(task_id)})
    return commands, items


def _refused(index: int, code: int, field: str, message: str) -> dict:
    return {"index": index, "status": "rejected", "code": code, "field": field, "error": message}
