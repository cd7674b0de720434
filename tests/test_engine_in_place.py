"""The engine's deciding loop without a broker: follow-ups decided in place, and a batch an abort sent back."""
from __future__ import annotations

import asyncio
import json
import types

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain import trigger as t
from hive_streams.domain.definition import parse_task
from hive_streams.kafka.principal import principal_header
from hive_streams.streams import engine as engine_mod
from hive_streams.streams.deciders import PartitionState, task_aggregate, trigger_aggregate
from hive_streams.streams.engine import Engine, Family
from hive_streams.streams.triggers import TriggerWatch
from hive_streams.streams.writers import Owned, Transaction, Writer
from hive_streams.topics import Topics, partition_for

from .consumed import Msg

codec = default_codec()
DEFINITION = {"name": "n", "nodes": [{"id": "a", "kind": "echo", "value": "x"}]}


def read(topic: str, partitions: int, offset: int, command, principal: str) -> Msg:
    key, value, headers = codec.message(command, "/test")
    return Msg(topic, partition_for(key, partitions), offset, key, value, headers + [principal_header(principal)])


def engine_over(topics: Topics, families: dict, writer: Writer) -> Engine:
    """An engine owning every partition of `families` through `writer`, with no Kafka client."""
    engine = object.__new__(Engine)
    engine.settings = types.SimpleNamespace(local_follow_ups=1, snapshot_every_events=10**9,
                                            snapshot_every_seconds=1e9)
    engine.topics, engine.families, engine.commit_interval, engine.decided = topics, families, 0.0, 0
    engine.owned = {}
    for topic, family in families.items():
        for p in range(family.partitions):
            state = PartitionState(codec, family.aggregate, topics, family.events_topic, p, family.partitions)
            owned = engine.owned[TopicPartition(topic, p)] = Owned(TopicPartition(topic, p), state, writer, None)
            writer.members[owned.tp] = owned
    return engine


def test_triggers_firing_each_other_are_decided_in_place_a_few_levels_deep_only(monkeypatch):
    """Two triggers on every submission of their tenant: each task fires the other, without end. In place, one
    batch would never end; the chain goes on through the log past a few levels."""
    topics, partitions = Topics("unit", 4), 4
    watch = TriggerWatch(None, codec, topics)
    creations = [t.CreateTrigger(tid, f"create-{tid}", 0, "acme/ops", "TaskSubmitted", (), "", 1, 0, 0,
                                 json.dumps({"task": DEFINITION})) for tid in ("acme:a", "acme:b")]
    for creation in creations:
        for event in t.decide(creation, t.TriggerState(creation.trigger_id), 0):
            watch.observe(event)
    families = {topics.task_commands: Family(task_aggregate(0, watch.matches), topics.task_events, partitions, ""),
                topics.trigger_commands: Family(trigger_aggregate(), topics.trigger_events, partitions, "")}
    writer = Writer((0, partitions - 1), None, "g")
    engine = engine_over(topics, families, writer)
    for creation in creations:
        msg = read(topics.trigger_commands, partitions, 0, creation, "acme/ops")
        owned = engine.owned[TopicPartition(msg.topic, msg.partition)]
        owned.state.apply(owned.state.decide([msg], 1))
    seed = read(topics.task_commands, partitions, 0, c.SubmitTask.of("acme:seed", "seed", 5, "acme/ops",
                                                                     parse_task(DEFINITION, 0)), "acme/ops")
    source = engine.owned[TopicPartition(seed.topic, seed.partition)]
    source.txn = Transaction(0)
    source.state.decide([seed], 10, into=source.txn.decided)
    parts, decisions, decide = {source: 0}, [], PartitionState.decide_follow_up

    def counted(state, *args):
        decisions.append(state)
        assert len(decisions) < 1000, "still deciding in place: the batch would never end"
        return decide(state, *args)
    monkeypatch.setattr(PartitionState, "decide_follow_up", counted)
    engine._follow_up_in_place(writer, source, 0, 10, parts)
    records = [r for owned in parts for r in owned.txn.decided.records]
    submitted = {r.key for r in records if r.topic == topics.task_events}
    assert 1 < len(submitted) <= 2 ** engine_mod.IN_PLACE_DEPTH  # each task fires both, every second level
    left = [r for r in records if r.topic == topics.trigger_commands or r.topic == topics.task_commands]
    assert left  # the last level's commands are written, to be decided when read
    pinned = [r for r in left if r.partition is not None]  # each decided in place goes where it was decided
    assert pinned and all(r.partition == partition_for(r.key, partitions) for r in pinned)
    assert any(r.partition is None for r in left)  # the last level's: sent by their key, decided when read


