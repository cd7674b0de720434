"""The HTTP API: submit, inspect and cancel tasks, follow their events live."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..auth import TokenVerifier, parse_limits
from ..auth import permissions as p
from ..auth.limits import EXECUTIONS_START
from ..codec import Codec, default_codec
from ..domain import commands as c
from ..domain.definition import definition_digest, in_tenant, parse_task, requested_id
from ..domain.fields import Field
from ..domain.tenancy import qualified
from ..kafka.clock import now_ms
from ..kafka.principal import principal_header
from ..kafka.seal import Sealer, producer_key, service_secret
from ..kafka.access import access_for
from ..kafka.routing import CommandSender
from ..settings import Settings
from ..store import claims, db, queries
from ..topics import Topics
from . import accounts, operators, schedules, triggers
from .outputs import Outputs
from .executions import Executions
from .owners import task_owner
from .batch import check_repeat, plan_batch, refuse_taken, requested_id_or_none, submitted
from .body import JSON_TYPES, SMALL_BODY_BYTES, parse_definition_off_loop
from .commands import CommandRequest, KeyedRequests, command_route
from .errors import HANDLERS, error
from .guard import Body, Declaration, Guard, OwnerLookup, Param, check_declared, declare, guarded_route
from .history import History, point_of
from .openapi import document
from .params import DEFINITIONS, IDEMPOTENCY_KEY, POINT, TENANT
from .hub import Hub
from .metrics import RequestTiming, metrics
from .performance import PerformanceView
from ..metrics import export, watch_pool
from .ratelimit import RateLimiter
from .session import SIGN_IN, Sessions
from .sse import FeedEndpoints
from .tenants import task_id_of
from .views import Views

SOURCE = "/hive-streams/api"
API_VERSION = "1"
CANCEL_REASON = Param("reason", Field(("string",), max_length=1000, default="cancelled by request"))
log = logging.getLogger(__name__)
LINGER_MS = 1


class Api:
    def __init__(self, settings: Settings, codec: Codec):
        self.settings = settings
        self.codec = codec
        self.topics = Topics.from_settings(settings)
        self.engine = db.make_engine(settings.store_url)
        export("api", "store")
        watch_pool(self.engine)
        self.sender: CommandSender | None = None  # made in the lifespan: Kafka clients need the running loop
        self.keys = KeyedRequests(self.engine)
        limits = parse_limits(settings.rate_limits)
        self.guard = Guard(TokenVerifier(settings.jwt_secret, settings.jwt_jwks, settings.jwt_issuer), limits)
        self.limiter = RateLimiter(self.engine, limits)
        self.hub: Hub | None = None  # the feeds' hub, once started: it has seen the most recent submissions
        self.service_secret = service_secret(settings.service_secret, settings.home, create=True)
        self.history = History(self)

    async def send_all(self, commands, call: CommandRequest) -> None:
        """Sends every command for the call's principal and correlation id, then waits for all the acknowledgements."""
        headers = [principal_header(call.caller)]
        acks = [await self.sender.send(command, extra_headers=headers, correlation_id=call.correlation_id)
                for command in commands]
        await asyncio.gather(*acks)
        log.info("sent %d command(s) for %s", len(acks), call.caller)

    async def send(self, command, call: CommandRequest) -> None:
        await self.send_all([command], call)

    def route(self, path: str, endpoint, method: str, permission: str, owner: OwnerLookup | None = None,
              params: tuple[Param, ...] = (), summary: str = "", stream: bool = False) -> Route:
        declared = Declaration(permission, owner, params=params, summary=summary, stream=stream)
        return guarded_route(self.guard, path, endpoint, method, declared)

    def command_route(self, path: str, handler, method: str, permission: str, owner: OwnerLookup | None = None,
                      body_limit: int = SMALL_BODY_BYTES, body: Body | None = None, limit: str | None = None,
                      params: tuple[Param, ...] = (), summary: str = "") -> Route:
        declared = Declaration(permission, owner, limit, (*params, IDEMPOTENCY_KEY), body, summary)
        return command_route(path, handler, method, self.keys, body_limit, self.guard, declared,
                             body.types if body is not None else JSON_TYPES)

    @staticmethod
    def now() -> int:
        return now_ms()

    @staticmethod
    def error(status: int, field: str, message: str) -> JSONResponse:
        return error(status, field, message)

    def read(self, fn, *args):
        with Session(self.engine) as session:
            return fn(session, *args)

    async def submit(self, call: CommandRequest) -> JSONResponse:
        raw = await parse_definition_off_loop(call.body, call.request.headers.get("content-type", ""))
        now = now_ms()
        if isinstance(raw, list):
            return await self.submit_batch(call, raw, now)
        tenant = call.principal.tenant
        spec, chosen = in_tenant(parse_task(raw, now), tenant), requested_id(raw)
        task_id, digest = qualified(tenant, chosen or call.ids.task_id()), definition_digest(raw)
        command = c.SubmitTask.of(task_id, call.ids.command_id(), now, call.caller, spec, digest)
        if chosen:  # both asked at once: a claim of the same definition changes nothing, of another one is refused
            known, taken = await asyncio.gather(self.submitted_digests([task_id]), self.claim([command]))
            if check_repeat(chosen, digest, known.get(task_id)):
                return submitted(task_id)  # the same definition again: the first answer, nothing sent
            for held in taken.values():
                check_repeat(chosen, digest, held)  # 409: another definition claimed the id first
        await self.limiter.take(call.principal, EXECUTIONS_START)
        await self.send(command, call)
        return submitted(task_id)

    async def submit_batch(self, call: CommandRequest, raws: list, now: int) -> JSONResponse:
        chosen = [qualified(call.principal.tenant, i) for i in map(requested_id_or_none, raws) if i]
        known = await self.submitted_digests(list(dict.fromkeys(chosen)))
        commands, items = await asyncio.to_thread(plan_batch, raws, now, call.ids, call.caller, call.principal.tenant,
                                                  known)
        named = set(chosen)
        taken = await self.claim([cmd for cmd in commands if cmd.task_id in named])
        if taken:
            commands, items = refuse_taken(commands, items, taken)
        if commands:
            await self.limiter.take(call.principal, EXECUTIONS_START, len(commands))
        await self.send_all(commands, call)
        accepted = sum(item["status"] == "submitted" for item in items)
        answer = {"accepted": accepted, "rejected": len(items) - accepted, "items": items}
        return JSONResponse(answer, status_code=202 if accepted else 422)

    async def claim(self, commands: list[c.SubmitTask]) -> dict[str, str]:
        """Claims each command's task id for its definition; returns the ids that another definition holds
        (claimed by a concurrent or earlier request, maybe in another API process), with that definition's digest."""
        wanted = {cmd.task_id: cmd.definition_digest for cmd in commands}
        held = await asyncio.to_thread(claims.claim, self.engine, wanted, now_ms())
        return {task_id: digest for task_id, (digest, _) in held.items() if digest != wanted[task_id]}

    async def submitted_digests(self, task_ids: list[str]) -> dict[str, str]:
        """The digest of the definition each task was submitted with, for the tasks seen already: the feed hub
        has the most recent submissions, the read model the others."""
        recent = self.hub.submitted if self.hub is not None else {}
        known = {t: recent[t].digest for t in task_ids if t in recent}
        rest = [t for t in task_ids if t not in known]
        if rest:
            known.update(await asyncio.to_thread(self.read, queries.task_digests, rest))
        return known

    async def producer_key(self, request: Request) -> JSONResponse:
        """The key that seals the caller's own `SubmitTask` commands sent straight to Kafka (hive_streams.producer)."""
        account = request.state.principal.account
        return JSONResponse({"principal": account, "key": producer_key(self.service_secret, account).hex()})

    async def get_task(self, request: Request) -> JSONResponse:
        point = point_of(request)
        if point is not None:
            return JSONResponse(await self.history.task(task_id_of(request), point))
        task = await asyncio.to_thread(self.read, queries.get_task, task_id_of(request))
        if task is None:
            return error(404, "task_id", "no such task (yet): tasks appear here once their first event is recorded")
        return JSONResponse(task)

    async def cancel(self, call: CommandRequest) -> JSONResponse:
        task_id = task_id_of(call.request)
        reason = call.request.query_params.get("reason", "cancelled by request")
        await self.send(c.CancelTask(task_id, call.ids.command_id(), now_ms(), reason), call)
        return JSONResponse({"task_id": task_id, "status": "cancelling"}, status_code=202)

    async def health(self, request: Request) -> JSONResponse:
        checks = {}
        try:
            await asyncio.wait_for(self.sender.producer.client.fetch_all_metadata(), 3)
            checks["kafka"] = "ok"
        except Exception as exc:  # health reports any failure as data
            checks["kafka"] = f"error: {exc!r}"
        try:
            await asyncio.to_thread(self.read, lambda s: s.execute(text("select 1")))
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"error: {exc!r}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)


