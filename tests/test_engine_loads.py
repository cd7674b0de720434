"""A partition that fails to load is asked for again, later each time; an assignment over command topics whose
partition counts differ is not taken (no broker: the engine's own loop)."""
from __future__ import annotations

import asyncio
import types

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from hive_streams.streams import engine as engine_mod
from hive_streams.streams import ownership
from hive_streams.streams.engine import Engine
from hive_streams.streams.writers import Writer
from hive_streams.topics import Topics

TOPICS = Topics("unit", 2)


class _Consumer:
    def __init__(self):
        self.rejoins: list[float] = []
        self.resumed: list[TopicPartition] = []
        self._coordinator = types.SimpleNamespace(request_rejoin=lambda: self.rejoins.append(asyncio.get_running_loop().time()))

    def resume(self, *tps):
        self.resumed += tps

    def pause(self, *tps):
        self.paused = getattr(self, "paused", set()) | set(tps)

    def partitions_for_topic(self, topic):
        return set(range(self.counts[topic]))

    @property
    def _client(self):
        async def force_metadata_update():
            self.refreshed = getattr(self, "refreshed", 0) + 1
        return types.SimpleNamespace(force_metadata_update=force_metadata_update)


def _engine(monkeypatch, outcomes: dict) -> Engine:
    """An engine whose loads fail or succeed as `outcomes` says, a list a partition, one outcome a load."""
    monkeypatch.setattr(ownership, "LOAD_RETRY", (0.05, 0.1))
    monkeypatch.setattr(ownership.random, "uniform", lambda a, b: 1.0)
    engine = object.__new__(Engine)
    engine.topics, engine.consumer, engine.writers, engine.loading, engine.families = TOPICS, _Consumer(), {}, {}, {}
    engine.matcher_task, engine.rejoining, engine.load_retry = None, None, ownership.LOAD_RETRY[0]
    engine.load_failed, engine.stopping = False, False
    engine.settings = types.SimpleNamespace(session_timeout_seconds=6)

    async def own(tp, writer):
        outcome = outcomes[tp].pop(0)
        if outcome:
            raise outcome
    monkeypatch.setattr(engine, "_own", own)
    return engine


async def _load_all(engine: Engine, tps) -> None:
    """One assignment's loads, as `assigned` starts them."""
    writer = Writer((0, 1), None, "g")
    engine.loading = {tp: None for tp in tps}
    for tp in tps:
        await engine._load(tp, writer)


async def test_a_partition_that_keeps_failing_to_load_is_asked_for_again_later_each_time(monkeypatch):
    bad, good = TopicPartition(TOPICS.task_commands, 0), TopicPartition(TOPICS.task_commands, 1)
    outcomes = {bad: [KafkaError("offline")] * 3 + [None], good: [None] * 4}
    engine, loop = _engine(monkeypatch, outcomes), asyncio.get_running_loop()
    delays = []
    for _ in range(3):  # the other partition loads each time: that alone must not make the wait short again
        failed_at = loop.time()
        await engine.assigned(set())  # what the rejoin brings: a new assignment
        await _load_all(engine, [bad, good])
        await engine.rejoining
        delays.append(engine.consumer.rejoins[-1] - failed_at)
    assert len(engine.consumer.rejoins) == 3
    assert delays[0] >= 0.05 and delays[1] >= 0.1 and delays[2] >= 0.1 and engine.load_retry == 0.1
    await engine.assigned(set())
    await _load_all(engine, [bad, good])
    assert engine.load_retry == 0.05 and engine.rejoining is None  # all taken: the next failure waits the least
    assert engine.consumer.resumed.count(bad) == 1 and engine.consumer.resumed.count(good) == 4


async def test_a_rejoin_waiting_is_dropped_by_a_new_assignment_and_none_is_asked_for_once_stopping(monkeypatch):
    tp = TopicPartition(TOPICS.task_commands, 0)
    engine = _engine(monkeypatch, {tp: [KafkaError("offline"), KafkaError("offline")]})
    await _load_all(engine, [tp])
    waiting = engine.rejoining
    await engine.assigned(set())  # a rebalance someone else asked for came first
    await asyncio.sleep(0.15)
    assert waiting.cancelled() and engine.consumer.rejoins == []
    engine.stopping = True
    await _load_all(engine, [tp])
    assert engine.rejoining is None and engine.consumer.rejoins == []


async def test_an_assignment_over_command_topics_of_different_partition_counts_is_held_paused(monkeypatch, caplog):
    engine = _engine(monkeypatch, {})
    engine.families = {topic: engine_mod.Family(None, f"{topic}.events", n, "") for topic, n in
                       ((TOPICS.task_commands, 2), (TOPICS.agent_commands, 2), (TOPICS.ledger_commands, 1))}
    # agent.commands grown to 4 (by hand, or half-way through growing them all): with 2 workers the range
    # assignment gives this one task.commands[1] and agent.commands[2], [3]; the other one agent.commands[1]
    engine.consumer.counts = {TOPICS.task_commands: 2, TOPICS.agent_commands: 4, TOPICS.ledger_commands: 1}
    mine = {TopicPartition(TOPICS.task_commands, 1), TopicPartition(TOPICS.agent_commands, 2),
            TopicPartition(TOPICS.agent_commands, 3)}
    made = []
    monkeypatch.setattr(engine, "_writer", lambda span: made.append(span))
    with caplog.at_level("ERROR", logger=ownership.log.name):
        await engine.assigned(mine)
    assert made == [] and engine.loading == {} and engine.consumer.paused == mine
    assert engine.consumer.refreshed == 1  # judged again on fresh metadata before holding
    assert f"{TOPICS.agent_commands}: 4, {TOPICS.task_commands}: 2" in caplog.text
    assert TOPICS.ledger_commands not in caplog.text  # one partition by design
    await engine.assigned(mine)  # another rebalance before the timer fired: that rejoin is dropped, one is asked for
    assert engine.consumer.refreshed == 2 and made == []
    await engine.rejoining  # the counts may be put right meanwhile: it asks for its partitions again
    assert len(engine.consumer.rejoins) == 1
    engine.consumer.counts[TOPICS.task_commands] = 4  # grown too: the rebalance that follows is taken
    monkeypatch.setattr(engine, "_load", lambda tp, writer: asyncio.sleep(0))
    await engine.assigned(mine)
    assert made == [(1, 3)] and set(engine.loading) == mine and engine.consumer.refreshed == 2
    await asyncio.gather(*engine.loading.values())


async def test_an_assignment_whose_numbers_form_no_range_is_held_though_the_counts_look_equal(monkeypatch, caplog):
    engine = _engine(monkeypatch, {})
    engine.families = {TOPICS.task_commands: engine_mod.Family(None, "e", 2, "")}
    engine.consumer.counts = {TOPICS.task_commands: 4}  # this worker's view; the leader assigned from another
    monkeypatch.setattr(engine, "_writer", lambda span: pytest.fail("no writer for numbers that form no range"))
    with caplog.at_level("ERROR", logger=ownership.log.name):
        await engine.assigned({TopicPartition(TOPICS.task_commands, 0), TopicPartition(TOPICS.task_commands, 2)})
    assert "partition numbers [0, 2] are not one range" in caplog.text and engine.loading == {}
    assert engine.consumer.refreshed == 1  # this worker's view may be the stale one
    await engine.rejoining
    assert len(engine.consumer.rejoins) == 1
