"""The audit chain's heads, published on `<prefix>.audit.checkpoints` (written by the connector only).

A row altered in SQL together with every hash after it still disagrees with the head the connector
published before the change: the log, not the table, holds the anchor. A record's value is JSON:
{"topic", "partition", "offset", "hash"}, keyed by "<topic>/<partition>".
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from ..kafka import KafkaAccess, read_to_end

CONTENT_TYPE = b"application/json"
log = logging.getLogger("hive_streams.audit")


@dataclass(frozen=True)
class Head:
    topic: str
    partition: int
    offset: int
    hash: str


def encode(head: Head) -> tuple[bytes, bytes]:
    return f"{head.topic}/{head.partition}".encode(), json.dumps(asdict(head), sort_keys=True).encode()


def decode(value: bytes) -> Head:
    return Head(**json.loads(value))


class Checkpoints:
    """Gathers the heads a connector moves and publishes them every `every_rows` rows or `every_seconds`."""

    def __init__(self, producer, topic: str, every_rows: int, every_seconds: float, clock=time.monotonic):
        self.producer, self.topic = producer, topic
        self.every_rows, self.every_seconds, self.clock = every_rows, every_seconds, clock
        self.pending: dict[tuple[str, int], Head] = {}
        self.rows = 0
        self.published_at = clock()

    def moved(self, heads: dict[tuple[str, int], tuple[int, str]], rows: int) -> None:
        self.rows += rows
        for (topic, partition), (offset, digest) in heads.items():
            self.pending[(topic, partition)] = Head(topic, partition, offset, digest)

    def due(self) -> bool:
        return bool(self.pending) and (self.rows >= self.every_rows
                                       or self.clock() - self.published_at >= self.every_seconds)

    async def publish(self) -> None:
        """Sends the pending heads and waits for the broker; on failure they stay pending for the next try."""
        heads, rows = dict(self.pending), self.rows
        self.pending, self.rows, self.published_at = {}, 0, self.clock()
        try:
            acks = []
            for head in heads.values():
                key, value = encode(head)
                acks.append(await self.producer.send(self.topic, value, key=key,
                                                     headers=[("content-type", CONTENT_TYPE)]))
            for ack in acks:
                await ack
        except KafkaError:
            log.exception("publishing %d audit chain heads failed; retrying later", len(heads))
            self.pending, self.rows = {**heads, **self.pending}, self.rows + rows


async def published(kafka: KafkaAccess, topic: str) -> list[Head]:
    """Every head ever published, in order."""
    out = []
    async for records in read_to_end(kafka, {TopicPartition(topic, 0): None}):
        out += [decode(r.value) for r in records]
    return out
