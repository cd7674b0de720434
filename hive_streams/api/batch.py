"""A list of task definitions in one request: each item accepted with its id or refused with its reason."""
from __future__ import annotations

from starlette.responses import JSONResponse

from ..domain import commands as c
from ..domain.definition import DefinitionError, definition_digest, in_tenant, parse_task, requested_id
from ..domain.tenancy import qualified
from .errors import RequestError
from .idempotency import CommandIds

MAX_BATCH = 1000


def task_links(task_id: str) -> dict[str, str]:
    return {"self": f"/api/tasks/{task_id}", "events": f"/api/tasks/{task_id}/events"}


def submitted(task_id: str) -> JSONResponse:
    """The answer to a submission, the same for its repeats."""
    links = task_links(task_id)
    return JSONResponse({"task_id": task_id, "status": "submitted", "links": links}, status_code=202,
                        headers={"Location": links["self"]})


def check_repeat(chosen: str, digest: str, known: str | None) -> bool:
    """Whether the id names a task submitted already with this definition (a repeat); 409 for another one."""
    if known is None:
        return False
    if known and known != digest:
        raise RequestError(409, "id", f"task {chosen!r} exists with another definition: "
                                      "send the same definition again, or choose another id")
    return True  # the same definition (or one recorded before definitions had digests)


def requested_id_or_none(raw) -> str | None:
    try:
        return requested_id(raw)
    except DefinitionError:
        return None  # the item is refused with its reason below


def plan_batch(raws: list, now: int, ids: CommandIds, requester: str, tenant: str = "",
               known: dict[str, str | None] | None = None) -> tuple[list[c.SubmitTask], list[dict]]:
    """The commands to send, and one answer per item in the order given.

    `known`: the definition digest of every task an item names that exists already."""
    if not raws:
        raise RequestError(422, "$", "an empty list: send at least one task definition")
    if len(raws) > MAX_BATCH:
        raise RequestError(413, "$", f"a batch holds at most {MAX_BATCH} task definitions; this one has {len(raws)}")
    known = known or {}
    commands, items, first_of = [], [], {}
    for index, raw in enumerate(raws):
        try:
            spec, chosen = in_tenant(parse_task(raw, now), tenant), requested_id(raw)
            task_id, digest = qualified(tenant, chosen or ids.task_id(index)), definition_digest(raw)
            repeat = bool(chosen) and check_repeat(chosen, digest, known.get(task_id))
        except DefinitionError as exc:
            items.append(_refused(index, 422, exc.path, exc.message))
            continue
        except RequestError as exc:
            items.append(_refused(index, exc.status, exc.field, exc.message))
            continue
        if task_id in first_of:
            items.append(_refused(index, 409, "id", f"repeats the id of item {first_of[task_id]}"))
            continue
        first_of[task_id] = index
        if not repeat:
            commands.append(c.SubmitTask.of(task_id, ids.command_id(index), now, requester, spec, digest))
        items.append({"index": index, "status": "submitted", "task_id": task_id, "links": task_links(task_id)})
    return commands, items


def refuse_taken(commands: list[c.SubmitTask], items: list[dict], taken: dict[str, str]
                 ) -> tuple[list[c.SubmitTask], list[dict]]:
    """Drops the commands whose chosen id another definition claimed first; their items become 409s."""
    kept = [cmd for cmd in commands if cmd.task_id not in taken]
    answered = [_refused(item["index"], 409, "id", f"task {item['task_id'].split(':', 1)[-1]!r} exists with another "
                         "definition: send the same definition again, or choose another id")
                if item.get("task_id") in taken else item for item in items]
    return kept, answered


def _refused(index: int, code: int, field: str, message: str) -> dict:
    return {"index": index, "status": "rejected", "code": code, "field": field, "error": message}
