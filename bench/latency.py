"""3. Latency seen by a client: submit -> first SSE frame and submit -> TaskCompleted frame, at half the
maximum sustained rate (the better of the two hive-streams rates the tasks benchmark measured), open loop:
submissions go out on a fixed schedule whether or not earlier tasks have finished. Beside the SSE frames,
a reader of the task events topic (committed records only) notes when each task's TaskCompleted is in the
log, which tells the feed's share of the latency from the engine's; and the records' own timestamps give
SubmitTask -> TaskCompleted without the HTTP request or the bench's reading. CPU per process over the run
says whether the bench client or a process of the system was saturated. The same rate is also run with the
Kafka producer client, one `submit` a task, as a program writing its tasks to Kafka would: its clock runs
from the submit to the task's TaskCompleted in the log."""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from .common import (TENANT, NOOP_TASK, PROCESSES, Context, CpuMeter, ce_type, percentiles,
                     server_pids, summary, sustained_rate)
from .stack import Stack
from .tasks import Completions, hive_burst, hop_latencies, producer_for, records_since, topic_offsets

QUANTILES = (50, 99, 99.9)
MEASURES = ("first_frame", "completed", "completed_in_log", "in_records")
PRODUCER_MEASURES = ("acknowledged", "completed_in_log", "submit_late")
TARGET_MS = 100
KEEPALIVE_S = 2.0
POST_CONNECTIONS = 32
LOW_RATE = 10.0  # tasks/s: the same measure below saturation, where the fabric's own latency shows
# Before each run, `latency_warm_up_s` (bench/common.py SIZES) of the same open loop, not measured: its first half
# second pays the fresh fabric's start (new connections, each partition's first transaction), which a steady rate
# does not; with a 4-task burst as the only warm-up the slowest 1% at 50 tasks/s all began there (bench/FINDINGS.md)


