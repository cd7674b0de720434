"""Log records as feeds see them: decoded once, rendered once, duplicates (same aggregate/seq) left out."""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

from aiokafka import ConsumerRecord, TopicPartition

from ..codec import Codec, aggregate_id
from ..codec.avro import to_record
from ..exceptions import CodecError

LOOKBACK = 1000  # records per partition read before a start position only to recognise duplicates


@dataclass(frozen=True, slots=True)
class Item:
    tp: TopicPartition
    offset: int
    event: object
    kind: str  # the event's type name: the SSE `event:`
    data: str  # the event as JSON: the SSE `data:`


def render(event) -> dict:
    return {"type": type(event).__name__, **to_record(event)}


class SeqMemory:
    """The highest seq seen per aggregate, for the most recently seen `size` aggregates."""

    def __init__(self, size: int = 200_000):
        self.size = size
        self.seen: OrderedDict[tuple[str, str], int] = OrderedDict()

    def fresh(self, topic: str, aggregate: str, seq: int) -> bool:
        key = (topic, aggregate)
        last = self.seen.get(key, 0)
        self.seen[key] = max(last, seq)
        self.seen.move_to_end(key)
        if len(self.seen) > self.size:
            self.seen.popitem(last=False)
        return seq > last


def decode(codec: Codec, record: ConsumerRecord, memory: SeqMemory) -> Item | None:
    """None for an undecodable record (the worker dead-letters those) or a duplicate event."""
    try:
        event = codec.decode(record.value)
        aggregate = aggregate_id(event)
    except (CodecError, TypeError):
        return None
    if not memory.fresh(record.topic, aggregate, event.seq):
        return None
    return Item(TopicPartition(record.topic, record.partition), record.offset, event, type(event).__name__,
                json.dumps(render(event), separators=(",", ":")))


def lookback_start(beginning: int, start: int, lookback: int) -> tuple[int, bool]:
    """Where to begin reading so the records before `start` seed the duplicate memory.

    Returns (offset, complete): complete when the whole partition before `start` is read.
    """
    first = max(beginning, start - lookback)
    return first, first == beginning
