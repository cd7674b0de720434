"""Pieces every benchmark shares: sizes per mode, statistics, /proc readings, Kafka helpers."""
from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import secrets
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hive_streams import settings as settings_mod
from hive_streams.auth import mint
from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain.model import NodeSpec
from hive_streams.domain.tenancy import task_tenant
from hive_streams.kafka.access import KafkaAccess, access_for, credentials_path
from hive_streams.kafka.seal import Sealer

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

# tasks: end-to-end tasks per run, enough that the rate is the sustained one: a run of 1,000 lasted ~2 s, a quarter
# of it one task's own latency (the fabric filling and draining), and measured 446 tasks/s where 5,000 measure 774
# (Celery 546 and 753; bench/FINDINGS.md section 0000); pipeline: SubmitTask commands pre-produced (enough that
# the first batch, decided before the first event is stamped, does not flatter the rate); latency: tasks at half load
# (1,000 a run support a p99, 10,000 a p99.9); replay: recorded events folded; memory: tasks in state;
# restart: events in the history a restarted worker loads; tasks_warm_up: tasks through a fabric, not measured,
# before the tasks section's first run (a broker just started took 50,000-80,000 tasks to settle: FINDINGS 000000
# and 0000000000).
SIZES = {
    "smoke": dict(repeats=1, tasks=20, pipeline=100, latency=10, replay=5_000, memory=100, restart=5_000, idle=2,
                  transactions=1, connector=50, latency_warm_up_s=0.5, tasks_warm_up=20),
    "default": dict(repeats=3, tasks=5_000, pipeline=20_000, latency=1_000, replay=200_000, memory=3_000,
                    restart=200_000, idle=20, transactions=5, connector=2_000, latency_warm_up_s=3.0,
                    tasks_warm_up=80_000),
    "full": dict(repeats=3, tasks=20_000, pipeline=100_000, latency=10_000, replay=1_000_000, memory=100_000,
                 restart=1_000_000, idle=60, transactions=10, connector=20_000, latency_warm_up_s=3.0,
                 tasks_warm_up=80_000),
}
PROCESSES = 2  # executors for hive-streams, prefork worker processes for Celery: one per core here
# Concurrent tasks per hive-streams executor. A slot is an asyncio permit, not a process (Celery's prefork children
# run one task at a time). It stays taken for the fabric's whole slot cycle (reserve, assign, run, report, end), so by
# Little's law slots / cycle caps the rate whatever the CPU: the bench gives the executors enough that the CPU is the
# limit. Producer client, 1,000 tasks, same machine, interleaved (2 rounds): 64 slots 307.8 / 380.3 tasks/s,
# 256 slots 428.3 / 438.4, 512 slots 422.9 / 303.9 (no gain past 256). More slots in flight also mean larger
# batches a transaction: CPU per task 5.73 / 4.59 ms at 64, 4.07 / 3.98 ms at 256.
SLOTS = 256
NOOP_TASK = {"name": "noop", "nodes": [{"id": "n", "kind": "echo"}]}
# The bench submits as an admin far faster than the per-minute limit lets a person: it lifts the admin's limit.
BENCH_RATE_LIMITS = "executions.start=admin:100000000"
# Every feed of a bench (1,000 SSE clients, one feed per task in flight) is one principal's: it lifts the per-principal cap.
BENCH_FEEDS_PER_PRINCIPAL = "1000000"


TENANT = "bench"  # the tenant of the bench's token: its tasks are `bench:<id>`
# the fabric's service secret for this bench run: every process it starts inherits it, and it seals raw commands
SERVICE_SECRET = os.environ.setdefault("HIVE_SERVICE_SECRET", secrets.token_hex(32)).encode()


def credentials() -> tuple[dict[str, str], str]:
    """The API's settings for a fresh signing secret (and the bench's limits), and an admin token it accepts."""
    secret = secrets.token_hex(32)
    token = mint(secret, "bench", TENANT, ["admin"], 24 * 3600)
    return {"HIVE_JWT_SECRET": secret, "HIVE_RATE_LIMITS": BENCH_RATE_LIMITS,
            "HIVE_FEEDS_PER_PRINCIPAL": BENCH_FEEDS_PER_PRINCIPAL}, token


