"""GET /api/metrics/performance?window=5m|1h|24h: tasks, throughput, waits and run times, overall and per agent."""
from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..analytics.window import WINDOWS, summarize
from ..auth import permissions as p
from ..kafka.clock import now_ms
from ..store.stats import task_events_since
from .errors import error
from .tenants import seen_tenant


class PerformanceView:
    def __init__(self, api):
        self.api = api

    async def performance(self, request: Request) -> JSONResponse:
        window = request.query_params.get("window", "1h")
        if window not in WINDOWS:
            return error(422, "window", f"must be one of {', '.join(WINDOWS)}, not {window!r}")
        tenant = seen_tenant(request, p.CLUSTER_VIEW)
        end = now_ms()
        since = end - 2 * WINDOWS[window]  # one window before it: attempts and waits that end inside it
        events = await asyncio.to_thread(self.api.read, task_events_since, self.api.topics.task_events, since, tenant)
        return JSONResponse({**summarize(events, window, end), "tenant": tenant})

    def routes(self) -> list:
        return [self.api.route("/api/metrics/performance", self.performance, "GET", p.CLUSTER_VIEW)]
