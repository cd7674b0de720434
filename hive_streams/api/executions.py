"""Workflows and executions over HTTP: register versions, start, read, cancel, resume, follow.

An execution's state is the fold of its events: a read folds its partition of the execution events
topic, the feed follows it live.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
from functools import cached_property

from aiokafka import TopicPartition
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..auth import Owner
from ..auth import permissions as p
from ..auth.limits import EXECUTIONS_START, WORKFLOWS_CREATE
from ..domain import execution as ex
from ..domain import execution_records as x
from ..domain.definition import DefinitionError, definition_digest
from ..domain.tenancy import qualified, task_tenant
from ..domain.workflow import canonical
from ..exceptions import CodecError
from ..kafka import consumer, now_ms, read_to_end
from ..kafka.access import access_for
from ..store import queries
from ..store import workflows as stored
from ..topics import partition_for
from ..workflows.definitions import check_inputs, load_definition, validate_definition
from .body import DEFINITION_TYPES, json_object
from .commands import CommandRequest
from .errors import RequestError
from .guard import Body, OwnerLookup
from .tenants import principal_of

PING_SECONDS = 10


def execution_id_of(request: Request) -> str:
    return qualified(request.query_params.get("tenant") or principal_of(request).tenant,
                     request.path_params["execution_id"])


def execution_owner() -> OwnerLookup:
    async def find(request: Request) -> Owner:
        return Owner(task_tenant(execution_id_of(request)))
    return OwnerLookup("execution_id", find)


def event_json(event) -> dict:
    out = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if f.name.endswith("_json"):
            out[f.name.removesuffix("_json")] = json.loads(value)
        else:
            out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
            if isinstance(value, tuple):
                out[f.name] = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    return out


def view(state: x.ExecutionState, events: list) -> dict:
    """What a reader sees: status, channel values, the waiting interrupt, and every step so far."""
    steps: dict[int, dict] = {}
    for event in events:
        if isinstance(event, x.StepStarted):
            steps[event.step] = {"step": event.step, "status": "running", "items": [
                {"ordinal": i.ordinal, "node": i.node.id, "task_id": i.task_id, "input": json.loads(i.input_json),
                 "outcome": None} for i in event.items]}
        elif isinstance(event, x.StepItemFinished):
            item = steps[event.step]["items"][event.outcome.ordinal]
            item.update(outcome=event.outcome.outcome, output=json.loads(event.outcome.output_json),
                        error=event.outcome.error)
        elif isinstance(event, x.StepCommitted):
            steps[event.step].update(status="committed", writes=json.loads(event.writes_json),
                                     values=json.loads(event.values_json), barriers=json.loads(event.barriers_json),
                                     routes=json.loads(event.routes_json), next=json.loads(event.next_json))
        elif isinstance(event, x.ExecutionInterrupted):
            steps[event.step]["status"] = "interrupted"
    interrupt = None
    if state.status == "interrupted":
        interrupt = {"id": state.interrupt_id, "payload": json.loads(state.interrupt_json)}
    return {"execution_id": state.execution_id, "workflow": state.workflow, "version": state.version,
            "status": state.status, "step": state.step, "steps_committed": state.committed,
            "values": json.loads(state.values_json), "interrupt": interrupt, "reason": state.reason,
            "budget": state.budget, "spent": state.spent, "deadline_at": state.deadline_at,
            "requester": state.requester, "running_tasks": list(state.running_tasks),
            "steps": [steps[k] for k in sorted(steps)]}


class Executions:
    def __init__(self, api):
        self.api = api

    @cached_property
    def kafka(self):  # on first use: building the app reads no credentials
        return access_for(self.api.settings, "api")

    def partition(self, execution_id: str) -> TopicPartition:
        topic = self.api.topics.execution_events
        return TopicPartition(topic, partition_for(execution_id.encode(), self.api.topics.partitions))

    async def start_offset(self, execution_id: str) -> int:
        """Where the execution's events begin in its partition (the audit log knows), not the partition's start."""
        tp = self.partition(execution_id)
        return await asyncio.to_thread(self.api.read, queries.aggregate_offset, execution_id, tp.topic, tp.partition)

    async def events(self, execution_id: str) -> list:
        key, out = execution_id.encode(), []
        start = await self.start_offset(execution_id)
        async for records in read_to_end(self.kafka, {self.partition(execution_id): start}):
            for record in records:
                if record.key == key:
                    try:
                        out.append(self.api.codec.decode(record.value))
                    except CodecError:
                        continue
        return out

    async def state(self, execution_id: str) -> tuple[x.ExecutionState, list]:
        events = await self.events(execution_id)
        state = ex.fold(execution_id, events)
        if state.status == "new":
            raise RequestError(404, "execution_id", f"no execution {execution_id!r} (yet)")
        return state, events

    # workflows ---------------------------------------------------------------------------

    async def register(self, call: CommandRequest) -> JSONResponse:
        raw = load_definition(call.body, call.request.headers.get("content-type", ""))
        wf = validate_definition(raw)
        await self.api.limiter.take(call.principal, WORKFLOWS_CREATE)
        version, created = await asyncio.to_thread(stored.register, self.api.engine, call.principal.tenant, wf.name,
                                                   canonical(raw), definition_digest(raw), call.caller, now_ms())
        return JSONResponse({**version.summary(), "created": created}, status_code=201 if created else 200)

    async def versions(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        found = await asyncio.to_thread(stored.versions, self.api.engine, principal_of(request).tenant, name)
        if not found:
            raise RequestError(404, "name", f"no workflow {name!r}")
        return JSONResponse({"name": name, "versions": [v.summary() for v in found]})

    async def definition(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        version = _int_query(request, "version")
        found = await asyncio.to_thread(stored.get, self.api.engine, principal_of(request).tenant, name, version)
        if found is None:
            raise RequestError(404, "version" if version else "name", f"no workflow {name!r} version {version}")
        return JSONResponse({**found.summary(), "definition": json.loads(found.definition)})

    # executions --------------------------------------------------------------------------

    async def start(self, call: CommandRequest) -> JSONResponse:
        name = call.request.path_params["name"]
        body = json_object(call.body) if call.body.strip() else {}
        unknown = sorted(set(body) - {"inputs", "budget", "deadline_seconds", "version", "id"})
        if unknown:
            raise RequestError(422, unknown[0], "unknown field (expected inputs, budget, deadline_seconds, version, id)")
        version = body.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise RequestError(422, "version", "must be a positive integer")
        found = await asyncio.to_thread(stored.get, self.api.engine, call.principal.tenant, name, version)
        if found is None:
            raise RequestError(404, "version" if version else "name", f"no workflow {name!r}"
                               + (f" version {version}" if version else ""))
        wf = validate_definition(json.loads(found.definition))
        inputs = body.get("inputs", {})
        check_inputs(wf, inputs)
        budget = _number(body, "budget", 0)
        deadline = _number(body, "deadline_seconds", 0, exclusive=True)
        chosen = body.get("id")
        if chosen is not None and (not isinstance(chosen, str) or not 1 <= len(chosen) <= 64
                                   or not all(ch.isalnum() or ch in "-_" for ch in chosen)):
            raise RequestError(422, "id", "must be 1 to 64 letters, digits, '-' or '_'")
        execution_id = qualified(call.principal.tenant, chosen or f"x{call.ids.task_id()[:20]}")
        now = now_ms()
        await self.api.limiter.take(call.principal, EXECUTIONS_START)
        await self.api.send(x.StartExecution(execution_id, call.ids.command_id(), now, name, found.version, call.caller,
                                             found.definition, canonical(inputs), budget,
                                             now + int(deadline * 1000) if deadline else None), call)
        return JSONResponse({"execution_id": execution_id, "workflow": name, "version": found.version,
                             "status": "starting"}, status_code=202,
                            headers={"Location": f"/api/executions/{execution_id}"})

    async def get(self, request: Request) -> JSONResponse:
        state, events = await self.state(execution_id_of(request))
        return JSONResponse(view(state, events))

    async def cancel(self, call: CommandRequest) -> JSONResponse:
        state, _ = await self.state(execution_id_of(call.request))
        if state.terminal:  # nothing to cancel: the same answer as any repeat of a cancel
            return JSONResponse({"execution_id": state.execution_id, "status": state.status}, status_code=202)
        reason = call.request.query_params.get("reason", "cancelled by request")
        await self.api.send(x.CancelExecution(state.execution_id, call.ids.command_id(), now_ms(), reason), call)
        return JSONResponse({"execution_id": state.execution_id, "status": "cancelling"}, status_code=202)

    async def resume(self, call: CommandRequest) -> JSONResponse:
        body = json_object(call.body)
        interrupt = body.get("interrupt_id")
        if not isinstance(interrupt, str) or not interrupt:
            raise RequestError(422, "interrupt_id", "is required: the id of the interrupt the execution waits at")
        state, _ = await self.state(execution_id_of(call.request))
        if state.status != "interrupted":
            raise RequestError(409, "execution_id", f"execution {state.execution_id} is {state.status}, not interrupted")
        if interrupt != state.interrupt_id:
            raise RequestError(409, "interrupt_id", f"stale interrupt id: the execution waits at {state.interrupt_id}")
        await self.api.send(x.ResumeExecution(state.execution_id, call.ids.command_id(), now_ms(), interrupt,
                                              canonical(body.get("payload"))), call)
        return JSONResponse({"execution_id": state.execution_id, "status": "resuming"}, status_code=202)

    async def feed(self, request: Request):
        execution_id = execution_id_of(request)
        start = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        try:
            offset = int(start) + 1 if start else await self.start_offset(execution_id)
        except ValueError:
            raise RequestError(400, "last_event_id", "must be an offset from this feed") from None
        return EventSourceResponse(self._frames(execution_id, offset), ping=PING_SECONDS)

    async def _frames(self, execution_id: str, offset: int):
        tp, key = self.partition(execution_id), execution_id.encode()
        reader = consumer(self.kafka, client_id="hive-execution-feed")
        await reader.start()
        try:
            reader.assign([tp])
            reader.seek(tp, offset)
            while True:
                got = await reader.getmany(tp, timeout_ms=1000)
                for record in got.get(tp, []):
                    if record.key != key:
                        continue
                    try:
                        event = self.api.codec.decode(record.value)
                    except CodecError:
                        continue
                    yield {"id": str(record.offset), "event": type(event).__name__, "data": json.dumps(event_json(event))}
                    if isinstance(event, x.TERMINAL_EXECUTION_EVENTS):
                        return
        finally:
            await reader.stop()

    def routes(self) -> list:
        api = self.api
        owner = execution_owner()
        return [
            api.command_route("/api/workflows", self.register, "POST", p.WORKFLOWS_CREATE,
                              body=Body({"type": "object", "description": "a workflow definition"}, DEFINITION_TYPES),
                              limit=WORKFLOWS_CREATE, summary="register a workflow, or its next version"),
            api.route("/api/workflows/{name}", self.definition, "GET", p.WORKFLOWS_VIEW,
                      summary="a workflow's newest definition"),
            api.route("/api/workflows/{name}/versions", self.versions, "GET", p.WORKFLOWS_VIEW,
                      summary="a workflow's versions"),
            api.command_route("/api/workflows/{name}/executions", self.start, "POST", p.EXECUTIONS_START,
                              body=Body({"type": "object", "description": "inputs, budget, deadline_seconds, id"}),
                              limit=EXECUTIONS_START, summary="start an execution"),
            api.route("/api/executions/{execution_id}", self.get, "GET", p.EXECUTIONS_VIEW, owner,
                      summary="an execution: its steps, channel values and waiting interrupt"),
            api.command_route("/api/executions/{execution_id}", self.cancel, "DELETE", p.EXECUTIONS_CANCEL, owner,
                              summary="cancel an execution and its running tasks"),
            api.command_route("/api/executions/{execution_id}/resume", self.resume, "POST", p.EXECUTIONS_START, owner,
                              body=Body({"type": "object", "description": "interrupt_id and payload"}),
                              summary="resume an interrupted execution"),
            api.route("/api/executions/{execution_id}/events", self.feed, "GET", p.EXECUTIONS_VIEW, owner,
                      summary="an execution's events, live (SSE)", stream=True),
        ]


def _int_query(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise RequestError(422, name, "must be an integer") from None


def _number(body: dict, name: str, least: float, exclusive: bool = False) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least or (exclusive and value == least):
        raise RequestError(422, name, f"must be a number {'above' if exclusive else 'at least'} {least}")
    return float(value)
