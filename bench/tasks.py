"""1. Tasks per second end to end (submit -> assign -> execute -> complete, one no-op node),
hive-streams vs Celery with Redis, at the same number of executor / worker processes. hive-streams
tasks are submitted two ways, each in runs of its own: over HTTP in batches (`POST /api/tasks` with a
JSON array) and with the Kafka producer client (`hive_streams.producer.TaskProducer`). CPU is counted
for every process of each system, the Kafka broker and PostgreSQL included."""
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
from hive_streams.kafka.seal import producer_key
from hive_streams.producer import TaskProducer

from .celery_peer import Peer
from .common import (SERVICE_SECRET, TENANT, NOOP_TASK, PROCESSES, SLOTS, Context, CpuMeter, ce_type, end_offsets, kafka_as,
                     kafka_options, percentiles, py_spy,
                     read_records, server_pids, summary)
from .stack import Stack, free_port

BATCH = 100  # task definitions per request (HTTP) or per submit_many call (producer)
IN_FLIGHT = 4  # batches under way at once
SUBMITS = {"http": f"HTTP `POST /api/tasks` with a JSON array of {BATCH} definitions, {IN_FLIGHT} requests in flight",
           "producer": f"`TaskProducer.submit_many` (Kafka producer client), {BATCH} definitions a call, "
                       f"{IN_FLIGHT} calls in flight"}
SERVERS = ("kafka broker", "postgresql")


class Completions:
    """Follows a task events topic from its end and notes when each task of interest ends."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        # committed records only, as every reader of the system sees them: a task is done once its end is committed
        self.consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False,
                                         isolation_level="read_committed", fetch_max_wait_ms=10)
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.done: dict[bytes, float] = {}
        self.failed: list[str] = []

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_end(*self.tps)
        for tp in self.tps:
            await self.consumer.position(tp)

    async def poll(self) -> None:
        for records in (await self.consumer.getmany(timeout_ms=200)).values():
            for r in records:
                kind = ce_type(r)
                if kind == "TaskCompleted":
                    self.done[r.key] = time.perf_counter()
                elif kind in ("TaskFailed", "TaskRejected", "TaskCancelled"):
                    self.failed.append(f"{r.key.decode()}: {kind}")

    async def until(self, ids: set[bytes], timeout: float, submitting: asyncio.Task | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= self.done.keys():
            if submitting is not None and submitting.done() and submitting.exception():
                raise submitting.exception()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids - self.done.keys())} of {len(ids)} tasks not done; failed: {self.failed[:3]}")
            await self.poll()

    async def stop(self) -> None:
        await self.consumer.stop()


def batches(ids: list[str]) -> list[list[str]]:
    return [ids[i:i + BATCH] for i in range(0, len(ids), BATCH)]


async def in_flight(jobs) -> None:
    """Awaits the coroutines, IN_FLIGHT at a time, started in order."""
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(job):
        async with limit:
            await job
    await asyncio.gather(*(one(j) for j in jobs))


async def submit_http(http: httpx.AsyncClient, ids: list[str]) -> None:
    async def batch(chunk: list[str]) -> None:
        response = await http.post("/api/tasks", json=[{**NOOP_TASK, "id": t} for t in chunk])
        response.raise_for_status()
        refused = [item for item in response.json()["items"] if item["status"] != "submitted"]
        if refused:
            raise RuntimeError(f"the API refused {len(refused)} of {len(chunk)} tasks: {refused[:2]}")
    await in_flight(batch(chunk) for chunk in batches(ids))


async def submit_producer(producer: TaskProducer, ids: list[str]) -> None:
    await in_flight(producer.submit_many([NOOP_TASK] * len(chunk), chunk) for chunk in batches(ids))


def producer_for(stack: Stack) -> TaskProducer:
    """A producer client that submits as the HTTP runs' token does: tasks `bench:<id>`, paid by `bench/bench`."""
    return TaskProducer(kafka_as("producer", stack.bootstrap), stack.topics, principal=f"{TENANT}/bench",
                        key=producer_key(SERVICE_SECRET, f"{TENANT}/bench"))


