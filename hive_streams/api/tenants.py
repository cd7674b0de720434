"""Which tenant a request sees, and which task its path names.

A caller sees its own tenant's tasks; one whose permission reaches every tenant (an admin, a service)
sees all of them, or the one `?tenant=` names. A task id in a path may be bare (`nightly`: the
caller's tenant's, or for an admin the tenant `?tenant=` names) or qualified (`acme:nightly`).
"""
from __future__ import annotations

from starlette.requests import Request

from ..auth import Principal, Scope, scope_of
from ..domain.tenancy import qualified
from .errors import RequestError

ALL = None  # every tenant
NONE = "/"  # no tenant is named so: a caller without the permission sees no tenant's tasks


def principal_of(request: Request) -> Principal:
    return request.state.principal


def seen_tenant(request: Request, permission: str) -> str | None:
    """The tenant whose tasks the caller sees through `permission`, or ALL."""
    principal, asked = principal_of(request), request.query_params.get("tenant") or None
    scope = scope_of(principal, permission)
    if scope is Scope.ALL:
        return asked
    if scope is None:
        return NONE
    if asked is not None and asked != principal.tenant:
        raise RequestError(403, "tenant", f"{principal.account} sees only its own tenant, {principal.tenant!r}")
    return principal.tenant


def task_id_of(request: Request) -> str:
    """The aggregate id of the task in the path."""
    principal = principal_of(request)
    return qualified(request.query_params.get("tenant") or principal.tenant, request.path_params["task_id"])
