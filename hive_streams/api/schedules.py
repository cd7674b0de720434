"""Schedules over HTTP: create, list, get, delete. The API keeps a fold of the schedule events to answer reads."""
from __future__ import annotations

import asyncio
import json
import re

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..auth import Owner
from ..auth import permissions as p
from ..domain import schedule as s
from ..domain.definition import DefinitionError, check_callback_url, parse_task
from ..domain.tenancy import qualified, task_tenant
from ..schedules.cron import POLICIES, CronError, check, next_slot
from ..store import workflows as stored
from ..store.workflows import Version
from ..workflows.definitions import check_inputs, validate_definition
from .body import json_object
from .books import Book
from .commands import CommandRequest
from .errors import RequestError
from .guard import OwnerLookup
from .tenants import principal_of, seen_tenant

FIELDS = {"id", "cron", "timezone", "catchup", "target", "callback_url"}
ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def schedule_book(codec, topics) -> Book:
    return Book(codec, topics.schedule_events, topics.partitions, s.ScheduleEvent, s.ScheduleState,
                s.evolve, "hive-schedule-book")


def view(state: s.ScheduleState) -> dict:
    try:
        upcoming = next_slot(state.cron, state.timezone, state.last_slot_at) if state.active else None
    except CronError:
        upcoming = None
    return {"schedule_id": state.schedule_id, "status": state.status, "requester": state.requester,
            "cron": state.cron, "timezone": state.timezone, "catchup": state.catchup,
            "target": json.loads(state.target_json or "{}"), "callback_url": state.callback_url,
            "created_at": state.created_at, "last_slot_at": state.last_slot_at, "next_slot_at": upcoming,
            "fired": state.fired, "skipped": state.skipped}


def schedule_id_of(request: Request) -> str:
    principal = principal_of(request)
    return qualified(request.query_params.get("tenant") or principal.tenant, request.path_params["schedule_id"])


def workflow_named(target) -> str | None:
    """The workflow a creation's target names, for the handler to look up before parsing."""
    name = target.get("workflow") if isinstance(target, dict) else None
    return name if isinstance(name, str) and name else None


async def workflow_of(api, tenant: str, target):
    """The newest registered version of the workflow the target names (it is pinned at creation), or None."""
    name = workflow_named(target)
    return None if name is None else await asyncio.to_thread(stored.get, api.engine, tenant, name, None)


def parse_target(raw, now: int, workflow: Version | None = None) -> str:
    """The target as stored: `{"task": <definition>}`, or `{"workflow", "version", "definition", "inputs"}`
    with the workflow's version at creation pinned (`workflow`: the handler's lookup of the name)."""
    shapes = ({"task"}, {"workflow"}, {"workflow", "inputs"})
    if not isinstance(raw, dict) or set(raw) not in shapes:
        raise RequestError(422, "target", 'must be {"task": <definition>} or {"workflow": <name>, "inputs": {...}}')
    if "workflow" in raw:
        if workflow_named(raw) is None:
            raise RequestError(422, "target.workflow", "must be a workflow's name")
        if workflow is None:
            raise RequestError(422, "target.workflow", f"no workflow {raw['workflow']!r} is registered")
        inputs = raw.get("inputs", {})
        try:
            check_inputs(validate_definition(json.loads(workflow.definition)), inputs)
        except DefinitionError as exc:
            raise RequestError(422, f"target.{exc.path}", exc.message) from None
        return json.dumps({"workflow": workflow.name, "version": workflow.version, "definition": workflow.definition,
                           "inputs": inputs}, sort_keys=True, separators=(",", ":"))
    task = raw["task"]
    if isinstance(task, dict) and "id" in task:
        raise RequestError(422, "target.task.id", "a scheduled task's id is derived from the schedule and its slot")
    try:
        parse_task(task, now)
    except DefinitionError as exc:
        raise RequestError(422, f"target.task.{exc.path}".rstrip(".").replace(".[", "["), exc.message) from None
    return json.dumps({"task": task}, sort_keys=True, separators=(",", ":"))


def parse_creation(body: dict, tenant: str, fallback_id: str, now: int, workflow: Version | None = None) -> dict:
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise RequestError(422, unknown[0], f"unknown field (expected one of {', '.join(sorted(FIELDS))})")
    local = body.get("id", fallback_id)
    if not isinstance(local, str) or not ID.match(local):
        raise RequestError(422, "id", "must be 1 to 64 letters, digits, '-', '_' or '.'")
    cron, zone = body.get("cron"), body.get("timezone", "UTC")
    catchup = body.get("catchup", "skip")
    try:
        check(cron, zone)
    except CronError as exc:
        raise RequestError(422, exc.field, exc.message) from None
    if catchup not in POLICIES:
        raise RequestError(422, "catchup", f"must be one of {', '.join(POLICIES)}")
    callback = body.get("callback_url", "")
    if not isinstance(callback, str):
        raise RequestError(422, "callback_url", "must be a URL")
    if callback:
        check_callback_url(callback, "callback_url")  # a DefinitionError: 422 naming the field
    return {"schedule_id": qualified(tenant, local), "cron": cron, "timezone": zone, "catchup": catchup,
            "target_json": parse_target(body.get("target"), now, workflow), "callback_url": callback}


def routes(api, book: Book) -> list[Route]:
    def owner(wait: bool) -> OwnerLookup:
        async def find(request: Request) -> Owner | None:
            state = await book.find(schedule_id_of(request), wait)
            return None if state is None else Owner(task_tenant(state.schedule_id), state.requester)
        return OwnerLookup("schedule_id", find)

    async def create(call: CommandRequest) -> JSONResponse:
        now, body = api.now(), json_object(call.body)
        workflow = await workflow_of(api, call.principal.tenant, body.get("target"))
        fields = parse_creation(body, call.principal.tenant, call.ids.task_id(), now, workflow)
        if fields["schedule_id"] in book.states:
            return api.error(409, "id", f"schedule {fields['schedule_id']!r} exists already")
        await api.send(s.CreateSchedule(command_id=call.ids.command_id(), at=now, requester=call.caller, **fields),
                       call)
        return JSONResponse({"schedule_id": fields["schedule_id"], "status": "creating"}, status_code=202)

    async def listing(request: Request) -> JSONResponse:
        tenant = seen_tenant(request, p.SCHEDULES_VIEW)
        rows = [view(st) for sid, st in sorted(book.states.items())
                if st.status != "new" and (tenant is None or task_tenant(sid) == tenant)]
        return JSONResponse({"schedules": rows})

    async def get(request: Request) -> JSONResponse:
        state = await book.find(schedule_id_of(request), wait=False)
        if state is None:
            return api.error(404, "schedule_id", "no such schedule (yet)")
        return JSONResponse(view(state))

    async def delete(call: CommandRequest) -> JSONResponse:
        schedule_id = schedule_id_of(call.request)
        reason = call.request.query_params.get("reason", "deleted by request")
        await api.send(s.DeleteSchedule(schedule_id, call.ids.command_id(), api.now(), reason), call)
        return JSONResponse({"schedule_id": schedule_id, "status": "deleting"}, status_code=202)

    return [
        api.command_route("/api/schedules", create, "POST", p.SCHEDULES_CREATE),
        api.route("/api/schedules", listing, "GET", p.SCHEDULES_VIEW),
        api.route("/api/schedules/{schedule_id}", get, "GET", p.SCHEDULES_VIEW, owner(wait=False)),
        api.command_route("/api/schedules/{schedule_id}", delete, "DELETE", p.SCHEDULES_DELETE, owner(wait=True)),
    ]
