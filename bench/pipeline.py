"""2. Event throughput of the Faust pipeline vs the limit.

Pipeline: the worker starts on fresh topics and is left until it owns every command partition and its
matcher has caught up; then N SubmitTask commands appear at once (written in one transaction, so its
committed-only readers see none, then all) and it decides them. The clock runs from the commit of the
commands' transaction to the timestamp of the last of the N events (one TaskSubmitted, queued, for each) it
writes for them: neither its start-up (logins, loads) nor the writing of the commands overlaps it, nor the
matcher's TaskWaiting events that follow (they are the next hop, told apart by their causation id). The span
of the N events' own timestamps is kept beside it; it is not the rate: a worker that decides a large batch
before it sends any of it writes its first event late, and the span then leaves that work out.
Limit: a plain aiokafka consumer that reads the same N command records and only decodes them, with
the project's codec (Avro + domain objects) and with bare fastavro, in steady state.
"""
from __future__ import annotations

import asyncio
import io
import signal
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from fastavro import schemaless_reader

from hive_streams.codec import default_codec, header
from hive_streams.codec.avro import HEADER_LEN

from .common import Context, cpu_seconds, end_offsets, kafka_options, noop_submit, produce, py_spy, read_records, summary, wait_for
from .restart import read_log
from .stack import Stack

LIMIT_RECORDS = 100_000  # records the limit is measured over (the topic is read as many times as needed)


def fastavro_only():
    by_fingerprint = {fp: entry.schema for fp, entry in default_codec().registry.by_fingerprint.items()}

    def decode(value: bytes):
        return schemaless_reader(io.BytesIO(value[HEADER_LEN:]), by_fingerprint[value[2:HEADER_LEN]], None)
    return decode


async def consume_decode(bootstrap: str, topic: str, partitions: int, decode) -> tuple[int, float]:
    """Records and seconds to read a whole topic and decode every record, in steady state: the topic is
    read again from the beginning until LIMIT_RECORDS are decoded, and the clock starts at the first batch."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        count, started = 0, None
        while count < LIMIT_RECORDS:
            await consumer.seek_to_beginning(*tps)
            while pending := [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(*pending, timeout_ms=500)).values():
                    started = started or time.perf_counter()
                    for record in records:
                        decode(record.value)
                    count += len(records)
        return count, time.perf_counter() - started
    finally:
        await consumer.stop()


def warm_worker(stack: Stack, timeout: float = 120) -> None:
    """Starts the worker and waits until its log says it owns every command partition and its matcher has
    caught up."""
    partitions = sum(count for topic, (count, _) in stack.topics.layout().items() if topic.endswith(".commands"))
    began = time.time()
    proc = stack.fabric.spawn("worker", "--loglevel", "info", "worker")
    stack.procs["worker"] = proc
    seen = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack._check()
        seen = read_log(proc.log_path, began, partitions)
        if seen["ready_s"] is not None and seen["matcher_caught_up_s"] is not None:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the worker owned {len(seen.get('first_owned', {}))} of {partitions} partitions "
                       f"after {timeout:.0f}s:\n{proc.tail()}")


def pipeline_run(ctx: Context, n: int, profile_to: Path | None = None) -> dict:
    stack = Stack(ctx.bootstrap, ctx.pg_server, ctx.work).create()
    topics = stack.topics
    try:
        prefix = uuid.uuid4().hex[:8]
        warm_worker(stack)
        spy = py_spy(stack.pid("worker"), profile_to) if profile_to else None
        commands = [noop_submit(f"{prefix}-{i}") for i in range(n)]
        cpu_before = cpu_seconds(stack.pid("worker"))
        committed = []
        asyncio.run(produce(ctx.bootstrap, topics.task_commands, commands, at_once=True,
                            on_commit=lambda: committed.append(time.time() * 1000)))
        count = lambda: sum(asyncio.run(end_offsets(ctx.bootstrap, topics.task_events, topics.partitions)).values())
        wait_for(lambda: stack._check() or count() >= n, 120 + n / 20, f"{n} events", interval=0.5)
        worker_cpu = cpu_seconds(stack.pid("worker")) - cpu_before
        if spy:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        ids = {cmd.command_id for cmd in commands}  # not the matcher's TaskWaiting events that follow them
        caused = lambda: [r.timestamp for r in asyncio.run(read_records(ctx.bootstrap, topics.task_events,
                                                                         topics.partitions))
                          if header(r.headers, "ce_causationid") in ids]
        stamps = wait_for(lambda: (found := caused()) and len(found) >= n and found, 60, f"{n} caused events",
                          interval=0.5)
        seconds = (max(stamps) - committed[0]) / 1000
        everything = asyncio.run(read_records(ctx.bootstrap, topics.task_events, topics.partitions))
        others = sum(1 for r in everything if r.timestamp <= max(stamps)) - len(stamps)
        raw = {name: asyncio.run(consume_decode(ctx.bootstrap, topics.task_commands, topics.partitions, fn))
               for name, fn in (("codec", default_codec().decode), ("fastavro", fastavro_only()))}
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{stack.logs()}") from exc
    finally:
        stack.stop()
    return {"commands": n, "events": len(stamps), "seconds": seconds,
            "pipeline_commands_per_s": n / seconds, "pipeline_events_per_s": len(stamps) / seconds,
            "worker_cpu_us_per_command": worker_cpu / n * 1e6,
            "events_span_seconds": (max(stamps) - min(stamps)) / 1000, "other_events_before_the_last": others,
            "first_event_after_commit_ms": min(stamps) - committed[0],
            "raw_codec_per_s": raw["codec"][0] / raw["codec"][1],
            "raw_fastavro_per_s": raw["fastavro"][0] / raw["fastavro"][1]}


def run(ctx: Context) -> dict:
    n = ctx.sizes["pipeline"]
    runs = [pipeline_run(ctx, n) for _ in range(ctx.sizes["repeats"])]
    for r in runs:
        r["ratio"] = r["pipeline_commands_per_s"] / r["raw_codec_per_s"]
    keys = ("pipeline_commands_per_s", "pipeline_events_per_s", "raw_codec_per_s", "raw_fastavro_per_s", "ratio",
            "worker_cpu_us_per_command", "first_event_after_commit_ms")
    return {"command": ctx.cmd("pipeline"), "commands_per_run": n, "limit_records": LIMIT_RECORDS, "runs": runs,
            **{k: summary([r[k] for r in runs]) for k in keys}}
