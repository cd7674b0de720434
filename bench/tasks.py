"""1. Tasks per second end to end (submit -> assign -> execute -> complete, one no-op node),
hive-streams vs Celery with Redis, at the same number of executor / worker processes."""
from __future__ import annotations

import asyncio
import collections
import signal
import time
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from hive_streams.codec import default_codec

from .celery_peer import Peer
from .common import (NOOP_TASK, PROCESSES, SLOTS, Context, ce_type, cpu_seconds, end_offsets, percentiles, py_spy,
                     read_records, summary)
from .stack import Stack, free_port

IN_FLIGHT = 32  # concurrent HTTP submissions


class Completions:
    """Follows a task events topic from its end and notes when each task of interest ends."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.done: dict[bytes, float] = {}
        self.failed: list[str] = []

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_end(*self.tps)
        for tp in self.tps:
            await self.consumer.position(tp)

    async def until(self, ids: set[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= self.done.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids - self.done.keys())} of {len(ids)} tasks not done; failed: {self.failed[:3]}")
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    kind = ce_type(r)
                    if kind == "TaskCompleted":
                        self.done[r.key] = time.perf_counter()
                    elif kind in ("TaskFailed", "TaskRejected", "TaskCancelled"):
                        self.failed.append(f"{r.key.decode()}: {kind}")

    async def stop(self) -> None:
        await self.consumer.stop()


async def submit_all(base_url: str, ids: list[str]) -> None:
    limit = asyncio.Semaphore(IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base_url, timeout=60,
                                 limits=httpx.Limits(max_connections=IN_FLIGHT)) as http:
        async def one(task_id: str) -> None:
            async with limit:
                response = await http.post("/api/tasks", json={**NOOP_TASK, "id": task_id})
                response.raise_for_status()
        await asyncio.gather(*(one(t) for t in ids))


async def hive_burst(stack: Stack, n: int, timeout: float) -> float:
    """Seconds from the first submit to the last TaskCompleted event."""
    watch = Completions(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
    await watch.start()
    try:
        ids = [f"b{uuid.uuid4().hex[:12]}" for _ in range(n)]
        started = time.perf_counter()
        submitting = asyncio.create_task(submit_all(stack.base_url, ids))
        await watch.until({t.encode() for t in ids}, timeout)
        await submitting
        return max(watch.done.values()) - started
    finally:
        await watch.stop()


async def topic_offsets(stack: Stack) -> dict[str, dict[int, int]]:
    t = stack.topics
    return {name: await end_offsets(stack.bootstrap, name, t.partitions)
            for name in (t.task_commands, t.task_events, t.agent_commands, t.agent_events)}


# Each hop of a task's life: from the record that causes it to the record it produces, and who does it.
HOPS = [("SubmitTask", "TaskSubmitted", "task decider"), ("TaskValidated", "ReserveSlot", "matcher"),
        ("ReserveSlot", "SlotReserved", "agent decider"), ("SlotReserved", "AssignTask", "relay"),
        ("AssignTask", "TaskAssigned", "task decider"), ("TaskAssigned", "StartTask", "executor"),
        ("StartTask", "ReportNodeCompleted", "executor: start, run the node, report"),
        ("ReportNodeCompleted", "TaskCompleted", "task decider"), ("SubmitTask", "TaskCompleted", "whole task")]


async def records_since(stack: Stack, start: dict[str, dict[int, int]]) -> dict[str, list]:
    return {name.split(".", 1)[1]: await read_records(stack.bootstrap, name, stack.topics.partitions, offsets)
            for name, offsets in start.items()}


def hop_latencies(records: dict[str, list]) -> dict[str, dict]:
    """Milliseconds of each hop, from the records' timestamps (one clock: this machine): p50, p99 where the
    number of tasks supports it, and the max."""
    codec, seen = default_codec(), collections.defaultdict(dict)
    for topic, recs in records.items():
        for r in recs:
            task_id = r.key.decode() if topic.startswith("task") else getattr(codec.decode(r.value), "task_id", None)
            if task_id:
                seen[task_id].setdefault(ce_type(r), r.timestamp)
    out = {}
    for a, b, who in HOPS:
        gaps = sorted(t[b] - t[a] for t in seen.values() if a in t and b in t)
        if gaps:
            found = percentiles(gaps, (50, 99))
            out[f"{a} -> {b}"] = {"by": who, "n": found.pop("n"), **{f"{k}_ms": v for k, v in found.items()}}
    return out


def hive_run(ctx: Context, n: int, profile_to: Path | None = None) -> dict:
    """One run on a fresh stack; with profile_to, py-spy samples the worker and the connector meanwhile."""
    stack = Stack(ctx.bootstrap, ctx.pg_server, ctx.work).start(executors=PROCESSES)
    try:
        asyncio.run(hive_burst(stack, 2 * PROCESSES, 120))  # warm-up: agents registered, code paths hot
        start = asyncio.run(topic_offsets(stack))
        cpu0 = {name: cpu_seconds(stack.pid(name)) for name in stack.procs}
        client0 = time.process_time()
        spies = [py_spy(stack.pid(name), profile_to / f"profile-e2e-{name}.txt") for name in ("worker", "connect")
                 if profile_to]
        seconds = asyncio.run(hive_burst(stack, n, 60 + n))
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        cpu = {name: cpu_seconds(stack.pid(name)) - cpu0[name] for name in stack.procs}
        cpu["bench client"] = time.process_time() - client0
        time.sleep(1.0)  # let the slot releases that follow the last completion land
        records = asyncio.run(records_since(stack, start))
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{stack.logs()}") from exc
    finally:
        stack.stop()
    counts = {topic: collections.Counter(ce_type(r) for r in recs) for topic, recs in records.items()}
    events = {k: v for k, v in counts.items() if k.endswith("events")}
    commands = {k: v for k, v in counts.items() if k.endswith("commands")}
    beats = sum(v["AgentHeartbeat"] + v["Heartbeat"] for v in counts.values())
    n_events = sum(sum(v.values()) for v in events.values())
    return {"tasks": n, "seconds": seconds, "tasks_per_s": n / seconds,
            "events": n_events, "events_per_task": n_events / n, "events_per_s": n_events / seconds,
            "commands_per_task": sum(sum(v.values()) for v in commands.values()) / n, "heartbeat_records": beats,
            "by_type": {k: dict(v) for k, v in counts.items()}, "hops": hop_latencies(records),
            "cpu_ms_per_task": {k: v / n * 1000 for k, v in cpu.items()}}


def celery_run(ctx: Context, n: int) -> dict:
    peer = Peer(ctx.work / f"celery-{free_port()}", free_port(), PROCESSES).start()
    try:
        peer.run(2 * PROCESSES, 60)
        commands0, cpu0, client0 = peer.commands(), peer.cpu(), time.process_time()
        seconds = peer.run(n, 60 + n)
        cpu = {k: v - cpu0[k] for k, v in peer.cpu().items()}
        cpu["bench client"] = time.process_time() - client0
        redis_commands = peer.commands() - commands0
    finally:
        peer.stop()
    return {"tasks": n, "seconds": seconds, "tasks_per_s": n / seconds, "redis_commands_per_task": redis_commands / n,
            "cpu_ms_per_task": {k: v / n * 1000 for k, v in cpu.items()}}


def run(ctx: Context) -> dict:
    n, repeats = ctx.sizes["tasks"], ctx.sizes["repeats"]
    hive, celery = [], []
    for _ in range(repeats):  # alternate, so both see the same (shared, changing) load
        hive.append(hive_run(ctx, n))
        celery.append(celery_run(ctx, n))
    return {
        "command": ctx.cmd("tasks"),
        "setup": {"processes": PROCESSES, "hive_slots_per_executor": SLOTS, "tasks_per_run": n,
                  "hive_submit": f"HTTP POST /api/tasks, {IN_FLIGHT} in flight", "celery_submit": "task.delay() in a loop",
                  "node": "hive: one `echo` node; celery: a task returning None"},
        "hive": {"runs": hive, "tasks_per_s": summary([r["tasks_per_s"] for r in hive]),
                 "events_per_task": summary([r["events_per_task"] for r in hive]),
                 "events_per_s": summary([r["events_per_s"] for r in hive])},
        "celery": {"runs": celery, "tasks_per_s": summary([r["tasks_per_s"] for r in celery])},
    }
