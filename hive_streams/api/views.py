"""The dashboard page and the read-model views it loads once before following the cluster feed."""
from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import TopicPartition
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..auth import permissions as p
from ..domain.events import AgentEvent, AlertEvent, TaskEvent
from ..store import queries
from ..domain.fields import Field
from .guard import Declaration, Param, declare
from .params import TENANT
from .sse import FeedEndpoints
from .tenants import seen_tenant

STATIC = Path(__file__).parent / "static"
LIMIT = Param("limit", Field(("integer",), 1, 1000, default=100))
STATUS = Param("status", Field(("string",), max_length=64, doc="only tasks in this status"))


class Views:
    def __init__(self, api, feeds: FeedEndpoints):
        self.api = api
        self.feeds = feeds

    async def index(self, request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def snapshot(self, request: Request) -> JSONResponse:
        """Tasks, agents and failures, with `position`: the cluster-feed id that follows them exactly."""
        topics = [self.api.topics.task_events, self.api.topics.agent_events]
        tenant = seen_tenant(request, p.CLUSTER_VIEW)
        data = await asyncio.to_thread(self.api.read, queries.live_snapshot, topics, 100, 2000, tenant)
        offsets = {TopicPartition(t, p): o for (t, p), o in data.pop("offsets").items()}
        return JSONResponse({"position": self.feeds.vectors.encode(offsets), "event_types": self._event_types(), **data})

    def _event_types(self) -> dict[str, list[str]]:
        """Every event type the feeds can carry, by family: EventSource listens by name."""
        classes = {e.cls for e in self.api.codec.registry.by_name.values() if e.group == "events"}
        return {"task": sorted(c.__name__ for c in classes if issubclass(c, TaskEvent)),
                "agent": sorted(c.__name__ for c in classes if issubclass(c, AgentEvent)),
                "alert": sorted(c.__name__ for c in classes if issubclass(c, AlertEvent))}

    async def tasks(self, request: Request) -> JSONResponse:
        limit = request.query_params.get("limit", "100")  # checked against LIMIT by the guard
        status = request.query_params.get("status") or None
        tenant = seen_tenant(request, p.CLUSTER_VIEW)
        return JSONResponse(await asyncio.to_thread(self.api.read, queries.list_tasks, int(limit), status, tenant))

    async def agents(self, request: Request) -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(self.api.read, queries.list_agents))

    def routes(self) -> list:
        """The page and its assets are public; the data they load is not."""
        api = self.api
        return [
            declare(Route("/", self.index, methods=["GET"]), Declaration(p.PUBLIC, summary="the dashboard")),
            declare(Mount("/static", StaticFiles(directory=STATIC), name="static"),
                    Declaration(p.PUBLIC, summary="the dashboard's assets")),
            api.route("/api/views/snapshot", self.snapshot, "GET", p.CLUSTER_VIEW, params=(TENANT,),
                      summary="tasks, agents and failures, with the cluster feed's position after them"),
            api.route("/api/views/tasks", self.tasks, "GET", p.CLUSTER_VIEW, params=(LIMIT, STATUS, TENANT),
                      summary="the most recently updated tasks"),
            api.route("/api/views/agents", self.agents, "GET", p.CLUSTER_VIEW, summary="agents"),
        ]
