"""Routes that create commands: one declaration admits the principal, reads the body, picks the command
ids and, for a request with an Idempotency-Key, answers a repeat with the first answer."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Awaitable, Callable

from opentelemetry.trace import SpanKind
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import Principal
from ..domain.definition import DefinitionError
from ..kafka.clock import now_ms
from ..store import idempotency as kept
from ..domain.fields import FieldError
from .body import JSON_TYPES, check_content_type, json_object, read_limited
from ..tracing import HTTP_TRACEPARENT, current_traceparent, exporting, hop
from .correlation import REQUEST_ID, correlation_id
from .errors import RequestError
from .guard import Declaration, Guard, declare
from .idempotency import HEADER, CommandIds, check_key, request_digest, scope_of

KEEP_MS = 24 * 3600 * 1000  # a key and its first answer are kept at least this long
IN_FLIGHT_MS = 30_000  # a claim this old that never answered belongs to a process that died
PURGE_EVERY_MS = 10 * 60 * 1000
REPLAYED_HEADER = "Idempotent-Replayed"
TRACERESPONSE = "traceresponse"  # W3C Trace Context level 2: the server span's context, when the request has a trace
KEPT_HEADERS = ("content-type", "location")


@dataclass(frozen=True)
class CommandRequest:
    request: Request
    body: bytes
    principal: Principal
    ids: CommandIds
    correlation_id: str = ""  # carried by every command this request sends
    data: dict | None = None  # the JSON body, once checked against the route's declared body field

    @property
    def caller(self) -> str:
        """The account of the principal: its commands carry it, it pays, its idempotency keys are its own."""
        return self.principal.account


Handler = Callable[[CommandRequest], Awaitable[Response]]


class KeyedRequests:
    """The store's record of keyed requests, shared by every API process."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.purged_at = 0

    async def run(self, call: CommandRequest, key: str, handler: Handler) -> Response:
        check_key(key)
        request = call.request
        route = f"{request.method} {request.url.path}"
        scope, digest, now = scope_of(call.caller, route, key), request_digest(call.body, request.url.query), now_ms()
        held = await asyncio.to_thread(kept.claim, self.engine, scope, call.caller, route, key, digest, now,
                                       now - IN_FLIGHT_MS)
        if held is not None:
            return _repeat(held, digest)
        try:
            response = await handler(replace(call, ids=CommandIds(scope)))
        except (RequestError, DefinitionError):
            await asyncio.to_thread(kept.release, self.engine, scope)
            raise
        except BaseException:
            await asyncio.to_thread(kept.abandon, self.engine, scope)
            raise
        if 200 <= response.status_code < 300:
            await asyncio.to_thread(kept.answer, self.engine, scope, _answer_of(response))
        else:
            await asyncio.to_thread(kept.release, self.engine, scope)
        await self._purge(now)
        return response

    async def _purge(self, now: int) -> None:
        if now - self.purged_at >= PURGE_EVERY_MS:
            self.purged_at = now
            await asyncio.to_thread(kept.forget_before, self.engine, now - KEEP_MS)


def _repeat(held: kept.KeptRequest, digest: str) -> Response:
    if held.request_digest != digest:
        raise RequestError(422, HEADER, "this key was already used for a different request to this route "
                                        "(another body or query): send a new Idempotency-Key for a new request")
    if held.answer is None:
        raise RequestError(409, HEADER, "a request with this key is still in progress: retry shortly",
                           {"Retry-After": "1"})
    return Response(held.answer.body.encode(), held.answer.status, {**held.answer.headers, REPLAYED_HEADER: "true"})


def _answer_of(response: Response) -> kept.Answer:
    headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    return kept.Answer(response.status_code, bytes(response.body).decode(), headers)


def _checked(body: bytes, declared: Declaration) -> dict | None:
    if declared.body is None or declared.body.check is None:
        return None
    data = json_object(body)
    try:
        declared.body.check.validate(data)
    except FieldError as exc:
        raise RequestError(422, exc.path, exc.message) from None
    return data


def command_route(path: str, handler: Handler, method: str, keys: KeyedRequests, body_limit: int, guard: Guard,
                  declared: Declaration, accepts: tuple[str, ...] = JSON_TYPES) -> Route:
    async def endpoint(request: Request) -> Response:
        principal = await guard.admit(request, declared)
        if principal is None:
            raise RequestError(500, "$", f"{path} creates commands: it cannot be public")
        check_content_type(request, accepts)
        correlation = correlation_id(request.headers)
        with hop(f"{method} {path}", request.headers.get(HTTP_TRACEPARENT), correlation, SpanKind.SERVER,
                 start=exporting(), **{"http.request.method": method, "http.route": path}) as span:
            body = await read_limited(request, body_limit)
            call = CommandRequest(request, body, principal, CommandIds(), correlation, _checked(body, declared))
            key = request.headers.get(HEADER)
            response = await handler(call) if key is None else await keys.run(call, key, handler)
            response.headers.setdefault(REQUEST_ID, correlation)
            if span is not None:  # the trace its commands carry
                response.headers.setdefault(TRACERESPONSE, current_traceparent())
                span.set_attribute("http.response.status_code", response.status_code)
            return response

    return declare(Route(path, endpoint, methods=[method]), declared)
