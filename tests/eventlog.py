"""Reading topics back as raw records, for checks over the log: nothing is dropped or merged here.

Readers see committed records only (`read_committed`), as every reader in the fabric does; a test may
ask for `read_uncommitted` to see what a deposed writer wrote before it was fenced. They read every
topic, so they log in as the broker's admin.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from hive_streams.codec import default_codec
from hive_streams.kafka.clients import admin as admin_client

from .roles import as_role

COMMITTED = "read_committed"
EMPTY_FETCHES_AT_MARKER = 5  # a partition that ends in a transaction marker may leave the position one short


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple
    event: object | None  # None when the value does not decode; `error` says why
    error: str = ""

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else value
        return None


def decoded(topic: str, partition: int, offset: int, key, value, headers=(), codec=None) -> Record:
    codec = codec or default_codec()
    try:
        return Record(topic, partition, offset, key, value, tuple(headers), codec.decode(value))
    except Exception as exc:  # any reason a reader could not use the record is a finding, not a crash
        return Record(topic, partition, offset, key, value, tuple(headers), None, f"{type(exc).__name__}: {exc}")


def encoded(events) -> list[Record]:
    """Records of (topic, event) pairs as a writer would put them in partition 0 of each topic, in that order."""
    codec, out, offsets = default_codec(), [], {}
    for topic, event in events:
        key, value, headers = codec.message(event, "/test")
        offset = offsets[topic] = offsets.get(topic, -1) + 1
        out.append(decoded(topic, 0, offset, key, value, headers, codec))
    return out


def _consumer(bootstrap: str, isolation: str) -> AIOKafkaConsumer:
    options = {**as_role("admin").options(), "bootstrap_servers": bootstrap}
    return AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False,
                            isolation_level=isolation, max_partition_fetch_bytes=4 * 1024 * 1024)


async def end_offsets(bootstrap: str, topic: str, partitions: int, isolation: str = COMMITTED) -> dict[int, int]:
    """Per partition: the end a reader with this isolation would read to now."""
    consumer = _consumer(bootstrap, isolation)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def kill_in_open_transaction(bootstrap: str, topic: str, partitions: int, kill, seconds: float) -> bool:
    """Calls `kill` as soon as a partition of `topic` holds records of a transaction not yet committed (its last
    stable offset behind its high watermark); True if one was seen within `seconds` (else nothing is killed)."""
    committed, everything = _consumer(bootstrap, COMMITTED), _consumer(bootstrap, "read_uncommitted")
    await committed.start()
    await everything.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            stable, ends = await committed.end_offsets(tps), await everything.end_offsets(tps)
            if any(stable[tp] < ends[tp] for tp in tps):
                kill()
                return True
            await asyncio.sleep(0.01)
        return False
    finally:
        await committed.stop()
        await everything.stop()


async def read_all(bootstrap: str, topic: str, partitions: int, isolation: str = COMMITTED,
                   ends: dict[int, int] | None = None) -> list[Record]:
    """Every record from the beginning to `ends` (default: the end now), in partition/offset order."""
    codec = default_codec()
    consumer = _consumer(bootstrap, isolation)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        last = await consumer.end_offsets(tps)
        stop = {tp: last[tp] if ends is None else ends[tp.partition] for tp in tps}
        out: list[Record] = []
        empty = {tp: 0 for tp in tps}
        pending = [tp for tp in tps if await consumer.position(tp) < stop[tp]]
        while pending:
            got = await consumer.getmany(*pending, timeout_ms=500)
            for tp in pending:
                records = [r for r in got.get(tp, []) if r.offset < stop[tp]]
                empty[tp] = 0 if got.get(tp) else empty[tp] + 1
                out += [decoded(tp.topic, tp.partition, r.offset, r.key, r.value, r.headers, codec) for r in records]
            pending = [tp for tp in pending if not await _done(consumer, tp, stop[tp], empty[tp])]
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def _done(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int, empty_fetches: int) -> bool:
    position = await consumer.position(tp)
    return position >= end or (position == end - 1 and empty_fetches >= EMPTY_FETCHES_AT_MARKER)


async def committed_offsets(bootstrap: str, group_id: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition of the topic, for the partitions it committed at all."""
    admin = admin_client(dataclasses.replace(as_role("admin"), bootstrap=bootstrap))
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        found = await admin.list_consumer_group_offsets(group_id, partitions=tps)
        return {tp.partition: found[tp].offset for tp in tps if tp in found and found[tp].offset >= 0}
    finally:
        await admin.close()


def whole_log(bootstrap: str, topics, isolation: str = COMMITTED) -> list[Record]:
    """Every record of every aggregate's event topic (the alerts are not an aggregate's)."""
    layout = topics.layout()
    return [r for topic in topics.event_topics if topic != topics.alerts
            for r in events_of(bootstrap, topic, layout[topic][0], isolation)]


def events_of(bootstrap: str, topic: str, partitions: int, isolation: str = COMMITTED,
              ends: dict[int, int] | None = None) -> list[Record]:
    return asyncio.run(read_all(bootstrap, topic, partitions, isolation, ends))
