"""The dashboard's sign-in: a token posted once becomes an HttpOnly, SameSite=Strict cookie.

The browser then sends it with every fetch and EventSource of the page, and never to another site;
the page's scripts cannot read it, and no token ever goes into a URL.
"""
from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..auth import Principal
from ..domain.fields import Field, FieldError
from .body import JSON_TYPES, check_content_type, json_object, read_limited
from .errors import RequestError
from .guard import SESSION_COOKIE, Guard, token_of

MAX_SESSION_SECONDS = 12 * 3600  # the cookie outlives neither this nor the token
BODY_LIMIT = 16_000
SIGN_IN = Field(("object",), properties={"token": Field(("string",), required=True, min_length=1, max_length=BODY_LIMIT)})


def _described(principal: Principal) -> dict:
    return {"signed_in": True, "sub": principal.sub, "tenant": principal.tenant, "account": principal.account,
            "roles": sorted(principal.roles), "expires_at": principal.expires_at}


class Sessions:
    def __init__(self, guard: Guard):
        self.guard = guard

    async def who(self, request: Request) -> JSONResponse:
        """Who the request's token or cookie names; `signed_in: false` (not a 401) lets a page ask without an error."""
        try:
            return JSONResponse(_described(await self.guard.principal(token_of(request))))
        except RequestError as exc:
            if exc.status != 401:
                raise
            return JSONResponse({"signed_in": False, "reason": exc.message})

    async def sign_in(self, request: Request) -> JSONResponse:
        check_content_type(request, JSON_TYPES)
        try:
            token = SIGN_IN.validate(json_object(await read_limited(request, BODY_LIMIT)))["token"]
        except FieldError as exc:
            raise RequestError(422, exc.path, f"{exc.message}: send {{\"token\": \"<a token>\"}}") from None
        principal = await self.guard.principal(token)
        max_age = min(MAX_SESSION_SECONDS, principal.expires_at - int(time.time()))
        response = JSONResponse(_described(principal))
        response.set_cookie(SESSION_COOKIE, token, max_age=max(max_age, 1), path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    async def sign_out(self, request: Request) -> JSONResponse:
        response = JSONResponse({"status": "signed out"})
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response
