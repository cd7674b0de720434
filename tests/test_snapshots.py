"""A decider starts from its snapshot plus the log's tail, and ignores a snapshot that does not fit the log."""
from __future__ import annotations

import asyncio
import logging


import pytest
from aiokafka import TopicPartition

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain.ledger import LEDGER_ID
from hive_streams.kafka import CommandSender, now_ms, producer, read_to_end
from hive_streams.kafka.principal import principal_header
from hive_streams.settings import Settings
from hive_streams.domain.model import NodeSpec
from hive_streams.streams.deciders import PartitionState, ledger_aggregate, task_aggregate

from .engines import owns_all, running, until
from .roles import SERVICE_SECRET, as_role, credentials, service_sealer

pytestmark = pytest.mark.stack
AS_API = [principal_header("acme/admin")]  # deposits name the principal that authorised them, as the API does


async def full_fold(bootstrap, topics) -> PartitionState:
    state = PartitionState(default_codec(), ledger_aggregate(), topics, topics.ledger_events, 0, 1)
    async for records in read_to_end(as_role("worker"), {TopicPartition(topics.ledger_events, 0): None}):
        for record in records:
            state.observe(record)
    return state


def ledger_of(engine, topics):
    return engine.owned[TopicPartition(topics.ledger_commands, 0)].state


def every_partition(engine) -> int:
    return sum(family.partitions for family in engine.families.values())


async def test_restart_from_snapshot_equals_a_full_fold_and_a_bad_snapshot_is_ignored(kafka_bootstrap, topics, caplog):
    settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_credentials=credentials(), topic_prefix=topics.prefix,
                        service_secret=SERVICE_SECRET.decode(),
                        partitions=topics.partitions, worker_id=topics.prefix, snapshot_every_events=5)
    sender = CommandSender(as_role("api"), topics, default_codec(), "/test", sealer=service_sealer())  # deposits come from the API
    await sender.start()
    try:
        async with running(settings) as first:
            await until(lambda: owns_all(first), 60, "the engine to own every partition")
            for i in range(12):
                await sender.send_and_wait(c.DepositFunds(LEDGER_ID, f"dep-{i}", i, f"acme/u{i % 3}", 100 + i, "r"), extra_headers=AS_API)
            await until(lambda: first.decided >= 12, 30, "twelve deposits")
        caplog.clear()
        caplog.set_level("INFO", logger="hive_streams.streams")  # the engine and its ownership
        async with running(settings) as second:
            await until(lambda: owns_all(second), 60, "the second engine to own every partition")
            restored = ledger_of(second, topics)
        assert any("from snapshot at events offset" in r.getMessage() and "ledger" in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records]
        truth = await full_fold(kafka_bootstrap, topics)
        assert restored.states == truth.states and restored.applied == truth.applied
        assert restored.decided_to == truth.decided_to == 11

        # a snapshot that does not decode is ignored: the partition is folded from the beginning
        garbage = producer(as_role("worker"))
        await garbage.start()
        await garbage.send_and_wait(topics.snapshots_of(topics.ledger_events), b"HSNAPM1{not json", key=b"0",
                                    partition=0)
        await garbage.stop()
        caplog.clear()
        async with running(settings) as third:
            await until(lambda: owns_all(third), 60, "the third engine to own every partition")
            refolded = ledger_of(third, topics)
            await sender.send_and_wait(c.DepositFunds(LEDGER_ID, "dep-0", 99, "acme/u0", 100, "r"), extra_headers=AS_API)  # a repeat
            await sender.send_and_wait(c.DepositFunds(LEDGER_ID, "dep-new", 99, "acme/u0", 7, "r"), extra_headers=AS_API)
            await until(lambda: third.decided >= 1, 30, "the new deposit")
        assert any("ignoring the newest snapshot" in r.getMessage() for r in caplog.records)
        before = truth.states[b"main"].available
        assert refolded.states[b"main"].available == {**before, "acme/u0": before["acme/u0"] + 7,
                                                      "external": before["external"] - 7}
        assert third.decided == 1  # the repeated command id emitted nothing
    finally:
        await sender.stop()


