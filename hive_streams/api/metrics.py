"""Prometheus /metrics of the API process, and the timing of every request by route template and status."""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from ..metrics import API_ERRORS, API_REQUEST_DURATION, SSE_CONNECTIONS

UNMATCHED = "unmatched"  # one label for every path no route serves: the series stay bounded


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def route_of(routes, scope) -> str:
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", UNMATCHED) or UNMATCHED
    return UNMATCHED


class RequestTiming:
    """Pure ASGI middleware: the time to the response's headers (an SSE feed counts until it opens)."""

    def __init__(self, app, routes):
        self.app = app
        self.routes = routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        seen = {"status": 500}

        async def timed_send(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                self._observe(scope, message["status"], started)
                seen["done"] = True
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if "done" not in seen:  # failed before answering
                self._observe(scope, seen["status"], started)

    def _observe(self, scope, status: int, started: float) -> None:
        API_REQUEST_DURATION.labels(route_of(self.routes, scope), str(status)).observe(time.perf_counter() - started)
        if status >= 500:
            API_ERRORS.inc()


async def counted(frames):
    """An SSE feed's frames, counted in hive_websocket_connections_active while it is open."""
    SSE_CONNECTIONS.inc()
    try:
        async for chunk in frames:
            yield chunk
    finally:
        SSE_CONNECTIONS.dec()
