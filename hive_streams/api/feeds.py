"""Task event feeds read straight from Kafka; every frame's id is `partition:offset:seq`, resumable."""
from __future__ import annotations

import json
from typing import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..codec import Codec
from ..codec.avro import to_record
from ..domain.events import TERMINAL_TASK_EVENTS
from ..exceptions import CodecError
from ..topics import partition_for


def parse_position(last_event_id: str | None) -> tuple[int, int] | None:
    """`partition:offset:seq` of the last frame a client saw -> (next offset, last seq)."""
    if not last_event_id:
        return None
    try:
        _, offset, seq = (int(part) for part in last_event_id.split(":"))
    except ValueError:
        return None
    return offset + 1, seq


def render(event) -> dict:
    return {"type": type(event).__name__, **to_record(event)}


async def task_feed(bootstrap: str, codec: Codec, topic: str, partitions: int, task_id: str,
                    start_offset: int | None, last_seq: int = 0) -> AsyncIterator[dict]:
    """Yields SSE frames for one task from `start_offset` (or the partition's start) until it ends."""
    key = task_id.encode()
    tp = TopicPartition(topic, partition_for(key, partitions))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        if start_offset is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, start_offset)
        while True:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
            for record in batch.get(tp, []):
                if record.key != key:
                    continue
                try:
                    event = codec.decode(record.value)
                except CodecError:
                    continue
                if event.seq <= last_seq:
                    continue  # a duplicate produced during a crash: same aggregate/seq
                last_seq = event.seq
                yield {"event": type(event).__name__, "id": f"{tp.partition}:{record.offset}:{event.seq}",
                       "data": json.dumps(render(event))}
                if isinstance(event, TERMINAL_TASK_EVENTS):
                    return
    finally:
        await consumer.stop()
