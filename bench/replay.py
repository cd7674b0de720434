"""4. Replay: events per second to fold recorded task events with the domain's `evolve`, vs fastavro's
decode-only rate on the same records. The records are made by the domain's own `decide` (eight events a
task: submitted, validated, assigned, started, node started, progress, node completed, completed),
Avro-encoded by the project's codec into a length-prefixed file, read into memory before timing; then
the same records are produced to a topic and folded from Kafka the way a decider loads a partition."""
from __future__ import annotations

import asyncio
import io
import struct
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastavro import schemaless_reader

from hive_streams.codec import default_codec
from hive_streams.collector import folding
from hive_streams.codec.avro import HEADER_LEN
from hive_streams.domain import commands as c
from hive_streams.domain import task
from hive_streams.domain.model import NodeOutput, result_digest
from hive_streams.topics import partition_for

from .common import Context, kafka_options, noop_submit, summary

EVENTS_PER_TASK = 5
STEPS = 5  # commands in a lifecycle
PARTITIONS = 4


def lifecycle(task_id: str, i: int, now: int):
    """The commands of one task's life, in order (a node slower than the executor's report linger);
    `decide` turns them into its events: submitted (queued), assigned, node started, progress, completed."""
    ids = {"task_id": task_id, "at": now}
    run = {**ids, "agent_id": "agent-1", "attempt": 1}
    yield noop_submit(task_id, now)
    yield c.AssignTask(**ids, command_id=f"a{i}", agent_id="agent-1")
    yield c.ReportNodeStarted(**run, command_id=f"ns{i}", node_id="n")
    yield c.ReportNodeProgress(**run, command_id=f"np{i}", node_id="n", progress=0.5, message="half")
    output = '{"ok": true}'
    yield c.ReportTaskResult(**run, command_id=f"r{i}", digest=result_digest(task_id, 1, {"n": output}), signature="",
                             nodes=(NodeOutput("n", output),))


