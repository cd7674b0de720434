"""The HTTP API: submit, inspect and cancel tasks, follow their events live."""
from __future__ import annotations

import asyncio
import contextlib

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
from ..domain.definition import parse_task, requested_id
from ..kafka.clock import now_ms
from ..kafka.principal import principal_header
from ..kafka.access import access_for
from ..kafka.routing import CommandSender
from ..settings import Settings
from ..store import db, queries
from ..topics import Topics
from . import accounts, operators
from .owners import task_owner
from .batch import plan_batch, task_links
from .body import DEFINITION_TYPES, JSON_TYPES, SMALL_BODY_BYTES, parse_definition
from .commands import CommandRequest, KeyedRequests, command_route
from .errors import HANDLERS, error
from .guard import Declaration, Guard, OwnerLookup, check_declared, declare, guarded_route
from .ratelimit import RateLimiter
from .session import Sessions
from .sse import FeedEndpoints
from .views import Views

SOURCE = "/hive-streams/api"
LINGER_MS = 1


class Api:
    def __init__(self, settings: Settings, codec: Codec):
        self.settings = settings
        self.codec = codec
        self.topics = Topics.from_settings(settings)
        self.engine = db.make_engine(settings.store_url)
        self.sender: CommandSender | None = None  # made in the lifespan: Kafka clients need the running loop
        self.keys = KeyedRequests(self.engine)
        limits = parse_limits(settings.rate_limits)
        self.guard = Guard(TokenVerifier(settings.jwt_secret, settings.jwt_jwks, settings.jwt_issuer), limits)
        self.limiter = RateLimiter(self.engine, limits)

    async def send_all(self, commands, call: CommandRequest) -> None:
        """Sends every command for the call's principal and correlation id, then waits for all the acknowledgements."""
        headers = [principal_header(call.caller)]
        acks = [await self.sender.send(command, extra_headers=headers, correlation_id=call.correlation_id)
                for command in commands]
        await asyncio.gather(*acks)

    async def send(self, command, call: CommandRequest) -> None:
        await self.send_all([command], call)

    def route(self, path: str, endpoint, method: str, permission: str, owner: OwnerLookup | None = None) -> Route:
        return guarded_route(self.guard, path, endpoint, method, Declaration(permission, owner))

    def command_route(self, path: str, handler, method: str, permission: str, owner: OwnerLookup | None = None,
                      body_limit: int = SMALL_BODY_BYTES, accepts: tuple[str, ...] = JSON_TYPES,
                      limit: str | None = None) -> Route:
        return command_route(path, handler, method, self.keys, body_limit, self.guard,
                             Declaration(permission, owner, limit), accepts)

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
        raw = parse_definition(call.body, call.request.headers.get("content-type", ""))
        now = now_ms()
        if isinstance(raw, list):
            return await self.submit_batch(call, raw, now)
        spec = parse_task(raw, now)
        task_id = requested_id(raw) or call.ids.task_id()
        await self.limiter.take(call.principal, EXECUTIONS_START)
        await self.send(c.SubmitTask.of(task_id, call.ids.command_id(), now, call.caller, spec), call)
        links = task_links(task_id)
        return JSONResponse({"task_id": task_id, "status": "submitted", "links": links}, status_code=202,
                            headers={"Location": links["self"]})

    async def submit_batch(self, call: CommandRequest, raws: list, now: int) -> JSONResponse:
        commands, items = plan_batch(raws, now, call.ids, call.caller)
        if commands:
            await self.limiter.take(call.principal, EXECUTIONS_START, len(commands))
        await self.send_all(commands, call)
        answer = {"accepted": len(commands), "rejected": len(items) - len(commands), "items": items}
        return JSONResponse(answer, status_code=202 if commands else 422)

    async def get_task(self, request: Request) -> JSONResponse:
        task = await asyncio.to_thread(self.read, queries.get_task, request.path_params["task_id"])
        if task is None:
            return error(404, "task_id", "no such task (yet): tasks appear here once their first event is recorded")
        return JSONResponse(task)

    async def cancel(self, call: CommandRequest) -> JSONResponse:
        task_id = call.request.path_params["task_id"]
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

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await asyncio.to_thread(db.create_schema, api.engine)
        api.sender = CommandSender(access_for(settings, "api"), api.topics, api.codec, SOURCE, linger_ms=LINGER_MS)
        await api.sender.start()
        await feeds.start()
        try:
            yield
        finally:
            await feeds.stop()
            await api.sender.stop()
            api.engine.dispose()

    routes = [
        api.command_route("/api/tasks", api.submit, "POST", p.TASKS_CREATE, body_limit=settings.max_body_bytes,
                          accepts=DEFINITION_TYPES, limit=EXECUTIONS_START),
        api.route("/api/tasks/{task_id}", api.get_task, "GET", p.EXECUTIONS_VIEW, task_owner(api)),
        api.command_route("/api/tasks/{task_id}", api.cancel, "DELETE", p.EXECUTIONS_CANCEL, task_owner(api, wait=True)),
        declare(Route("/health", api.health, methods=["GET"]), Declaration(p.PUBLIC)),
        declare(Route("/api/session", sessions.who, methods=["GET"]), Declaration(p.PUBLIC)),
        declare(Route("/api/session", sessions.sign_in, methods=["POST"]), Declaration(p.PUBLIC)),
        declare(Route("/api/session", sessions.sign_out, methods=["DELETE"]), Declaration(p.PUBLIC)),
        *operators.routes(api),
        *accounts.routes(api),
    ]
    routes += feeds.routes() + views.routes()
    check_declared(routes)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=HANDLERS)
    app.state.api = api
    return app
