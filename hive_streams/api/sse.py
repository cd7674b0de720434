"""SSE endpoints: per task, per agent and for the whole cluster, all served by one hub."""
from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..auth import permissions as p
from ..kafka.access import access_for
from ..store import queries
from ..topics import partition_for
from .feedlimits import CountedFeed, FeedSlots, check_reach
from .feeds import FeedSpec, agent_match, task_frames, types_match, vector_frames
from .hub import Hub
from ..domain.fields import Field
from .guard import Param
from .metrics import counted
from .owners import task_owner
from .params import RESUME, TENANT
from .positions import PositionError, TaskPosition, VectorCodec
from .tenants import principal_of, seen_tenant, task_id_of

PING_SECONDS = 10
TYPES = Param("types", Field(("string",), max_length=4096, doc="comma-separated event types to follow"))
SEND_TIMEOUT_SECONDS = 30  # a client that takes no bytes for this long is cut off


def _error(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _resume_text(request: Request) -> str | None:
    """EventSource sends Last-Event-ID when it reconnects; the first connection may name one in the query."""
    return request.headers.get("last-event-id") or request.query_params.get("last_event_id") or None


def _who(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "?"


class FeedEndpoints:
    def __init__(self, api):
        self.api = api
        self.hub: Hub | None = None  # made at start: building the app reads no credentials
        self.vectors: VectorCodec | None = None
        self.slots = FeedSlots(api.settings.feeds_per_principal)

    async def start(self) -> None:
        s = self.api.settings
        self.hub = Hub(access_for(s, "api"), self.api.codec, self.api.topics, memory=s.feed_memory,
                       queue_size=s.feed_queue)
        await self.hub.start()
        self.vectors = VectorCodec(self.api.topics, self.hub.partitions)
        self.api.hub = self.hub  # submissions and owners are looked up in it too

    async def stop(self) -> None:
        if self.hub is not None:
            await self.hub.stop()

    def _respond(self, request: Request, frames) -> EventSourceResponse:
        """The feed, if its principal has a slot left (429 otherwise); counted while it is open."""
        account = principal_of(request).account
        self.slots.take(account)
        return CountedFeed(counted(frames), ping=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS,
                           release=lambda: self.slots.release(account))

    def _check_reach(self, positions: dict[TopicPartition, int]) -> None:
        check_reach(self.hub.next, positions, self.api.settings.feed_catchup_max)

    async def task(self, request: Request):
        task_id = task_id_of(request)
        topic = self.api.topics.task_events
        tp = TopicPartition(topic, partition_for(task_id.encode(), self.hub.partitions[topic]))
        text = _resume_text(request)
        if text:
            try:
                pos = TaskPosition.parse(text)
            except PositionError as exc:
                return _error(400, "last_event_id", str(exc))
            if pos.partition != tp.partition:
                return _error(400, "last_event_id", f"task {task_id} is on partition {tp.partition}, not {pos.partition}")
            start, last_seq = pos.offset + 1, pos.seq
            self._check_reach({tp: start})
        else:
            start, last_seq = await self._first_offset(task_id, tp), 0
        return self._respond(request, task_frames(self.hub, tp, task_id, start, last_seq))

    async def _first_offset(self, task_id: str, tp: TopicPartition) -> int:
        """Where the task's events begin: the hub knows it for a task submitted recently, the read model otherwise."""
        known = self.hub.submitted.get(task_id)
        if known is not None and known.offset is not None:
            return known.offset
        return await asyncio.to_thread(self.api.read, queries.first_offset, task_id, tp.topic, tp.partition)

    def _vector_start(self, request: Request) -> dict[TopicPartition, int]:
        text = _resume_text(request)
        if text:
            positions = self.vectors.decode(text)
            self._check_reach(positions)
            return positions
        return {tp: self.hub.next[tp] for tp in self.vectors.all()}  # live from now

    async def agent(self, request: Request):
        agent_id = request.path_params["agent_id"]
        try:
            positions = self._vector_start(request)
        except PositionError as exc:
            return _error(400, "last_event_id", str(exc))
        tenant = seen_tenant(request, p.EXECUTIONS_VIEW)  # the offer is everyone's; its tasks are their tenants'
        spec = FeedSpec(f"{_who(request)} agent {agent_id}", agent_match(agent_id), tenant=tenant)
        return self._respond(request, vector_frames(self.hub, self.vectors, spec, positions))

    async def cluster(self, request: Request):
        known = {e.cls.__name__ for e in self.api.codec.registry.by_name.values() if e.group == "events"}
        types = frozenset(filter(None, (t.strip() for t in request.query_params.get("types", "").split(","))))
        unknown = sorted(types - known)
        if unknown:
            return _error(422, "types", f"unknown event type {unknown[0]!r} (known: {', '.join(sorted(known))})")
        try:
            positions = self._vector_start(request)
        except PositionError as exc:
            return _error(400, "last_event_id", str(exc))
        tenant = seen_tenant(request, p.CLUSTER_VIEW)
        spec = FeedSpec(f"{_who(request)} cluster {','.join(sorted(types)) or '*'}", types_match(types), tenant=tenant)
        return self._respond(request, vector_frames(self.hub, self.vectors, spec, positions))

    async def stats(self, request: Request) -> JSONResponse:
        return JSONResponse(self.hub.stats())

    def position(self) -> str:
        """The hub's current position as a cluster-feed id."""
        return self.vectors.encode(self.hub.next)

    def routes(self) -> list:
        api = self.api
        return [
            api.route("/api/tasks/{task_id}/events", self.task, "GET", p.EXECUTIONS_VIEW, task_owner(api, wait=True),
                      (*RESUME, TENANT), "a task's events until it ends", stream=True),
            api.route("/api/agents/{agent_id}/events", self.agent, "GET", p.AGENTS_VIEW, params=(*RESUME, TENANT),
                      summary="an agent's events and its tasks'", stream=True),
            api.route("/api/events", self.cluster, "GET", p.CLUSTER_VIEW, params=(*RESUME, TYPES, TENANT),
                      summary="every event (of the caller's tenant)", stream=True),
            api.route("/api/events/stats", self.stats, "GET", p.CLUSTER_VIEW, summary="the feed hub's counters"),
        ]
