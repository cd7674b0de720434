"""The HTTP API: submit, inspect and cancel tasks, follow their events live."""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..codec import Codec, default_codec
from ..domain import commands as c
from ..domain.definition import DefinitionError, parse_task, requested_id
from ..settings import Settings
from ..store import db, queries
from ..topics import Topics
from . import accounts, operators
from .body import BodyError, parse_definition, read_limited
from .sse import FeedEndpoints
from .views import Views

SOURCE = "/hive-streams/api"


def now_ms() -> int:
    return int(time.time() * 1000)


def error(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


class Api:
    def __init__(self, settings: Settings, codec: Codec):
        self.settings = settings
        self.codec = codec
        self.topics = Topics.from_settings(settings)
        self.producer: AIOKafkaProducer | None = None
        self.engine = db.make_engine(settings.store_url)

    async def send(self, command) -> None:
        key, value, headers = self.codec.message(command, SOURCE)
        await self.producer.send_and_wait(self.topics.task_commands, value, key=key, headers=headers)

    @staticmethod
    def now() -> int:
        return now_ms()

    @staticmethod
    def error(status: int, field: str, message: str) -> JSONResponse:
        return error(status, field, message)

    def read(self, fn, *args):
        with Session(self.engine) as session:
            return fn(session, *args)

    async def submit(self, request: Request) -> JSONResponse:
        try:
            raw = parse_definition(await read_limited(request, self.settings.max_body_bytes),
                                   request.headers.get("content-type", ""))
            now = now_ms()
            spec = parse_task(raw, now)
            task_id = requested_id(raw) or uuid.uuid4().hex
        except BodyError as exc:
            return error(exc.status, exc.field, exc.message)
        except DefinitionError as exc:
            return error(422, exc.path, exc.message)
        requester = request.headers.get("x-hive-requester", "anonymous")
        await self.send(c.SubmitTask.of(task_id, uuid.uuid4().hex, now, requester, spec))
        links = {"self": f"/api/tasks/{task_id}", "events": f"/api/tasks/{task_id}/events"}
        return JSONResponse({"task_id": task_id, "status": "submitted", "links": links}, status_code=202,
                            headers={"Location": links["self"]})

    async def get_task(self, request: Request) -> JSONResponse:
        task = await asyncio.to_thread(self.read, queries.get_task, request.path_params["task_id"])
        if task is None:
            return error(404, "task_id", "no such task (yet): tasks appear here once their first event is recorded")
        return JSONResponse(task)

    async def cancel(self, request: Request) -> JSONResponse:
        task_id = request.path_params["task_id"]
        reason = request.query_params.get("reason", "cancelled by request")
        await self.send(c.CancelTask(task_id, uuid.uuid4().hex, now_ms(), reason))
        return JSONResponse({"task_id": task_id, "status": "cancelling"}, status_code=202)

    async def health(self, request: Request) -> JSONResponse:
        checks = {}
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 3)
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

    @contextlib.asynccontextmanager
    async def lifespan(app):
        db.create_schema(api.engine)
        api.producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", linger_ms=1)
        await api.producer.start()
        await feeds.start()
        try:
            yield
        finally:
            await feeds.stop()
            await api.producer.stop()
            api.engine.dispose()

    routes = [
        Route("/api/tasks", api.submit, methods=["POST"]),
        Route("/api/tasks/{task_id}", api.get_task, methods=["GET"]),
        Route("/api/tasks/{task_id}", api.cancel, methods=["DELETE"]),
        Route("/health", api.health, methods=["GET"]),
        *operators.routes(api),
        *accounts.routes(api),
    ]
    routes += feeds.routes() + views.routes()
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.api = api
    return app
