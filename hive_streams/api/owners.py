"""Whose the resource a request names is: the guard asks only when the caller's scope depends on it."""
from __future__ import annotations

import asyncio

from starlette.requests import Request

from ..auth import Owner, tenant_of
from ..domain.tenancy import task_tenant
from ..store import queries
from .guard import OwnerLookup
from .tenants import task_id_of

WAIT_SECONDS = 5.0  # a task just submitted reaches the read model (where its requester is) a moment later
POLL_SECONDS = 0.25


def task_owner(api, wait: bool = False) -> OwnerLookup:
    """The tenant of the task in the path (its id names it), once the read model knows the task; `wait` gives
    a task just submitted time to appear."""
    async def find(request: Request) -> Owner | None:
        task_id, waited = task_id_of(request), 0.0
        while True:
            requester = await asyncio.to_thread(api.read, queries.task_requester, task_id)
            if requester is not None:
                return Owner(task_tenant(task_id), requester)
            if not wait or waited >= WAIT_SECONDS:
                return None
            await asyncio.sleep(POLL_SECONDS)
            waited += POLL_SECONDS
    return OwnerLookup("task_id", find)


def account_owner() -> OwnerLookup:
    """An account id is its owner: `<tenant>/<sub>` for principals; agents' and the platform's have no tenant."""
    async def find(request: Request) -> Owner:
        account = request.path_params["account_id"]
        return Owner(tenant_of(account), account)
    return OwnerLookup("account_id", find)
