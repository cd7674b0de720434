"""Rate limits per principal, counted in the store so every API process shares the count."""
from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from ..auth import Principal
from ..auth.limits import WINDOW_MS, Limits, limit_for, window_at
from ..kafka.clock import now_ms
from ..store import rate_limits as counts
from .errors import RequestError

PURGE_EVERY_MS = 10 * 60 * 1000


class RateLimiter:
    def __init__(self, engine: Engine, limits: Limits):
        self.engine = engine
        self.limits = limits
        self.purged_at = 0

    async def take(self, principal: Principal, name: str, count: int = 1) -> None:
        """Counts `count` actions of `principal`, or refuses them all: 403 with no limit, 429 over it."""
        limit = limit_for(self.limits, principal, name)
        if limit == 0:
            raise RequestError(403, "$", f"{principal.account} (roles: {', '.join(sorted(principal.roles))}) "
                                         f"lacks the permission {name}")
        now = now_ms()
        window = window_at(now)
        if not await asyncio.to_thread(counts.take, self.engine, f"{name} {principal.account}", window.start,
                                       count, limit):
            what = f"{count} more would pass" if count > 1 else "this one would pass"
            raise RequestError(429, "$", f"{name}: {what} the limit of {limit} per minute for {principal.account}",
                               {"Retry-After": str(window.retry_after)})
        if now - self.purged_at >= PURGE_EVERY_MS:
            self.purged_at = now
            await asyncio.to_thread(counts.forget_before, self.engine, window.start - WINDOW_MS)