async def feed_events(port: int, path: str, token: str):
    """The `event:` names of one SSE response, read off a plain socket (HTTP/1.1, chunked or not). One
    connection per feed, without a client library's pool: with hundreds of feeds open at once, httpx's pool
    costs the bench client more CPU per request the more connections it holds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                     f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
        status = await reader.readline()
        if status.split(b" ", 2)[1:2] != [b"200"]:
            raise RuntimeError(f"GET {path}: {status.decode(errors='replace').strip()}")
        chunked = False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            chunked |= line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower()
        pending = b""
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    return
                data = (await reader.readexactly(size + 2))[:-2]
            elif not (data := await reader.read(65536)):
                return
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if line.startswith(b"event:"):
                    yield line[6:].strip().decode()
    finally:
        writer.close()


async def one_task(http: httpx.AsyncClient, port: int, token: str, task_id: str,
                   retries: list) -> tuple[float, float, float]:
    """(start, first frame, completed frame) on the perf_counter clock; follows the task like a client."""
    started = time.perf_counter()
    try:
        response = await http.post("/api/tasks", json={**NOOP_TASK, "id": task_id})
    except (httpx.ReadError, httpx.RemoteProtocolError):
        # a kept-alive connection the server closed as it was reused: send again (the task id makes it one task),
        # with the clock still running from the first attempt
        retries.append(task_id)
        response = await http.post("/api/tasks", json={**NOOP_TASK, "id": task_id})
    response.raise_for_status()
    first = None
    feed = feed_events(port, f"/api/tasks/{task_id}/events", token)
    try:
        async for kind in feed:
            now = time.perf_counter()
            first = first if first is not None else now
            if kind == "TaskCompleted":
                return started, first, now
            if kind in ("TaskFailed", "TaskRejected", "TaskCancelled"):
                raise RuntimeError(f"task {task_id} ended with {kind}")
    finally:
        await feed.aclose()
    raise RuntimeError(f"feed of {task_id} closed before TaskCompleted")


async def open_loop(stack: Stack, n: int, rate: float, retries: list) -> tuple[list[tuple[float, float, float]], list]:
    """Milliseconds after each submit started (first frame, completed frame, TaskCompleted in the log) and how
    late the submit started on its schedule (a loaded bench client falls behind), and the task ids."""
    watch = Completions(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
    await watch.start()
    ids = [f"l{uuid.uuid4().hex[:12]}" for _ in range(n)]
    following = asyncio.create_task(watch.until({f"{TENANT}:{t}".encode() for t in ids}, 120 + n / rate))
    tasks = []
    try:
        # POSTs share a few kept-alive connections, dropped before the server's keep-alive timeout (uvicorn: 5 s)
        limits = httpx.Limits(max_connections=POST_CONNECTIONS, keepalive_expiry=KEEPALIVE_S)
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=120, limits=limits, headers=stack.headers) as http:
            start = time.perf_counter()
            for i, task_id in enumerate(ids):
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(one_task(http, stack.api_port, stack.token, task_id, retries)))
            samples = await asyncio.gather(*tasks)
            await following
    finally:
        for task in (following, *tasks):
            task.cancel()
        await asyncio.gather(following, *tasks, return_exceptions=True)
        await watch.stop()
    return [((first - t0) * 1000, (done - t0) * 1000, (watch.done[f"{TENANT}:{tid}".encode()] - t0) * 1000,
             (t0 - start - i / rate) * 1000) for i, (tid, (t0, first, done)) in enumerate(zip(ids, samples))], ids


async def producer_loop(stack: Stack, n: int, rate: float) -> tuple[list[tuple[float, float, float]], list]:
    """The same open loop with the Kafka producer client, one `submit` a task, as a program that writes its tasks
    to Kafka does; it sees a task end when its `TaskCompleted` is in the log (committed). Milliseconds after each
    submit started until the broker acknowledged it and until its TaskCompleted was in the log, how late the submit
    started, and the task ids."""
    watch = Completions(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
    producer = producer_for(stack)
    await watch.start()
    await producer.start()
    ids = [f"p{uuid.uuid4().hex[:12]}" for _ in range(n)]
    following = asyncio.create_task(watch.until({f"{TENANT}:{t}".encode() for t in ids}, 120 + n / rate))

    async def one(task_id: str) -> tuple[float, float]:
        started = time.perf_counter()
        await producer.submit(NOOP_TASK, task_id)
        return started, time.perf_counter()
    tasks = []
    try:
        start = time.perf_counter()
        for i, task_id in enumerate(ids):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(task_id)))
        samples = await asyncio.gather(*tasks)
        await following
    finally:
        for task in (following, *tasks):
            task.cancel()
        await asyncio.gather(following, *tasks, return_exceptions=True)
        await watch.stop()
        await producer.stop()
    return [((acked - t0) * 1000, (watch.done[f"{TENANT}:{tid}".encode()] - t0) * 1000, (t0 - start - i / rate) * 1000)
            for i, (tid, (t0, acked)) in enumerate(zip(ids, samples))], ids


def in_records(commands: list, events: list, ids: set[bytes]) -> list[float]:
    """Milliseconds from each task's SubmitTask record to its TaskCompleted record, by the records' timestamps
    (set by the API's and the worker's producers on this machine's clock): neither the HTTP request nor the
    bench's reading is in it."""
    submitted = {r.key: r.timestamp for r in commands if r.key in ids and ce_type(r) == "SubmitTask"}
    completed = {r.key: r.timestamp for r in events if r.key in ids and ce_type(r) == "TaskCompleted"}
    return sorted(float(completed[k] - submitted[k]) for k in ids if k in submitted and k in completed)


def measure(stack: Stack, n: int, rate: float, servers: dict, via: str = "http") -> dict:
    """One open-loop run of `n` tasks at `rate` on a running stack (submitted `via` HTTP, one `POST` and one feed a
    task, or the producer client): its latencies, hops and CPU per process."""
    start = asyncio.run(topic_offsets(stack))
    meter = CpuMeter({name: stack.pid(name) for name in stack.procs}, servers).start()
    retries = []
    samples, ids = asyncio.run(open_loop(stack, n, rate, retries) if via == "http" else producer_loop(stack, n, rate))
    meter.stop()
    time.sleep(1.0)  # let the slot releases that follow the last completion land
    records = asyncio.run(records_since(stack, start))
    out = {"tasks": n, "rate": rate, "seconds": meter.wall, "posts_sent_again": len(retries),
           "cpu_cores_used": {name: used / meter.wall for name, used in meter.used.items()}}
    for i, name in enumerate((*MEASURES[:3], "submit_late") if via == "http" else PRODUCER_MEASURES):
        out[name] = percentiles(sorted(s[i] for s in samples), QUANTILES)  # only those n supports, and max
    mine = {f"{TENANT}:{i}".encode() for i in ids}
    out["in_records"] = percentiles(in_records(records["task.commands"], records["task.events"], mine), QUANTILES)
    out["hops"] = hop_latencies(records)
    return out


def latency_run(ctx: Context, n: int, rate: float, servers: dict, via: str = "http") -> dict:
    """One run on a fresh fabric, warmed up by a 4-task burst and `latency_warm_up_s` of the same open loop."""
    stack = Stack(ctx.bootstrap, ctx.pg_server, ctx.work).start(executors=PROCESSES)
    try:
        asyncio.run(hive_burst(stack, 2 * PROCESSES, 120, via))
        warm = max(1, int(rate * ctx.sizes["latency_warm_up_s"]))
        asyncio.run(open_loop(stack, warm, rate, []) if via == "http" else producer_loop(stack, warm, rate))
        return measure(stack, n, rate, servers, via)
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{stack.logs()}") from exc
    finally:
        stack.stop()


def run(ctx: Context, rate: float | None = None) -> dict:
    source = "--rate"
    if rate is None:
        sustained, variant = sustained_rate(ctx.results["tasks"])
        rate, source = sustained / 2, f"half of {sustained:.1f} tasks/s ({variant}, section 1's median)"
    n, servers = ctx.sizes["latency"], server_pids(ctx.bootstrap, ctx.pg_server)
    runs = [latency_run(ctx, n, rate, servers) for _ in range(ctx.sizes["repeats"])]
    out = {"command": ctx.cmd(f"latency --rate {rate:.2f}"), "rate": rate, "rate_from": source, "tasks_per_run": n,
           "warm_up_s": ctx.sizes["latency_warm_up_s"], "target_ms": TARGET_MS, "runs": runs, **summaries(runs)}
    by_producer = [latency_run(ctx, n, rate, servers, "producer") for _ in range(ctx.sizes["repeats"])]
    out["producer"] = {"rate": rate, "tasks_per_run": n, "runs": by_producer, **summaries(by_producer)}
    if LOW_RATE < rate:
        low = [latency_run(ctx, n, LOW_RATE, servers) for _ in range(ctx.sizes["repeats"])]
        out["low"] = {"rate": LOW_RATE, "tasks_per_run": n, "runs": low, **summaries(low)}
    return out


def summaries(runs: list[dict]) -> dict:
    frames = [f for f in (*MEASURES, *PRODUCER_MEASURES) if f in runs[0]]
    return {f"{frame}_{q}": summary([r[frame][q] for r in runs])
            for frame in dict.fromkeys(frames) for q in (*(f"p{q:g}" for q in QUANTILES), "max")
            if all(q in r[frame] for r in runs)}
