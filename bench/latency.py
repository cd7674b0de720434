"""3. Latency seen by a client: submit -> first SSE frame and submit -> TaskCompleted frame, at half the
maximum sustained rate (measured by the tasks benchmark), open loop: submissions go out on a fixed
schedule whether or not earlier tasks have finished."""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from .common import NOOP_TASK, PROCESSES, Context, percentiles, summary
from .stack import Stack
from .tasks import hive_burst

QUANTILES = (50, 99, 99.9)


async def one_task(http: httpx.AsyncClient, task_id: str) -> tuple[float, float]:
    """(first frame, completed frame) in seconds after the submit started; follows the task like a client."""
    started = time.perf_counter()
    response = await http.post("/api/tasks", json={**NOOP_TASK, "id": task_id})
    response.raise_for_status()
    first = None
    async with http.stream("GET", f"/api/tasks/{task_id}/events") as feed:
        async for line in feed.aiter_lines():
            if not line.startswith("event:"):
                continue
            now = time.perf_counter() - started
            first = first if first is not None else now
            kind = line.partition(":")[2].strip()
            if kind == "TaskCompleted":
                return first, now
            if kind in ("TaskFailed", "TaskRejected", "TaskCancelled"):
                raise RuntimeError(f"task {task_id} ended with {kind}")
    raise RuntimeError(f"feed of {task_id} closed before TaskCompleted")


async def open_loop(base_url: str, n: int, rate: float) -> list[tuple[float, float]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=httpx.Limits(max_connections=None)) as http:
        start = time.perf_counter()
        tasks = []
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one_task(http, f"l{uuid.uuid4().hex[:12]}")))
        return await asyncio.gather(*tasks)


def latency_run(ctx: Context, n: int, rate: float) -> dict:
    stack = Stack(ctx.bootstrap, ctx.pg_server, ctx.work).start(executors=PROCESSES)
    try:
        asyncio.run(hive_burst(stack, 2 * PROCESSES, 120))
        samples = asyncio.run(open_loop(stack.base_url, n, rate))
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{stack.logs()}") from exc
    finally:
        stack.stop()
    out = {"tasks": n, "rate": rate}
    for i, name in enumerate(("first_frame", "completed")):
        out[name] = percentiles(sorted(s[i] * 1000 for s in samples), QUANTILES)  # only those n supports, and max
    return out


def run(ctx: Context, rate: float | None = None) -> dict:
    if rate is None:
        rate = ctx.results["tasks"]["hive"]["tasks_per_s"]["median"] / 2
    n = ctx.sizes["latency"]
    runs = [latency_run(ctx, n, rate) for _ in range(ctx.sizes["repeats"])]
    return {"command": ctx.cmd(f"latency --rate {rate:.2f}"), "rate": rate, "tasks_per_run": n, "runs": runs,
            **{f"{frame}_{q}": summary([r[frame][q] for r in runs])
               for frame in ("first_frame", "completed") for q in (*(f"p{q:g}" for q in QUANTILES), "max")
               if all(q in r[frame] for r in runs)}}
