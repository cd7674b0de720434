"""One aggregate's events, read from its partition of the log up to a point of its history."""
from __future__ import annotations

import contextlib

from aiokafka import TopicPartition

from ..domain.history import Point
from ..exceptions import CodecError
from .access import KafkaAccess
from .reader import read_to_end


async def events_of(kafka: KafkaAccess, codec, tp: TopicPartition, key: bytes, point: Point,
                    start: int | None = None) -> list:
    """The aggregate's events in seq order from `start` (None: the beginning) up to the first one past `point`;
    a duplicate (a seq seen already) and a record that does not decode are left out."""
    out, last = [], 0
    async with contextlib.aclosing(read_to_end(kafka, {tp: start})) as batches:
        async for records in batches:
            for record in records:
                if record.key != key:
                    continue
                try:
                    event = codec.decode(record.value)
                except (CodecError, TypeError):
                    continue
                if event.seq <= last:
                    continue
                if point.passed(event):
                    return out
                out.append(event)
                last = event.seq
    return out
