"""A partition that fails to load is asked for again, later each time (no broker: the engine's own loop)."""
from __future__ import annotations

import asyncio
import types

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from hive_streams.streams import engine as engine_mod
from hive_streams.streams.engine import Engine
from hive_streams.streams.writers import Writer
from hive_streams.topics import Topics


class _Consumer:
    def __init__(self):
        self.rejoins: list[float] = []
        self.resumed: list[TopicPartition] = []
        self._coordinator = types.SimpleNamespace(request_rejoin=lambda: self.rejoins.append(asyncio.get_running_loop().time()))

    def resume(self, *tps):
        self.resumed += tps


async def test_a_partition_that_failed_to_load_is_asked_for_again_later_each_time(monkeypatch):
    monkeypatch.setattr(engine_mod, "LOAD_RETRY", (0.05, 0.1))
    topics = Topics("unit", 1)
    engine = object.__new__(Engine)
    engine.topics, engine.consumer, engine.writers, engine.loading = topics, _Consumer(), {}, {}
    engine.matcher_task, engine.rejoining, engine.load_retry = None, None, engine_mod.LOAD_RETRY[0]
    tp, writer, outcomes = TopicPartition(topics.task_commands, 0), Writer((0, 0), None, "g"), []

    async def own(tp, writer):
        outcome = outcomes.pop(0)
        if outcome:
            raise outcome
    monkeypatch.setattr(engine, "_own", own)
    loop = asyncio.get_running_loop()

    outcomes[:] = [KafkaError("fencing timed out"), KafkaError("again")]
    failed_at = loop.time()
    await engine._load(tp, writer)
    await engine._load(tp, writer)  # a second failure while the first rejoin waits asks for no second one
    await engine.rejoining
    assert len(engine.consumer.rejoins) == 1 and engine.consumer.rejoins[0] - failed_at >= 0.05
    assert engine.consumer.resumed == [] and engine.load_retry == 0.1  # the next waits longer

    outcomes[:] = [KafkaError("still")]
    failed_at = loop.time()
    await engine._load(tp, writer)
    await engine.rejoining
    assert len(engine.consumer.rejoins) == 2 and engine.consumer.rejoins[1] - failed_at >= 0.1
    assert engine.load_retry == 0.1  # no longer than the most

    outcomes[:] = [None]
    await engine._load(tp, writer)
    assert engine.consumer.resumed == [tp] and engine.load_retry == 0.05  # taken: the next failure waits the least
