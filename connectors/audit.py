"""Audit-log and read-model projection: every event topic (`Topics.event_topics`) -> SQL, idempotently.

    python -m connectors.audit

Strays of the event topics (garbage, keyless, oversized, another family's) and records a read model cannot
hold are dead-lettered with the reason, audited, and projected nowhere else.

No consumer group: it assigns itself every partition and keeps its offsets in SQL, in the same
transaction as the rows they produced, so a crash anywhere never loses or doubles a row. Every
committed record gets a row chained by hash to the row before it in its partition; the chain's
heads go to `<prefix>.audit.checkpoints` every HIVE_AUDIT_CHECKPOINT_ROWS rows or
HIVE_AUDIT_CHECKPOINT_SECONDS, and when it stops.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from types import SimpleNamespace

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from hive_streams import settings as settings_mod
from hive_streams.audit.checkpoints import Checkpoints
from hive_streams.audit.rows import from_consumer_record
from hive_streams.codec import Codec, default_codec
from hive_streams.collector import steady
from hive_streams.codec.strays import event_types, families, stray_reason
from hive_streams.exceptions import RecordsRefused
from hive_streams.kafka.access import access_for
from hive_streams.kafka.clients import consumer as kafka_consumer
from hive_streams.kafka.clients import producer as kafka_producer
from hive_streams.kafka.clock import now_ms
from hive_streams.kafka.partitions import wait_for_partitions
from hive_streams.metrics import export, record_lag, watch_pool
from hive_streams.store import LogRecord, apply_batch, create_schema, load_offsets, make_engine
from hive_streams.store.projection import StateCache
from hive_streams.streams.deadletter import deadletter_headers
from hive_streams.topics import Topics

SOURCE = "hive-streams/connectors/audit"
CONSUMER = "audit"  # key of this connector's rows in consumer_offsets
MAX_RECORDS = 500
POLL_MS = 500
# The broker gathers a batch: it answers a fetch once this much is committed or FETCH_WAIT_MS have passed, so at a
# moderate rate the connector wakes ten times a second instead of at every decider's commit, and each SQL
# transaction carries more rows (50 tasks/s: 0.08-0.09 cores against 0.19-0.20; bench/FINDINGS.md section 0000).
# Off every task's critical path: the read models and audit rows lag by up to FETCH_WAIT_MS more.
FETCH_MIN_BYTES = 256 * 1024
FETCH_WAIT_MS = 100

log = logging.getLogger("hive_streams.connectors.audit")


EVENTS = event_types(Topics())


def to_log_record(codec: Codec, record: ConsumerRecord) -> LogRecord:
    """Every record is audited; only task, agent and ledger events reach the read models (executions, schedules,
    triggers, callbacks and alerts are folded from their events by whoever reads them)."""
    audited = from_consumer_record(codec, record)
    if audited.event is not None and not isinstance(audited.event, EVENTS):
        log.warning("%s at %s[%d]@%d is not an event: audited, not projected", type(audited.event).__name__,
                    record.topic, record.partition, record.offset)
    return audited


async def _seek(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], stored: dict) -> None:
    fresh = [tp for tp in partitions if (tp.topic, tp.partition) not in stored]
    for tp in partitions:
        if tp not in fresh:
            consumer.seek(tp, stored[(tp.topic, tp.partition)])
    if fresh:
        await consumer.seek_to_beginning(*fresh)
    log.info("resuming at %s", {f"{tp.topic}[{tp.partition}]": stored.get((tp.topic, tp.partition), "beginning")
                                for tp in partitions})


class DeadLetters:
    """Strays of the event topics and records a read model refuses, sent to the dead-letter topic with the
    reason before the batch that skips them commits: a crash in between sends them again, never loses one."""

    def __init__(self, producer, topics: Topics, codec: Codec, record_limit: int):
        self.producer, self.topic, self.codec = producer, topics.deadletter, codec
        self.families, self.record_limit = families(topics), record_limit
        self.sent = 0

    def strays(self, records: list[LogRecord]) -> dict[tuple[str, int, int], str]:
        found = {}
        for r in records:
            reason = stray_reason(self.codec, self.families.get(r.topic, object), r.key, r.value, self.record_limit,
                                  r.event)
            if reason:
                found[(r.topic, r.partition, r.offset)] = reason
        return found

    async def send(self, records: list[LogRecord], reasons: dict[tuple[str, int, int], str]) -> None:
        acks = []
        for r in records:
            reason = reasons.get((r.topic, r.partition, r.offset))
            if reason:
                place = SimpleNamespace(topic=r.topic, partition=r.partition, offset=r.offset, headers=r.raw_headers)
                log.warning("dead-lettering %s[%d]@%d: %s", r.topic, r.partition, r.offset, reason)
                acks.append(await self.producer.send(self.topic, r.value, key=r.key,
                                                     headers=deadletter_headers(place, reason)))
        await asyncio.gather(*acks)
        self.sent += len(acks)


async def _project(engine, codec: Codec, batches: dict[TopicPartition, list[ConsumerRecord]],
                   checkpoints: Checkpoints, deadletters: DeadLetters, heads: dict, states: StateCache) -> int:
    """`heads`: the chain heads this connector wrote (read from the table once, then kept here); emptied when a
    batch fails, since another writer may have moved them. `states`: the read-model states it wrote."""
    records = [to_log_record(codec, r) for recs in batches.values() for r in recs]
    next_offsets = {(tp.topic, tp.partition): recs[-1].offset + 1 for tp, recs in batches.items() if recs}
    skip = deadletters.strays(records)
    await deadletters.send(records, skip)
    while True:
        try:
            moved = await asyncio.to_thread(apply_batch, engine, CONSUMER, records, next_offsets, now_ms(),
                                            frozenset(skip), dict(heads), states)
            break
        except RecordsRefused as exc:  # nothing written: dead-letter them, then the batch again without them
            if not exc.refused.keys() - skip.keys():
                heads.clear()
                raise
            await deadletters.send(records, exc.refused)
            skip.update(exc.refused)
        except BaseException:
            heads.clear()
            raise
    heads.update(moved)
    checkpoints.moved(moved, len(records))
    return len(records)


async def run_audit(settings: settings_mod.Settings, stop: asyncio.Event | None = None,
                    ready: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    codec = default_codec(settings.schemas_dir)
    topics = Topics.from_settings(settings)
    engine = make_engine(settings.store_url)
    export("consumer", "store")
    watch_pool(engine)
    kafka = access_for(settings, "connector")
    consumer = kafka_consumer(kafka, client_id=SOURCE, fetch_wait_ms=FETCH_WAIT_MS, fetch_min_bytes=FETCH_MIN_BYTES)
    producer = kafka_producer(kafka, client_id="hive-streams-audit-checkpoints")
    checkpoints = Checkpoints(producer, topics.audit_checkpoints, settings.audit_checkpoint_rows,
                              settings.audit_checkpoint_seconds)
    deadletters = DeadLetters(producer, topics, codec, settings.record_max_kb * 1024)
    try:
        await asyncio.to_thread(create_schema, engine)
        partitions = await wait_for_partitions(
            kafka, list(topics.event_topics), stop, SOURCE)
        if not partitions:
            return
        await consumer.start()
        await producer.start()
        consumer.assign(partitions)
        await _seek(consumer, partitions, await asyncio.to_thread(load_offsets, engine, CONSUMER))
        if ready is not None:
            ready.set()
        heads: dict = {}
        states = StateCache()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
            if batches:
                count = await _project(engine, codec, batches, checkpoints, deadletters, heads, states)
                log.debug("projected %d records", count)
            if checkpoints.due():
                await checkpoints.publish()
            await record_lag(consumer, CONSUMER, partitions)
    finally:
        try:
            if checkpoints.pending:
                await checkpoints.publish()
        finally:
            await producer.stop()
            await consumer.stop()
            engine.dispose()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_audit(settings_mod.load(), stop)

    steady()
    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
