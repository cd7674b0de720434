"""Sends a decided batch's records as one aiokafka batch a partition.

`AIOKafkaProducer.send` costs, for each record, a metadata check, a partition look-up and a future that
the reply resolves; a decider writes hundreds of records a transaction, most of them to one partition.
Here each partition's records go into one `BatchBuilder` (a new one when it is full), sent with
`send_batch`: the reply resolves one future a batch, and a record's offset is the batch's base offset
plus its place in it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..topics import partitioner


@dataclass
class Sent:
    """One batch on its way: `ack` resolves to its metadata (`offset` is its first record's)."""
    ack: object
    topic: str
    partition: int
    count: int


async def send_records(producer, records) -> list[Sent]:
    """Sends `records` (each with topic, key, value, headers and partition, or None for the key's default
    partition) in their order within each partition; returns the batches in the order they were sent."""
    groups: dict[tuple[str, int], list] = {}
    known: dict[str, list[int]] = {}
    for record in records:
        partition = record.partition
        if partition is None:
            every = known.get(record.topic)
            if every is None:
                every = known[record.topic] = sorted(await producer.partitions_for(record.topic))
            partition = partitioner(record.key, every, every)
        groups.setdefault((record.topic, partition), []).append(record)
    sent = []
    for (topic, partition), group in groups.items():
        builder, count = producer.create_batch(), 0
        for record in group:
            if builder.append(timestamp=None, key=record.key, value=record.value, headers=record.headers) is None:
                sent.append(Sent(await producer.send_batch(builder, topic, partition=partition), topic, partition,
                                 count))
                builder, count = producer.create_batch(), 0
                if builder.append(timestamp=None, key=record.key, value=record.value, headers=record.headers) is None:
                    raise ValueError(f"a record of {len(record.value)} bytes does not fit in a batch for {topic}")
            count += 1
        sent.append(Sent(await producer.send_batch(builder, topic, partition=partition), topic, partition, count))
    return sent


def last_offset(sent: list[Sent], topic: str, partition: int) -> int | None:
    """The offset of the last record sent to (topic, partition), once its batch is acknowledged."""
    for batch in reversed(sent):
        if batch.topic == topic and batch.partition == partition and batch.count:
            return batch.ack.result().offset + batch.count - 1
    return None
