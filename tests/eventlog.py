"""Reading a whole topic back, decoded, for checks over the event log."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from hive_streams.codec import default_codec


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple
    event: object | None


async def read_all(bootstrap: str, topic: str, partitions: int) -> list[Record]:
    codec = default_codec()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out = []
        while True:
            pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not pending:
                return out
            for tp, records in (await consumer.getmany(*pending, timeout_ms=1000)).items():
                for r in records:
                    try:
                        event = codec.decode(r.value)
                    except Exception:
                        event = None
                    out.append(Record(tp.topic, tp.partition, r.offset, r.key, r.value, tuple(r.headers), event))
    finally:
        await consumer.stop()


def events_of(bootstrap: str, topic: str, partitions: int) -> list[Record]:
    return asyncio.run(read_all(bootstrap, topic, partitions))