async def hive_burst(stack: Stack, n: int, timeout: float, how: str = "http", meter: CpuMeter | None = None) -> float:
    """Seconds from the first submit to the last TaskCompleted event; the meter (if any) runs over the same span.
    The clients (HTTP connection, Kafka producer, completions reader) are set up before the clock starts."""
    watch = Completions(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
    await watch.start()
    producer = producer_for(stack) if how == "producer" else None
    http = httpx.AsyncClient(base_url=stack.base_url, timeout=60, limits=httpx.Limits(max_connections=IN_FLIGHT),
                             headers=stack.headers)
    try:
        if producer:
            await producer.start()
        else:
            (await http.get("/health")).raise_for_status()
        ids = [f"b{uuid.uuid4().hex[:12]}" for _ in range(n)]
        if meter:
            meter.start()
        started = time.perf_counter()
        submitting = asyncio.create_task(submit_producer(producer, ids) if producer else submit_http(http, ids))
        await watch.until({f"{TENANT}:{t}".encode() for t in ids}, timeout, submitting)
        await submitting
        seconds = max(watch.done.values()) - started
        if meter:
            meter.stop()
        return seconds
    finally:
        await watch.stop()
        await http.aclose()
        if producer:
            await producer.stop()


async def topic_offsets(stack: Stack) -> dict[str, dict[int, int]]:
    t = stack.topics
    return {name: await end_offsets(stack.bootstrap, name, t.partitions)
            for name in (t.task_commands, t.task_events, t.agent_commands, t.agent_events)}


# Each hop of a task's life: from the record that causes it to the record it produces, and who does it.
HOPS = [("SubmitTask", "TaskSubmitted", "task decider"), ("TaskSubmitted", "ReserveSlot", "matcher"),
        ("ReserveSlot", "SlotReserved", "agent decider"),
        ("SlotReserved", "AssignTask", "agent decider (follow-up in the same transaction)"),
        ("AssignTask", "TaskAssigned", "task decider"),
        ("TaskAssigned", "ReportTaskResult", "executor: run the node, report the result with its output"),
        ("ReportTaskResult", "TaskCompleted", "task decider"),
        ("TaskSubmitted", "TaskAssigned", "span: the matcher and the slot, which one transaction with the submission "
         "would take out"),
        ("TaskAssigned", "TaskCompleted", "span: the executor and its report's decision, which stay"),
        ("SubmitTask", "TaskCompleted", "whole task")]


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


def hive_run(ctx: Context, n: int, how: str = "http", profile_to: Path | None = None,
             servers: dict | None = None) -> dict:
    """One run on a fresh stack; with profile_to, py-spy samples the worker and the connector meanwhile."""
    servers = server_pids(ctx.bootstrap, ctx.pg_server) if servers is None else servers
    stack = Stack(ctx.bootstrap, ctx.pg_server, ctx.work).start(executors=PROCESSES)
    try:
        asyncio.run(hive_burst(stack, 2 * PROCESSES, 120, how))  # warm-up: agents registered, code paths hot
        start = asyncio.run(topic_offsets(stack))
        meter = CpuMeter({name: stack.pid(name) for name in stack.procs}, servers)
        spies = [py_spy(stack.pid(name), profile_to / f"profile-e2e-{name}.txt") for name in ("worker", "connect")
                 if profile_to]
        seconds = asyncio.run(hive_burst(stack, n, 60 + n, how, meter))
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
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
    return {"submit": how, "tasks": n, "seconds": seconds, "tasks_per_s": n / seconds,
            "events": n_events, "events_per_task": n_events / n, "events_per_s": n_events / seconds,
            "commands_per_task": sum(sum(v.values()) for v in commands.values()) / n, "heartbeat_records": beats,
            "by_type": {k: dict(v) for k, v in counts.items()}, "hops": hop_latencies(records),
            "cpu_ms_per_task": {k: v / n * 1000 for k, v in meter.used.items()},
            "cpu_window_s": meter.wall}


def celery_run(ctx: Context, n: int, servers: dict | None = None) -> dict:
    """The broker's and PostgreSQL's CPU are read over the Celery run too: Celery uses neither, so what they
    spend meanwhile is other sessions' load on these shared servers, the background in the hive-streams figures."""
    servers = server_pids(ctx.bootstrap, ctx.pg_server) if servers is None else servers
    peer = Peer(ctx.work / f"celery-{free_port()}", free_port(), PROCESSES).start()
    try:
        peer.run(2 * PROCESSES, 60)
        background = CpuMeter({}, servers)
        commands0, cpu0 = peer.commands(), peer.cpu()
        background.start()
        seconds = peer.run(n, 60 + n)
        background.stop()
        cpu = {k: v - cpu0[k] for k, v in peer.cpu().items()}
        cpu["bench client"] = background.used.pop("bench client")
        redis_commands = peer.commands() - commands0
    finally:
        peer.stop()
    return {"tasks": n, "seconds": seconds, "tasks_per_s": n / seconds, "redis_commands_per_task": redis_commands / n,
            "cpu_ms_per_task": {k: v / n * 1000 for k, v in cpu.items()},
            "background_cpu_ms_per_s": {k: v / background.wall * 1000 for k, v in background.used.items()},
            "cpu_window_s": background.wall}


WARM_UP_BURST = 10_000  # tasks a burst of the warm-up; the broker's CPU a task is noted for each


def warm_up(ctx: Context, n: int, servers: dict) -> list[float]:
    """n tasks through a fabric (producer client) in bursts, not measured: the measured runs then meet a broker whose
    JVM has compiled its hot code and sized its heap, as a long-running one has (bench/FINDINGS.md, 000000 and
    0000000000). Returns the broker's CPU milliseconds a task in each burst, so the report shows whether it had
    settled. Celery's runs share no server (each starts its own redis-server), so there is nothing of theirs to warm."""
    stack = Stack(ctx.bootstrap, ctx.pg_server, ctx.work).start(executors=PROCESSES)
    broker = {"kafka broker": servers.get("kafka broker")}
    per_task = []
    try:
        for size in bursts(n, WARM_UP_BURST):
            meter = CpuMeter({}, broker)
            asyncio.run(hive_burst(stack, size, 60 + size, "producer", meter))
            if "kafka broker" in meter.used:
                per_task.append(meter.used["kafka broker"] / size * 1000)
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{stack.logs()}") from exc
    finally:
        stack.stop()
    return per_task


def bursts(n: int, size: int) -> list[int]:
    """n split into bursts of `size`, the last one holding the rest."""
    return [min(size, n - start) for start in range(0, n, size)]


def system_cpu_ms(run: dict) -> float:
    """CPU per task of every process of a system, its servers included, the bench client not."""
    return sum(v for k, v in run["cpu_ms_per_task"].items() if k != "bench client")


def hive_summary(runs: list[dict]) -> dict:
    return {"runs": runs, "tasks_per_s": summary([r["tasks_per_s"] for r in runs]),
            "events_per_task": summary([r["events_per_task"] for r in runs]),
            "events_per_s": summary([r["events_per_s"] for r in runs]),
            "system_cpu_ms_per_task": summary([system_cpu_ms(r) for r in runs])}


def run(ctx: Context) -> dict:
    n, repeats = ctx.sizes["tasks"], ctx.sizes["repeats"]
    servers = server_pids(ctx.bootstrap, ctx.pg_server)
    hive = {"http": [], "producer": []}
    celery = []
    warming = warm_up(ctx, ctx.sizes["tasks_warm_up"], servers)
    for _ in range(repeats):  # alternate, so all three see the same (shared, changing) load
        for how in hive:
            hive[how].append(hive_run(ctx, n, how, servers=servers))
        celery.append(celery_run(ctx, n, servers))
    return {
        "command": ctx.cmd("tasks"),
        "setup": {"warm_up_tasks": ctx.sizes["tasks_warm_up"], "warm_up_broker_ms_per_task": warming,
                  "processes": PROCESSES, "hive_slots_per_executor": SLOTS, "tasks_per_run": n,
                  "hive_submit": SUBMITS, "celery_submit": "task.delay() in a loop",
                  "node": "hive: one `echo` node; celery: a task returning None",
                  "servers_measured": [name for name in SERVERS if servers.get(name)]},
        "hive_http": hive_summary(hive["http"]),
        "hive_producer": hive_summary(hive["producer"]),
        "celery": {"runs": celery, "tasks_per_s": summary([r["tasks_per_s"] for r in celery]),
                   "system_cpu_ms_per_task": summary([system_cpu_ms(r) for r in celery])},
    }
