"""Whose the resource a request names is: the guard asks only when the caller's scope depends on it."""
from __future__ import annotations

import asyncio

from starlette.requests import Request

from ..auth import Owner, tenant_of
from ..domain.tenancy import task_tenant
from ..store import queries
from .guard import OwnerLookup
from .tenants import task_id_of

WAIT_SECONDS = 5.0  # a task just submitted reaches the feed hub and the read model a moment later
POLL_SECONDS = 0.25  # without a hub, how often the read model is asked again


def task_owner(api, wait: bool = False) -> OwnerLookup:
    """The tenant of the task in the path (its id names it), once the feed hub or the read model knows the task;
    `wait` gives a task just submitted time to appear (the hub says so at once when it sees the submission)."""
    async def find(request: Request) -> Owner | None:
        task_id = task_id_of(request)
        requester = await _requester(api, task_id, wait)
        return None if requester is None else Owner(task_tenant(task_id), requester)
    return OwnerLookup("task_id", find)


async def _requester(api, task_id: str, wait: bool) -> str | None:
    hub = getattr(api, "hub", None)
    if hub is not None and task_id in hub.submitted:
        return hub.submitted[task_id].requester
    stored = lambda: asyncio.to_thread(api.read, queries.task_requester, task_id)
    requester = await stored()
    if requester is not None or not wait:
        return requester
    if hub is not None:
        known = await hub.submission(task_id, WAIT_SECONDS)
        return known.requester if known is not None else await stored()
    for _ in range(int(WAIT_SECONDS / POLL_SECONDS)):
        await asyncio.sleep(POLL_SECONDS)
        if (requester := await stored()) is not None:
            break
    return requester


def account_owner() -> OwnerLookup:
    """An account id is its owner: `<tenant>/<sub>` for principals; agents' and the platform's have no tenant."""
    async def find(request: Request) -> Owner:
        account = request.path_params["account_id"]
        return Owner(tenant_of(account), account)
    return OwnerLookup("account_id", find)
