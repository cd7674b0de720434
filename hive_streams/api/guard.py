"""Every route declares the one permission it needs; the guard authenticates and decides before the handler runs.

A token comes in `Authorization: Bearer`, or (for the dashboard) in the session cookie. Refusals:
401 without a valid token, 403 when the principal's roles lack the permission, 404 when the resource
belongs to someone its permission does not reach (so its existence is not revealed).
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from ..auth import PERMISSIONS, PUBLIC, Owner, Principal, TokenVerifier, Verdict, decide
from ..auth.limits import Limits, limit_for
from ..auth.permissions import needs_owner
from ..auth.tokens import InvalidToken, KeysUnavailable
from ..domain.fields import Field, FieldError
from ..exceptions import ConfigError
from .body import JSON_TYPES
from .errors import RequestError
from .values import text_problem

SESSION_COOKIE = "hive_session"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hive-streams"'}


@dataclass(frozen=True)
class OwnerLookup:
    """Whose the resource a request names is: None when unknown (then 404 unless the scope is ALL)."""
    field: str
    find: Callable[[Request], Awaitable[Owner | None]]


@dataclass(frozen=True)
class Param:
    """A query or header parameter: checked against its field before the handler runs."""
    name: str
    field: Field
    where: str = "query"  # or "header"


@dataclass(frozen=True)
class Body:
    """A request body: its JSON Schema, the types it may be sent as, and the field it is checked against
    before the handler runs (None: the handler checks it, from the same table as the schema)."""
    schema: dict
    types: tuple[str, ...] = JSON_TYPES
    check: Field | None = None

    @classmethod
    def of(cls, field: Field) -> "Body":
        return cls(field.schema(), JSON_TYPES, field)


@dataclass(frozen=True)
class Declaration:
    """What a route needs (its permission, whose resource it names, its rate limit) and takes (parameters,
    body): the guard checks these, and /openapi.json is generated from them."""
    permission: str
    owner: OwnerLookup | None = None
    limit: str | None = None  # a rate limit: a principal whose limit is 0 lacks the permission
    params: tuple[Param, ...] = ()
    body: Body | None = None
    summary: str = ""
    stream: bool = False  # answers a text/event-stream


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RequestError(401, "Authorization", "send `Authorization: Bearer <token>`", CHALLENGE)
        return token.strip()
    return request.cookies.get(SESSION_COOKIE)


class Guard:
    def __init__(self, verifier: TokenVerifier, limits: Limits):
        self.verifier = verifier
        self.limits = limits

    async def principal(self, token: str | None) -> Principal:
        if not token:
            raise RequestError(401, "Authorization", "a token is required: send `Authorization: Bearer <token>`",
                               CHALLENGE)
        try:
            if self.verifier.fetches:
                return await asyncio.to_thread(self.verifier.verify, token)
            return self.verifier.verify(token)
        except InvalidToken as exc:
            raise RequestError(401, "Authorization", str(exc), CHALLENGE) from None
        except KeysUnavailable as exc:
            raise RequestError(503, "Authorization", str(exc), {"Retry-After": "5"}) from None

    async def admit(self, request: Request, declared: Declaration) -> Principal | None:
        """The principal allowed to make this request (None on a public route), else a RequestError."""
        if declared.permission == PUBLIC:
            return None
        principal = await self.principal(token_of(request))
        lacking = declared.permission if decide(principal, declared.permission) is Verdict.FORBIDDEN else None
        if lacking is None and declared.limit is not None and limit_for(self.limits, principal, declared.limit) == 0:
            lacking = f"{declared.limit} (its roles have no rate limit for it)"
        if lacking is not None:
            raise RequestError(403, "$", f"{principal.kind} {principal.account} "
                                         f"(roles: {', '.join(sorted(principal.roles))}) lacks the permission {lacking}")
        request.state.principal = principal  # owner lookups resolve names within its tenant
        check_params(request, declared)
        if declared.owner is not None and needs_owner(principal, declared.permission):
            owner = await declared.owner.find(request)
            if owner is None or decide(principal, declared.permission, owner) is not Verdict.ALLOW:
                name = request.path_params.get(declared.owner.field, "")
                raise RequestError(404, declared.owner.field, f"no {declared.owner.field.removesuffix('_id')} {name!r}")
        return principal


_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")


def check_params(request: Request, declared: Declaration) -> None:
    """Path parameters are text that can be stored; each declared parameter the request carries is of its
    field's kind and range. A 422 names the first that is not."""
    for name, value in request.path_params.items():
        problem = text_problem(value) if isinstance(value, str) else None
        if problem:
            raise RequestError(422, name, problem)
    for param in declared.params:
        source = request.query_params if param.where == "query" else request.headers
        text = source.get(param.name)
        if text is None:
            if param.field.required:
                raise RequestError(422, param.name, "is required")
            continue
        value = text
        problem = text_problem(text)
        if problem:
            raise RequestError(422, param.name, problem)
        if "integer" in param.field.kinds:
            if not _INTEGER.fullmatch(text):
                raise RequestError(422, param.name, "must be an integer")
            value = int(text)
        try:
            param.field.check(value, param.name)
        except FieldError as exc:
            raise RequestError(422, exc.path, exc.message) from None


def declare(route: BaseRoute, declared: Declaration) -> BaseRoute:
    if declared.permission != PUBLIC and declared.permission not in PERMISSIONS:
        raise ConfigError(f"route {getattr(route, 'path', route)!r} declares an unknown permission "
                          f"{declared.permission!r}")
    route.declaration = declared
    return route


def declaration_of(route: BaseRoute) -> Declaration | None:
    return getattr(route, "declaration", None)


def guarded_route(guard: Guard, path: str, endpoint, method: str, declared: Declaration) -> Route:
    async def guarded(request: Request):
        await guard.admit(request, declared)
        return await endpoint(request)

    return declare(Route(path, guarded, methods=[method]), declared)


def check_declared(routes: list[BaseRoute]) -> None:
    """An app whose route table has a route without a permission does not start."""
    undeclared = [getattr(r, "path", repr(r)) for r in routes if declaration_of(r) is None]
    if undeclared:
        raise ConfigError(f"routes without a declared permission: {', '.join(undeclared)}")
