"""A decided batch sent as one aiokafka batch a partition: every record lands where `send` would put it, in
order, and the offset the engine records for the last event is the one the broker gave it."""
from __future__ import annotations

import pytest

from hive_streams.kafka import transactional_producer
from hive_streams.kafka.batches import last_offset, send_records
from hive_streams.streams.deciders import Out
from hive_streams.topics import partition_for

from .eventlog import read_all
from .roles import as_role

pytestmark = pytest.mark.stack


async def test_records_land_in_order_on_their_partitions_and_the_last_offset_is_the_brokers(kafka_bootstrap, topics):
    events, commands = topics.task_events, topics.agent_commands
    value = b"v" * 3000  # 600 of them overflow one 1 MiB batch: the sender starts another
    records = [Out(events, f"t{i % 3}".encode(), value + str(i).encode(), [("ce_id", f"e{i}".encode())], 2)
               for i in range(600)]
    records += [Out(commands, f"agent-{i}".encode(), str(i).encode(), [("n", str(i).encode())]) for i in range(40)]
    producer = transactional_producer(as_role("worker"), f"{topics.prefix}.batches")
    await producer.start()
    try:
        await producer.begin_transaction()
        first = await send_records(producer, records[:300])
        later = await send_records(producer, records[300:])
        await producer.commit_transaction()
    finally:
        await producer.stop()
    sent = first + later
    assert sum(batch.count for batch in sent if batch.topic == events) == 600
    assert len([batch for batch in sent if batch.topic == events]) >= 2  # it did overflow

    written = [r for r in await read_all(kafka_bootstrap, events, topics.partitions) if r.partition == 2]
    assert [r.value for r in written] == [r.value for r in records[:600]]
    assert [r.header("ce_id") for r in written] == [f"e{i}" for i in range(600)]
    assert last_offset(sent, events, 2) == written[-1].offset
    assert last_offset(sent, events, 0) is None

    routed = await read_all(kafka_bootstrap, commands, topics.partitions)
    assert sorted(int(r.value) for r in routed) == list(range(40))
    for r in routed:
        assert r.partition == partition_for(r.key, topics.partitions)  # the default partitioner's choice
    for partition in {r.partition for r in routed}:
        mine = [int(r.value) for r in routed if r.partition == partition]
        assert mine == sorted(mine)  # in the order they were decided