class _Producer:
    def __init__(self, calls: list):
        self.calls = calls

    async def begin_transaction(self):
        self.calls.append("begin")

    async def send_offsets_to_transaction(self, offsets, group):
        self.calls.append(("offsets", {tp.partition: offset for tp, offset in offsets.items()}))

    async def commit_transaction(self):
        self.calls.append("commit")

    async def abort_transaction(self):
        self.calls.append("abort")


class _Consumer:
    def __init__(self, calls: list):
        self.calls = calls

    def seek(self, tp, offset):
        self.calls.append(("seek", offset))

    def resume(self, *tps):
        self.calls += [("resume", tp.partition) for tp in tps if self.record_resumes]

    record_resumes = False


async def test_a_batch_taken_before_an_abort_sent_the_reading_back_is_not_decided():
    """Commands read back write nothing, so no transaction begins; the partition's loop then waits for the
    writer with the next batch in its inbox, and the writer's transaction fails. The reading goes back to the
    first command of the failed transaction: the batch that arrived meanwhile must not be decided, nor its
    offset committed."""
    topics, calls = Topics("unit", 1), []
    family = Family(task_aggregate(), topics.task_events, 1, "")
    writer = Writer((0, 0), _Producer(calls), "g")
    engine = engine_over(topics, {topics.task_commands: family}, writer)
    engine.consumer = _Consumer(calls)
    owned = engine.owned[TopicPartition(topics.task_commands, 0)]

    def submit(offset: int, n: int) -> Msg:
        return read(topics.task_commands, 1, offset, c.SubmitTask.of(f"acme:t{n}", f"submit-{n}", 1, "acme/alice",
                                                                     parse_task(DEFINITION, 0)), "acme/alice")
    owned.state.apply(owned.state.decide([submit(0, 0)], 1))
    owned.driver = asyncio.create_task(engine._drive(owned))
    try:
        owned.inbox += [submit(offset, 0) for offset in range(40, 50)]  # the same command again: nothing written
        owned.wake.set()
        await asyncio.sleep(0.05)
        assert owned.txn is not None and owned.txn.first_offset == 40 and calls == []
        async with writer.lock:  # another partition of the writer decides meanwhile...
            owned.inbox += [submit(offset, offset) for offset in range(50, 61)]
            owned.wake.set()
            await asyncio.sleep(0.05)  # ...while this loop waits for the writer with 50..60 in its inbox
            await engine._failed(writer, KafkaError("the transaction failed"))
        await asyncio.sleep(0.1)
        assert calls == ["abort", ("seek", 40)] and owned.txn is None and owned.state.decided_to == 0
    finally:
        owned.driver.cancel()


async def test_an_abort_resumes_a_partition_it_sends_back_even_one_paused_for_a_full_inbox():
    """Its fetching paused at INBOX_LIMIT, a partition whose inbox an abort empties would get nothing to wake its
    loop, and would wait for the next rebalance."""
    topics, calls = Topics("unit", 1), []
    family = Family(task_aggregate(), topics.task_events, 1, "")
    writer = Writer((0, 0), _Producer(calls), "g")
    engine = engine_over(topics, {topics.task_commands: family}, writer)
    engine.consumer = _Consumer(calls)
    engine.consumer.record_resumes = True
    owned = engine.owned[TopicPartition(topics.task_commands, 0)]
    owned.txn = Transaction(40)  # its part of the transaction that fails
    owned.inbox = [read(topics.task_commands, 1, offset, c.CancelTask("acme:t", f"c{offset}", 1, ""), "acme/alice")
                   for offset in range(41, 41 + engine_mod.INBOX_LIMIT)]
    await engine._failed(writer, KafkaError("the transaction failed"))
    assert calls == ["abort", ("seek", 40), ("resume", 0)] and owned.inbox == [] and owned.txn is None