def create_app(settings: Settings, codec: Codec | None = None) -> Starlette:
    api = Api(settings, codec or default_codec(settings.schemas_dir))
    feeds = FeedEndpoints(api)
    views = Views(api, feeds)
    sessions = Sessions(api.guard)
    outputs = Outputs(api)
    book = schedules.schedule_book(api.codec, api.topics)
    trigger_book = triggers.trigger_book(api.codec, api.topics)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await asyncio.to_thread(db.create_schema, api.engine)
        api.sender = CommandSender(access_for(settings, "api"), api.topics, api.codec, SOURCE, linger_ms=LINGER_MS,
                                   sealer=Sealer.service(api.service_secret))
        await api.sender.start()
        await feeds.start()
        await book.start(access_for(settings, "api"))
        await trigger_book.start(access_for(settings, "api"))
        try:
            yield
        finally:
            await trigger_book.stop()
            await book.stop()
            await feeds.stop()
            await api.sender.stop()
            api.engine.dispose()

    routes = [
        api.command_route("/api/tasks", api.submit, "POST", p.TASKS_CREATE, body_limit=settings.max_body_bytes,
                          body=DEFINITIONS, limit=EXECUTIONS_START, summary="submit a task, or a batch of them"),
        api.route("/api/tasks/{task_id}", api.get_task, "GET", p.EXECUTIONS_VIEW, task_owner(api), (TENANT, *POINT),
                  "a task's read model; ?as_of= or ?at_seq=: as it was then, from the log"),
        api.route("/api/producer-keys", api.producer_key, "POST", p.TASKS_CREATE,
                  summary="the key that seals the caller's own commands sent straight to Kafka"),
        api.route("/api/tasks/{task_id}/nodes/{node_id}/output", outputs.node_output, "GET", p.EXECUTIONS_VIEW,
                  task_owner(api), (TENANT,), "a node's output, whole"),
        api.command_route("/api/tasks/{task_id}", api.cancel, "DELETE", p.EXECUTIONS_CANCEL, task_owner(api, wait=True),
                          params=(TENANT, CANCEL_REASON), summary="cancel a task"),
        declare(Route("/health", api.health, methods=["GET"]), Declaration(p.PUBLIC, summary="Kafka and store health")),
        declare(Route("/metrics", metrics, methods=["GET"]), Declaration(p.PUBLIC, summary="Prometheus metrics")),
        declare(Route("/api/session", sessions.who, methods=["GET"]), Declaration(p.PUBLIC, summary="who the token is")),
        declare(Route("/api/session", sessions.sign_in, methods=["POST"]),
                Declaration(p.PUBLIC, body=Body.of(SIGN_IN), summary="a token becomes the dashboard's cookie")),
        declare(Route("/api/session", sessions.sign_out, methods=["DELETE"]), Declaration(p.PUBLIC, summary="sign out")),
        *operators.routes(api),
        *accounts.routes(api),
        *Executions(api).routes(),
        *schedules.routes(api, book),
        *triggers.routes(api, trigger_book),
    ]
    routes += feeds.routes() + views.routes() + PerformanceView(api).routes()
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(spec)

    routes.append(declare(Route("/openapi.json", openapi, methods=["GET"]), Declaration(p.PUBLIC, summary="this document")))
    check_declared(routes)
    spec = document(routes, "hive-streams", API_VERSION)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=HANDLERS)
    app.add_middleware(RequestTiming, routes=routes)
    app.state.api = api
    return app