def record_events(path: Path, n_events: int, batch: int = 1000) -> int:
    """Writes about n_events events, tasks interleaved in batches as in a busy log; returns the count."""
    codec, now, count = default_codec(), int(time.time() * 1000), 0
    with open(path, "wb") as out:
        for first in range(0, n_events // EVENTS_PER_TASK, batch):
            tasks = [(f"r{i}", i) for i in range(first, min(first + batch, n_events // EVENTS_PER_TASK))]
            states = {tid: task.TaskState(tid) for tid, _ in tasks}
            steps = [lifecycle(tid, i, now) for tid, i in tasks]
            for _ in range(STEPS):
                for (tid, _), commands in zip(tasks, steps):
                    for event in task.decide(next(commands), states[tid], now):
                        states[tid] = task.evolve(states[tid], event)
                        data = codec.encode(event)
                        out.write(struct.pack(">I", len(data)) + data)
                        count += 1
    return count


def load(path: Path) -> list[bytes]:
    data, out, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return out


def fastavro_decode(records: list[bytes]) -> None:
    schemas = {fp: e.schema for fp, e in default_codec().registry.by_fingerprint.items()}
    for r in records:
        schemaless_reader(io.BytesIO(r[HEADER_LEN:]), schemas[r[2:HEADER_LEN]], None)


def codec_decode(records: list[bytes]) -> None:
    decode = default_codec().decode
    for r in records:
        decode(r)


def fold(records: list[bytes]) -> dict:
    """As a worker folds a partition it takes: the cyclic collector paused meanwhile (hive_streams.collector)."""
    decode, evolve, states = default_codec().decode, task.evolve, {}
    with folding():
        for r in records:
            event = decode(r)
            state = states.get(event.task_id) or task.TaskState(event.task_id)
            states[event.task_id] = evolve(state, event)
    return states


def evolve_only(events: list) -> None:
    states = {}
    for event in events:
        states[event.task_id] = task.evolve(states.get(event.task_id) or task.TaskState(event.task_id), event)


ROUND = (("fastavro_decode", fastavro_decode), ("codec_decode", codec_decode), ("fold", fold))


def interleaved(records: list[bytes], repeats: int) -> tuple[dict, dict]:
    """Wall-clock and CPU rates of each of ROUND's functions, `repeats` rounds of all of them in turn: a ratio of
    two rates is taken within one round, so a machine that slows down between rounds moves both alike."""
    rates, cpu_rates = {name: [] for name, _ in ROUND}, {name: [] for name, _ in ROUND}
    for _ in range(repeats):
        for name, fn in ROUND:
            wall, cpu = rates_of(fn, records)
            rates[name].append(wall)
            cpu_rates[name].append(cpu)
    return rates, cpu_rates


def rates_of(fn, items: list) -> tuple[float, float]:
    """Items a wall-clock and a CPU second of fn(items): on a shared machine the CPU rate is the steadier."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(items)
    return len(items) / (time.perf_counter() - wall), len(items) / (time.process_time() - cpu)


async def to_topic(bootstrap: str, topic: str, records: list[bytes], decode) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**kafka_options(bootstrap), linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        pending = []
        for r in records:
            key = decode(r).task_id.encode()
            pending.append(await producer.send(topic, r, key=key, partition=partition_for(key, PARTITIONS)))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def fold_from_kafka(bootstrap: str, topic: str) -> tuple[int, float]:
    """Reads every partition from the beginning, decoding and folding, as Decider._load does per partition."""
    decode, evolve, states = default_codec().decode, task.evolve, {}
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        count, started = 0, time.perf_counter()
        with folding():
            while pending := [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)).values():
                    for record in records:
                        state = states.get(record.key) or task.TaskState(record.key.decode())
                        states[record.key] = evolve(state, decode(record.value))
                    count += len(records)
        return count, time.perf_counter() - started
    finally:
        await consumer.stop()


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def run(ctx: Context) -> dict:
    path = ctx.work / "replay.records"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = record_events(path, ctx.sizes["replay"])
    records = load(path)
    states = fold(records)
    assert sum(s.status == "completed" for s in states.values()) == n // EVENTS_PER_TASK, "the fold lost tasks"
    # Nothing the harness holds stays alive while the fold is timed: the garbage collector traverses every live
    # object each time the fold's growing states trigger a full collection, so a list of 200,000 pre-decoded
    # events kept beside it would be charged to the fold (the decode-only figures keep nothing and pay nothing).
    del states
    repeats = ctx.sizes["repeats"]
    rates, cpu_rates = interleaved(records, repeats)
    pre_decoded = [default_codec().decode(r) for r in records]
    evolving = [rates_of(evolve_only, pre_decoded) for _ in range(repeats)]
    del pre_decoded
    rates["evolve_only"], cpu_rates["evolve_only"] = [w for w, _ in evolving], [c for _, c in evolving]
    topic = f"bench{ctx.work.name}-replay-{int(time.time())}"
    asyncio.run(to_topic(ctx.bootstrap, topic, records, default_codec().decode))
    try:
        rates["fold_from_kafka"] = []
        for _ in range(repeats):
            count, seconds = asyncio.run(fold_from_kafka(ctx.bootstrap, topic))
            rates["fold_from_kafka"].append(count / seconds)
    finally:
        asyncio.run(delete_topic(ctx.bootstrap, topic))
    path.unlink()
    ratios = [fold_rate / decode_rate for fold_rate, decode_rate in zip(rates["fold"], rates["fastavro_decode"])]
    return {"command": ctx.cmd("replay"), "events": n, "bytes_per_event": sum(map(len, records)) / n,
            **{name: summary(values) for name, values in rates.items()}, "fold_over_fastavro": summary(ratios),
            "per_cpu_second": {name: summary(values) for name, values in cpu_rates.items()}}