def kafka_as(role: str, bootstrap: str) -> KafkaAccess:
    """The bench on the broker: its own clients as the admin (it creates, reads and deletes whole topics),
    a TaskProducer as the producer; credentials from HIVE_KAFKA_CREDENTIALS or the launched broker's."""
    return dataclasses.replace(access_for(settings_mod.load(), role), bootstrap=bootstrap)


def kafka_options(bootstrap: str, role: str = "admin") -> dict:
    return kafka_as(role, bootstrap).options()


def credentials_env() -> dict[str, str]:
    """For the processes a bench starts, which have homes of their own."""
    return {"HIVE_KAFKA_CREDENTIALS": str(credentials_path(settings_mod.load()))}


@dataclass
class Context:
    mode: str
    bootstrap: str
    pg_server: str
    work: Path  # logs and scratch files of this invocation
    out: Path  # where results.json, REPORT.md, the chart and the raw profile go
    sizes: dict
    command: str  # how to reproduce one section: `{command} <section>`
    results: dict = field(default_factory=dict)  # earlier sections' results (latency needs the max rate)

    def cmd(self, section: str) -> str:
        return f"{self.command} {section}"


def summary(values: list[float]) -> dict:
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "runs": len(values),
            "spread_pct": (max(values) - min(values)) / med * 100 if med else 0.0, "values": values}


def sustained_rate(tasks: dict) -> tuple[float, str]:
    """The best median tasks/s of the hive-streams variants in a tasks result, and which one it was."""
    variants = {k: v["tasks_per_s"]["median"] for k, v in tasks.items() if k.startswith("hive")}
    best = max(variants, key=variants.get)
    return variants[best], best


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q / 100 * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def samples_for(q: float) -> int:
    """Samples a q-th percentile needs to say more than the maximum: ten beyond it (100/(100 - q) x 10)."""
    return math.ceil(round(1000 / (100 - q), 6))


def supported(q: float, n: int) -> bool:
    return n >= samples_for(q)


def percentiles(sorted_values: list[float], qs=(50, 90, 99, 99.9)) -> dict[str, float]:
    """`p<q>` for each q the sample supports, plus `max` (named as such) and the sample size `n`."""
    out = {f"p{q:g}": percentile(sorted_values, q) for q in qs if supported(q, len(sorted_values))}
    return {**out, "max": sorted_values[-1] if sorted_values else float("nan"), "n": len(sorted_values)}


