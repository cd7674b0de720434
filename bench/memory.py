"""5. Memory: resident set of the worker and the API with N tasks in state. N SubmitTask commands go to
the commands topic with no executor online, so every task is decided (submitted, validated) and then
waits: the deciders hold N task states and the matcher N waiting tasks. VmRSS from /proc, before and after."""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from .common import TENANT, Context, end_offsets, noop_submit, proc_status_kib, produce, summary, wait_for
from .stack import Stack

PROCS = ("worker", "api", "connect")


def memory_run(ctx: Context, n: int) -> dict:
    stack = Stack(ctx.bootstrap, ctx.pg_server, ctx.work).start(executors=0)
    topics = stack.topics
    try:
        prefix = uuid.uuid4().hex[:8]
        count = lambda: sum(asyncio.run(end_offsets(ctx.bootstrap, topics.task_events, topics.partitions)).values())
        asyncio.run(produce(ctx.bootstrap, topics.task_commands, [noop_submit(f"{prefix}-warm")]))
        wait_for(lambda: stack._check() or count() >= 2, 120, "the worker's first events", interval=0.5)
        before = {p: proc_status_kib(stack.pid(p)) for p in PROCS}
        asyncio.run(produce(ctx.bootstrap, topics.task_commands,
                            (noop_submit(f"{TENANT}:{prefix}-{i}") for i in range(n))))
        wait_for(lambda: stack._check() or count() >= 2 * n + 2, 120 + n / 10, f"{2 * n} events", interval=1)
        httpx.get(f"{stack.base_url}/api/tasks/{prefix}-0", headers=stack.headers, timeout=30)  # the API reads one of them
        time.sleep(0.5)
        after = {p: proc_status_kib(stack.pid(p)) for p in PROCS}
        peak = {p: proc_status_kib(stack.pid(p), "VmHWM") for p in PROCS}
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{stack.logs()}") from exc
    finally:
        stack.stop()
    return {"tasks": n, "before_mib": {p: v / 1024 for p, v in before.items()},
            "after_mib": {p: v / 1024 for p, v in after.items()}, "peak_mib": {p: v / 1024 for p, v in peak.items()},
            "worker_bytes_per_task": (after["worker"] - before["worker"]) * 1024 / n}


def run(ctx: Context) -> dict:
    n = ctx.sizes["memory"]
    runs = [memory_run(ctx, n) for _ in range(ctx.sizes["repeats"])]
    return {"command": ctx.cmd("memory"), "tasks": n, "runs": runs,
            **{f"{p}_mib": summary([r["after_mib"][p] for r in runs]) for p in PROCS},
            **{f"{p}_before_mib": summary([r["before_mib"][p] for r in runs]) for p in PROCS},
            "worker_bytes_per_task": summary([r["worker_bytes_per_task"] for r in runs])}