async def until_committed(engine, tp: TopicPartition, offset: int, timeout: float = 30) -> None:
    """Until the engine's group has committed `tp` to `offset`: every command before it is decided."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (await engine.consumer.committed(tp) or 0) < offset:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{tp} not committed to {offset}")
        await asyncio.sleep(0.05)


async def fold_tasks(topics) -> dict:
    states = {}
    for p in range(topics.partitions):
        state = PartitionState(default_codec(), task_aggregate(), topics, topics.task_events, p, topics.partitions)
        async for records in read_to_end(as_role("worker"), {TopicPartition(topics.task_events, p): None}):
            for record in records:
                state.observe(record)
        states.update(state.states)
    return states


async def test_finished_tasks_stay_encoded_after_a_restart_until_a_command_needs_them(kafka_bootstrap, topics, caplog):
    caplog.set_level(logging.INFO, logger="hive_streams.streams")  # on a failure: takes, revokes, snapshots
    settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_credentials=credentials(), topic_prefix=topics.prefix,
                        service_secret=SERVICE_SECRET.decode(), partitions=topics.partitions, worker_id=topics.prefix,
                        snapshot_every_events=1)
    sender = CommandSender(as_role("api"), topics, default_codec(), "/test", sealer=service_sealer())
    await sender.start()

    def submit(i: int, deadline_at: int | None):
        return c.SubmitTask(f"acme:t{i}", f"submit-{i}", now_ms(), "n", "acme/ann", (NodeSpec("a", "echo"),),
                            deadline_at=deadline_at)
    as_ann = [principal_header("acme/ann")]
    try:
        async with running(settings) as first:
            await until(lambda: owns_all(first), 60, "the engine to own every partition")
            for i in range(8):  # six rejected (their deadline has passed), two waiting for an agent
                await sender.send_and_wait(submit(i, 1 if i < 6 else None), extra_headers=as_ann)
            tasks = [first.owned[TopicPartition(topics.task_commands, p)].state for p in range(topics.partitions)]
            await until(lambda: sum(s.count() for s in tasks) == 8, 30, "eight tasks decided")
        async with running(settings) as second:
            await until(lambda: owns_all(second), 60, "the second engine to own every partition")
            parts = [second.owned[TopicPartition(topics.task_commands, p)].state for p in range(topics.partitions)]
            asleep = {k for s in parts for k in s.asleep}
            assert asleep == {f"acme:t{i}".encode() for i in range(6)}
            assert {k for s in parts for k in s.states} == {b"acme:t6", b"acme:t7"}
            repeat = await sender.send_and_wait(submit(0, 1), extra_headers=as_ann)  # a repeated command id
            await until_committed(second, TopicPartition(topics.task_commands, repeat.partition), repeat.offset + 1)
            assert {k for s in parts for k in s.asleep} == asleep  # decided, and nothing decoded for it
            await sender.send_and_wait(c.CancelTask("acme:t6", "cancel-6", now_ms()), extra_headers=as_ann)
            # the cancelled task is finished too: after the next snapshot it is kept only encoded, whatever
            # commands that change nothing (a NoteWaiting from the matcher's first round) arrive after it
            await until(lambda: any(b"acme:t6" in s.asleep for s in parts), 30, "the cancelled task put to sleep")
            assert {k for s in parts for k in s.asleep} == asleep | {b"acme:t6"}
            # a command that changes nothing reads a sleeping task and leaves it asleep (as the matcher's late
            # NoteWaiting for the cancelled task would)
            late = await sender.send_and_wait(c.CancelTask("acme:t1", "cancel-1", now_ms()), extra_headers=as_ann)
            await until_committed(second, TopicPartition(topics.task_commands, late.partition), late.offset + 1)
            assert {k for s in parts for k in s.asleep} == asleep | {b"acme:t6"}
            # one that changes it is decided on its decoded state, and its events are in the log
            await sender.send_and_wait(c.WatchTask("acme:t1", "watch-1", now_ms(), "acme:t7"), extra_headers=as_ann)

            def kept(key: bytes):
                for s in parts:
                    if key in s.states or key in s.asleep:
                        return s.states.get(key) or default_codec().decode(s.asleep[key])
            await until(lambda: kept(b"acme:t1").watchers == ("acme:t7",), 30, "the finished task watched")
            woken = {k: v for s in parts for k, v in s.wake_all().items()}
        assert woken == await fold_tasks(topics)
    finally:
        await sender.stop()
