"""A worker whose command topics have different partition counts takes none of their partitions: with more than one
worker, the range assignment would give it numbers that form no one range, or a range that meets another worker's,
and their writers would fence each other. It says so, naming the counts, and decides nothing."""
from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.admin import NewPartitions

from hive_streams.kafka.clients import admin as admin_client
from hive_streams.settings import Settings
from hive_streams.streams import ownership

from .engines import running, until
from .roles import SERVICE_SECRET, as_role, credentials

pytestmark = pytest.mark.stack


async def until_grown(admin, topic: str, count: int) -> None:
    """Until the broker's metadata shows the topic with `count` partitions."""
    for _ in range(150):
        (described,) = await admin.describe_topics([topic])
        if len(described["partitions"]) == count:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{topic} still not at {count} partitions")


async def test_a_worker_over_command_topics_of_different_partition_counts_decides_nothing(kafka_bootstrap, topics,
                                                                                         caplog):
    admin = admin_client(as_role("admin"))
    await admin.start()
    try:
        await admin.create_partitions({topics.agent_commands: NewPartitions(topics.partitions + 2)})
        await until_grown(admin, topics.agent_commands, topics.partitions + 2)
    finally:
        await admin.close()
    settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_credentials=credentials(), topic_prefix=topics.prefix,
                        service_secret=SERVICE_SECRET.decode(), partitions=topics.partitions, worker_id=topics.prefix,
                        session_timeout_seconds=6)
    with caplog.at_level(logging.ERROR, logger=ownership.log.name):
        async with running(settings) as engine:
            await until(lambda: engine.consumer is not None and engine.consumer.assignment(), 60, "an assignment")
            await asyncio.sleep(2)  # what a load would take: none must begin
            assigned = engine.consumer.assignment()
            assert engine.owned == {} and engine.loading == {} and engine.writers == {}
            assert {tp for tp in assigned if tp.topic in engine.families} <= engine.consumer.paused()
    assert f"{topics.agent_commands}: {topics.partitions + 2}" in caplog.text
    assert f"{topics.task_commands}: {topics.partitions}" in caplog.text
