"""8. What a decider's transaction costs, by records per transaction.

The deciders write each batch in one Kafka transaction (the fencing of issue 9); the issue asks what that
costs per batch. With the project's own clients (`kafka.clients`): a decider-like loop on fresh topics
(begin, the consumed offset, N records of an event's size, commit), back to back for a window, against the
same records sent by the plain idempotent producer (every record of a batch acknowledged before the next
batch). For each: transactions (or batches) per second, records per second, the wall time of one, and the
broker's CPU per transaction and per record, its idle CPU over an equal window subtracted.
"""
from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from hive_streams.kafka.clients import admin, producer, transactional_producer

from .common import Context, cpu_seconds, kafka_as, percentiles, server_pids, summary

BATCHES = (1, 10, 100, 1000)
RECORD_BYTES = 300  # about a TaskSubmitted with its headers


def broker_seconds(pid: int | None) -> float:
    return cpu_seconds(pid) if pid else 0.0


async def loop(send_batch, batch: int, seconds: float, pid: int | None) -> dict:
    """Runs `send_batch` back to back for `seconds`: how many, how long each took, the broker's CPU."""
    took, cpu0 = [], broker_seconds(pid)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        t = time.perf_counter()
        await send_batch(len(took))
        took.append((time.perf_counter() - t) * 1000)
    wall, broker = time.perf_counter() - started, broker_seconds(pid) - cpu0
    return {"batches": len(took), "records": len(took) * batch, "seconds": wall, "broker_cpu_s": broker,
            "ms": percentiles(sorted(took), (50, 99))}


async def one_size(ctx: Context, batch: int, seconds: float, pid: int | None) -> dict:
    access = kafka_as("admin", ctx.bootstrap)
    name = f"bench-txn-{uuid.uuid4().hex[:8]}"
    out, source = f"{name}.out", TopicPartition(f"{name}.in", 0)
    client = admin(access)
    await client.start()
    try:
        await client.create_topics([NewTopic(out, 1, 1), NewTopic(source.topic, 1, 1)])
        value = b"x" * RECORD_BYTES
        txn = transactional_producer(access, f"{name}.decider")
        plain = producer(access)
        await txn.start()
        await plain.start()
        try:
            async def transaction(i: int) -> None:
                await txn.begin_transaction()
                await txn.send_offsets_to_transaction({source: i + 1}, f"{name}.group")  # first, as the deciders do
                for _ in range(batch):
                    await txn.send(out, value, key=b"k", partition=0)
                await txn.commit_transaction()

            async def idempotent(i: int) -> None:
                sent = [await plain.send(out, value, key=b"k", partition=0) for _ in range(batch)]
                await asyncio.gather(*sent)

            idle0 = broker_seconds(pid)
            await asyncio.sleep(seconds)
            idle = (broker_seconds(pid) - idle0) / seconds
            result = {"records_per_batch": batch, "broker_idle_cores": idle}
            for kind, send in (("transactional", transaction), ("plain", idempotent)):
                r = await loop(send, batch, seconds, pid)
                net = max(0.0, r["broker_cpu_s"] - idle * r["seconds"])
                result[kind] = {**r, "per_s": r["batches"] / r["seconds"], "records_per_s": r["records"] / r["seconds"],
                                "broker_ms_per_batch": net / r["batches"] * 1000,
                                "broker_us_per_record": net / r["records"] * 1e6}
            return result
        finally:
            await txn.stop()
            await plain.stop()
    finally:
        await client.delete_topics([out, source.topic])
        await client.close()


FIGURES = ("per_s", "records_per_s", "broker_ms_per_batch", "broker_us_per_record")


def run(ctx: Context) -> dict:
    pid = server_pids(ctx.bootstrap, ctx.pg_server)["kafka broker"]
    seconds = ctx.sizes["transactions"]
    runs = [[asyncio.run(one_size(ctx, batch, seconds, pid)) for batch in BATCHES] for _ in range(ctx.sizes["repeats"])]
    cases = []
    for i, batch in enumerate(BATCHES):
        each = [r[i] for r in runs]
        cases.append({"records_per_batch": batch, **{
            kind: {**{f: summary([c[kind][f] for c in each]) for f in FIGURES},
                   **{f"{q}_ms": summary([c[kind]["ms"][q] for c in each]) for q in ("p50", "p99")
                      if all(q in c[kind]["ms"] for c in each)}}
            for kind in ("transactional", "plain")}})
    return {"command": ctx.cmd("transactions"), "window_s": seconds, "record_bytes": RECORD_BYTES,
            "broker_measured": pid is not None, "runs": runs, "cases": cases}