def proc_status_kib(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def tree_cpu_seconds(root: int) -> float:
    """CPU of a server and its children: the root's and each live child's utime + stime, plus the root's
    cutime + cstime (children it has reaped), so a backend that ends within a window is still counted."""
    fields = _stat(root)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == root:
            continue
        try:
            child = _stat(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # gone meanwhile: its time is in the root's cutime once reaped
        if int(child[1]) == root:
            total += int(child[11]) + int(child[12])
    return total / CLK_TCK


def server_pids(bootstrap: str, pg_server: str) -> dict[str, int | None]:
    """The Kafka broker's JVM and the PostgreSQL postmaster, when they are the servers the bench uses (None: a
    broker or server the project did not start, e.g. an external HIVE_KAFKA_BOOTSTRAP, whose CPU it cannot read)."""
    from sqlalchemy.engine import make_url

    from hive_streams.infra import kafka, postgres
    k, pg = kafka.status(), postgres.status()
    same_pg = make_url(pg["url"]).set(database=None) == make_url(pg_server).set(database=None)
    return {"kafka broker": k.get("pid") if k.get("bootstrap") == bootstrap else None,
            "postgresql": pg.get("pid") if same_pg else None}


class CpuMeter:
    """CPU seconds used over a window by named processes, the Kafka broker and every PostgreSQL process."""

    def __init__(self, pids: dict[str, int], servers: dict[str, int | None]):
        self.readers = {name: (lambda pid=pid: cpu_seconds(pid)) for name, pid in pids.items()}
        if servers.get("kafka broker"):
            self.readers["kafka broker"] = lambda pid=servers["kafka broker"]: cpu_seconds(pid)
        if servers.get("postgresql"):
            self.readers["postgresql"] = lambda pid=servers["postgresql"]: tree_cpu_seconds(pid)
        self.at: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> "CpuMeter":
        self.at = {name: read() for name, read in self.readers.items()}
        self.at["bench client"] = time.process_time()
        self.wall = time.perf_counter()
        return self

    def stop(self) -> dict[str, float]:
        now = {name: read() for name, read in self.readers.items()}
        now["bench client"] = time.process_time()
        self.used = {name: now[name] - self.at[name] for name in now}
        self.wall = time.perf_counter() - self.wall
        return self.used


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def noop_submit(task_id: str, now: int | None = None) -> c.SubmitTask:
    """A one-node task; a `<tenant>:<id>` id is requested by `<tenant>/bench`, a bare one by `bench`."""
    now = now or int(time.time() * 1000)
    tenant = task_tenant(task_id)
    requester = f"{tenant}/bench" if tenant else "bench"
    return c.SubmitTask(task_id=task_id, command_id=uuid.uuid4().hex, at=now, name="noop", requester=requester,
                        nodes=(NodeSpec(id="n", kind="echo"),))


async def produce(bootstrap: str, topic: str, objects, source: str = "/bench", at_once: bool = False,
                  on_commit=None) -> int:
    """Writes domain objects as the project's records (key, Avro value, CloudEvents headers), batched.
    `at_once`: in one transaction, so a committed-only reader sees none of them, then all; `on_commit()` is
    called as soon as the commit returns."""
    codec = default_codec()
    sealer = Sealer.service(SERVICE_SECRET)
    extra = {"transactional_id": f"bench-{uuid.uuid4().hex[:8]}"} if at_once else {}
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", linger_ms=20, max_batch_size=256 * 1024,
                                **extra)
    await producer.start()
    if at_once:
        await producer.begin_transaction()
    try:
        pending, count = [], 0
        for obj in objects:
            key, value, headers = codec.message(obj, source)
            if topic.endswith("commands"):  # as the API would send them
                headers.append(sealer.header(value, headers))
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            count += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        if at_once:
            await producer.commit_transaction()
            if on_commit is not None:
                on_commit()
        return count
    finally:
        await producer.stop()


EMPTY_FETCHES_AT_MARKER = 5  # a partition that ends in a transaction marker may leave the position one short


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def read_records(bootstrap: str, topic: str, partitions: int, start: dict[int, int] | None = None) -> list:
    """Every committed record of a topic from `start` (partition -> offset; default the beginning) to its end now."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, (start or {}).get(tp.partition, 0))
        ends = await consumer.end_offsets(tps)
        out, empty = [], dict.fromkeys(tps, 0)
        pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
        while pending:
            got = await consumer.getmany(*pending, timeout_ms=1000, max_records=10_000)
            for tp in pending:
                out.extend(got.get(tp, []))
                empty[tp] = 0 if got.get(tp) else empty[tp] + 1
            pending = [tp for tp in pending if not await _read_to(consumer, tp, ends[tp], empty[tp])]
        return out
    finally:
        await consumer.stop()


async def _read_to(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int, empty_fetches: int) -> bool:
    position = await consumer.position(tp)
    return position >= end or (position == end - 1 and empty_fetches >= EMPTY_FETCHES_AT_MARKER)


def ce_type(record) -> str:
    for key, value in record.headers or ():
        if key == "ce_type":
            return value.decode().rsplit(".", 1)[-1]
    return "?"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return value


def py_spy(pid: int, out: Path, rate: int = 100) -> subprocess.Popen:
    """Samples a running process until SIGINT; writes collapsed stacks (one `frames count` a line). Only the thread
    holding the GIL is sampled: idle threads (a pool's workers waiting on their queue, a watcher in `sleep`) and
    the event loop in `select` are not CPU, and counting them hid where it goes."""
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", str(rate), "--gil", "--format", "raw",
                             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
