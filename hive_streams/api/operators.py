"""Operator views and actions: agents, the cluster, reputation, manual assignment."""
from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..auth import permissions as p
from ..domain import commands as c
from ..domain.matching import Need, pin_refusal
from ..store import queries, status
from ..domain.fields import Field
from .guard import Body
from .params import POINT, TENANT
from .commands import CommandRequest
from .history import point_of
from .tenants import seen_tenant, task_id_of

ASSIGNABLE = ("queued", "blocked")
PIN = Field(("object",), properties={"agent_id": Field(("string",), required=True, min_length=1, max_length=256,
                                                       doc="the agent to run this task")})


def routes(api) -> list[Route]:
    timeout_ms = int(api.settings.agent_timeout_seconds * 1000)

    async def agents(request: Request) -> JSONResponse:
        rows = await asyncio.to_thread(api.read, status.agents_status, api.now(), timeout_ms)
        return JSONResponse({"agents": rows})

    async def cluster(request: Request) -> JSONResponse:
        tenant = seen_tenant(request, p.CLUSTER_VIEW)
        return JSONResponse(await asyncio.to_thread(api.read, status.cluster_status, api.now(), timeout_ms, 10, tenant))

    async def one_agent(request: Request) -> JSONResponse:
        agent_id = request.path_params["agent_id"]
        point = point_of(request)
        if point is not None:
            return JSONResponse(await api.history.agent(agent_id, point))
        found = await asyncio.to_thread(api.read, queries.get_agent, agent_id)
        if found is None:
            return api.error(404, "agent_id", f"no agent {agent_id!r}")
        return JSONResponse(found)

    async def reputation(request: Request) -> JSONResponse:
        agent_id = request.path_params["agent_id"]
        tenant = seen_tenant(request, p.EXECUTIONS_VIEW)  # the score is public; the tasks behind it are not
        found = await asyncio.to_thread(api.read, status.agent_reputation, agent_id, tenant)
        if found is None:
            return api.error(404, "agent_id", f"no agent {agent_id!r}")
        return JSONResponse(found)

    async def assign(call: CommandRequest) -> JSONResponse:
        task_id = task_id_of(call.request)
        agent_id = call.data["agent_id"]
        task = await asyncio.to_thread(api.read, queries.get_task, task_id)
        if task is None:
            return api.error(404, "task_id", f"no task {task_id!r}")
        if task["status"] not in ASSIGNABLE:
            return api.error(409, "task_id", f"task is {task['status']}; only queued or blocked tasks can be assigned")
        offer = await asyncio.to_thread(api.read, status.agent_offer, agent_id)
        if offer is None:
            return api.error(422, "agent_id", f"no agent {agent_id!r}")
        refusal = pin_refusal(Need(budget=task["budget"]), offer)
        if refusal:
            return api.error(422, "agent_id", f"cannot pin to {agent_id}: {refusal} (a pin holds at most the budget)")
        await api.send(c.PinTask(task_id, call.ids.command_id(), api.now(), agent_id), call)
        return JSONResponse({"task_id": task_id, "agent_id": agent_id, "status": "pinned"}, status_code=202)

    return [
        api.route("/api/status/agents", agents, "GET", p.AGENTS_VIEW, summary="agents with status and load"),
        api.route("/api/status/cluster", cluster, "GET", p.CLUSTER_VIEW, params=(TENANT,), summary="the cluster"),
        api.route("/api/agents/{agent_id}", one_agent, "GET", p.AGENTS_VIEW, params=POINT,
                  summary="an agent's offer and status; ?as_of= or ?at_seq=: as it was then, from the log"),
        api.route("/api/agents/{agent_id}/reputation", reputation, "GET", p.AGENTS_VIEW, params=(TENANT,),
                  summary="an agent's reputation and the events behind it"),
        api.command_route("/api/tasks/{task_id}/assign", assign, "PUT", p.EXECUTIONS_ASSIGN, body=Body.of(PIN),
                          params=(TENANT,), summary="pin a queued task to an agent"),
    ]
