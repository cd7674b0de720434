"""Event triggers over HTTP: create, list, get, delete."""
from __future__ import annotations

import dataclasses
import json

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..auth import Owner
from ..auth import permissions as p
from ..domain import trigger as t
from ..domain.definition import check_callback_url
from ..domain.events import TASK_EVENTS
from ..domain.tenancy import qualified, task_tenant
from .body import json_object
from .books import Book
from .commands import CommandRequest
from .errors import RequestError
from .guard import OwnerLookup
from .schedules import ID, parse_target, workflow_of
from .tenants import principal_of, seen_tenant

FIELDS = {"id", "on", "cooldown_seconds", "target", "callback_url"}
ON_FIELDS = {"type", "where", "group_by", "count", "window_seconds"}
EVENT_TYPES = {cls.__name__: cls for cls in TASK_EVENTS}
MAX_COUNT = 1000


def trigger_book(codec, topics) -> Book:
    return Book(codec, topics.trigger_events, topics.partitions, t.TriggerEvent, t.TriggerState, t.evolve,
                "hive-trigger-book")


def view(state: t.TriggerState) -> dict:
    return {"trigger_id": state.trigger_id, "status": state.status, "requester": state.requester,
            "on": {"type": state.event_type, "where": [{"field": w.field, "op": w.op, "value": json.loads(w.value_json)}
                                                       for w in state.where],
                   "group_by": state.group_by, "count": state.count, "window_seconds": state.window_ms / 1000},
            "cooldown_seconds": state.cooldown_ms / 1000, "target": json.loads(state.target_json or "{}"),
            "callback_url": state.callback_url, "created_at": state.created_at, "fired": state.fired,
            "counting": {g.group: len(g.times) for g in state.groups if g.times}}


def _seconds(raw, field: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0:
        raise RequestError(422, field, "must be a number of seconds, 0 or more")
    return int(raw * 1000)


def _field(name, event_type: type, path: str) -> str:
    known = {f.name for f in dataclasses.fields(event_type)} | set(t.TASK_FIELDS)
    if name not in known:
        raise RequestError(422, path, f"must be one of {', '.join(sorted(known))}")
    return name


def parse_on(raw) -> dict:
    if not isinstance(raw, dict):
        raise RequestError(422, "on", "must be an object: type, where, group_by, count, window_seconds")
    unknown = sorted(set(raw) - ON_FIELDS)
    if unknown:
        raise RequestError(422, f"on.{unknown[0]}", f"unknown field (expected one of {', '.join(sorted(ON_FIELDS))})")
    event_type = EVENT_TYPES.get(raw.get("type"))
    if event_type is None:
        raise RequestError(422, "on.type", f"must be a task event type ({', '.join(sorted(EVENT_TYPES))})")
    where = raw.get("where", [])
    if not isinstance(where, list):
        raise RequestError(422, "on.where", "must be a list of {field, op, value}")
    predicates = []
    for i, item in enumerate(where):
        path = f"on.where[{i}]"
        if not isinstance(item, dict) or set(item) != {"field", "op", "value"}:
            raise RequestError(422, path, "must be {field, op, value}")
        if item["op"] not in t.OPERATORS:
            raise RequestError(422, f"{path}.op", f"must be one of {', '.join(t.OPERATORS)}")
        predicates.append(t.Predicate(_field(item["field"], event_type, f"{path}.field"), item["op"],
                                      json.dumps(item["value"])))
    group_by = raw.get("group_by", "")
    if group_by:
        _field(group_by, event_type, "on.group_by")
    count = raw.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise RequestError(422, "on.count", f"must be a whole number from 1 to {MAX_COUNT}")
    return {"event_type": event_type.__name__, "where": tuple(predicates), "group_by": group_by, "count": count,
            "window_ms": _seconds(raw.get("window_seconds", 0), "on.window_seconds")}


def parse_creation(body: dict, tenant: str, fallback_id: str, now: int, workflow=None) -> dict:
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise RequestError(422, unknown[0], f"unknown field (expected one of {', '.join(sorted(FIELDS))})")
    local = body.get("id", fallback_id)
    if not isinstance(local, str) or not ID.match(local):
        raise RequestError(422, "id", "must be 1 to 64 letters, digits, '-', '_' or '.'")
    callback = body.get("callback_url", "")
    if not isinstance(callback, str):
        raise RequestError(422, "callback_url", "must be a URL")
    if callback:
        check_callback_url(callback, "callback_url")  # a DefinitionError: 422 naming the field
    return {"trigger_id": qualified(tenant, local), **parse_on(body.get("on")),
            "cooldown_ms": _seconds(body.get("cooldown_seconds", 0), "cooldown_seconds"),
            "target_json": parse_target(body.get("target"), now, workflow), "callback_url": callback}


def trigger_id_of(request: Request) -> str:
    principal = principal_of(request)
    return qualified(request.query_params.get("tenant") or principal.tenant, request.path_params["trigger_id"])


def routes(api, book: Book) -> list[Route]:
    def owner(wait: bool) -> OwnerLookup:
        async def find(request: Request) -> Owner | None:
            state = await book.find(trigger_id_of(request), wait)
            return None if state is None else Owner(task_tenant(state.trigger_id), state.requester)
        return OwnerLookup("trigger_id", find)

    async def create(call: CommandRequest) -> JSONResponse:
        now, body = api.now(), json_object(call.body)
        workflow = await workflow_of(api, call.principal.tenant, body.get("target"))
        fields = parse_creation(body, call.principal.tenant, call.ids.task_id(), now, workflow)
        if fields["trigger_id"] in book.states:
            return api.error(409, "id", f"trigger {fields['trigger_id']!r} exists already")
        await api.send(t.CreateTrigger(command_id=call.ids.command_id(), at=now, requester=call.caller, **fields), call)
        return JSONResponse({"trigger_id": fields["trigger_id"], "status": "creating"}, status_code=202)

    async def listing(request: Request) -> JSONResponse:
        tenant = seen_tenant(request, p.TRIGGERS_VIEW)
        rows = [view(st) for tid, st in sorted(book.states.items())
                if st.status != "new" and (tenant is None or task_tenant(tid) == tenant)]
        return JSONResponse({"triggers": rows})

    async def get(request: Request) -> JSONResponse:
        state = await book.find(trigger_id_of(request), wait=False)
        if state is None:
            return api.error(404, "trigger_id", "no such trigger (yet)")
        return JSONResponse(view(state))

    async def delete(call: CommandRequest) -> JSONResponse:
        trigger_id = trigger_id_of(call.request)
        reason = call.request.query_params.get("reason", "deleted by request")
        await api.send(t.DeleteTrigger(trigger_id, call.ids.command_id(), api.now(), reason), call)
        return JSONResponse({"trigger_id": trigger_id, "status": "deleting"}, status_code=202)

    return [
        api.command_route("/api/triggers", create, "POST", p.TRIGGERS_CREATE),
        api.route("/api/triggers", listing, "GET", p.TRIGGERS_VIEW),
        api.route("/api/triggers/{trigger_id}", get, "GET", p.TRIGGERS_VIEW, owner(wait=False)),
        api.command_route("/api/triggers/{trigger_id}", delete, "DELETE", p.TRIGGERS_DELETE, owner(wait=True)),
    ]
