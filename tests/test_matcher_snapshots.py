"""The matcher starts from its snapshot plus the log's tail, and ignores a snapshot that does not fit the log."""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest
from aiokafka import TopicPartition

from hive_streams.codec import default_codec
from hive_streams.domain import events as e
from hive_streams.domain.model import Capability, NodeSpec
from hive_streams.kafka import now_ms, producer, read_to_end
from hive_streams.replay.matcher_check import matcher_check
from hive_streams.settings import Settings
from hive_streams.streams.alerting import Alerter
from hive_streams.streams.matcher import Matcher, input_partitions
from hive_streams.streams.matcher_state import decode, encode
from hive_streams.streams.snapshots import newest, records

from .engines import until
from .roles import SERVICE_SECRET, as_role, credentials

pytestmark = pytest.mark.stack
TIMEOUT_MS = 60_000


def history(first: int, count: int, at: int) -> list:
    """Agents that register and beat hot, and tasks that queue, run and end: `count` of each from `first`."""
    out = []
    for i in range(first, first + count):
        agent, task = f"a{i % 3}", f"acme:t{i}"
        out += [e.AgentRegistered(agent, 3 * i + 1, at, agent, (Capability("echo"),), 2),
                e.AgentHeartbeat(agent, 3 * i + 2, at, cpu_percent=95.0),
                e.TaskSubmitted(task, 1, at, "n", "acme/ann", (NodeSpec("n", "echo"),), priority=i % 2, queued=True)]
        if i % 2:
            out += [e.TaskAssigned(task, 2, at, agent, 1, ()), e.TaskCompleted(task, 3, at + 500, agent, ())]
    return out


async def send(topics, events: list) -> None:
    codec, writer = default_codec(), producer(as_role("worker"))
    family = {e.TaskEvent: topics.task_events, e.AgentEvent: topics.agent_events}
    await writer.start()
    try:
        for event in events:
            key, value, headers = codec.message(event, "/test", correlation_id=f"req-{getattr(event, 'task_id', '')}")
            topic = next(t for cls, t in family.items() if isinstance(event, cls))
            await writer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await writer.stop()


@contextlib.asynccontextmanager
async def leading(settings: Settings, topics):
    codec = default_codec()
    matcher = Matcher(codec, topics, settings, TIMEOUT_MS, alerter=Alerter(codec, topics, settings))
    task = asyncio.create_task(matcher.run())
    try:
        await until(lambda: matcher.caught_up.is_set() or task.done(), 60, "the matcher to catch up")
        assert not task.done(), task.exception()
        yield matcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def cold(settings: Settings, topics) -> Matcher:
    """What a matcher folds from the beginning, without a round."""
    matcher = Matcher(default_codec(), topics, settings, TIMEOUT_MS)
    async for batch in read_to_end(as_role("worker"), dict.fromkeys(input_partitions(topics))):
        for record in batch:
            matcher.observe(record)
    return matcher


def log_derived(matcher: Matcher):
    """The market without what rounds mark on it (proposals, reasons noted), the figures and the maps."""
    m = matcher.market
    waiting = {k: replace(w, proposed_to=None, proposed_at=0, noted="") for k, w in m.waiting.items()}
    return (m.agents, waiting, m.needs, m.records, m.tried, m.refused, m.task_seq, m.reserves, m.ends, m.slot_agents,
            matcher.stats, matcher.correlations, matcher.traces, matcher.seen, matcher.checks)


async def snapshot_written(topics) -> tuple[int, bytes]:
    snapshot_tp = TopicPartition(topics.matcher_snapshots, 0)
    for _ in range(100):
        latest = await newest(as_role("worker"), snapshot_tp)
        if latest is not None:
            return latest
        await asyncio.sleep(0.1)
    raise TimeoutError("no matcher snapshot written")


async def test_a_matcher_starts_from_its_snapshot_and_ignores_one_that_does_not_fit(kafka_bootstrap, topics, caplog):
    settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_credentials=credentials(), topic_prefix=topics.prefix,
                        service_secret=SERVICE_SECRET.decode(), partitions=topics.partitions, worker_id=topics.prefix,
                        snapshot_every_events=20, snapshot_every_seconds=3600)
    caplog.set_level("INFO", logger="hive_streams.streams")
    at = now_ms()
    first_events, tail = history(0, 12, at), history(12, 3, at)
    await send(topics, first_events)
    async with leading(settings, topics) as first:
        assert first.folded == len(first_events) >= 20
        written_at, value = await snapshot_written(topics)  # the catch-up folded more than 20: written at once
    assert any(m.startswith("matcher from the beginning (no snapshot)") for m in caplog.messages)
    await send(topics, tail)

    caplog.clear()
    async with leading(settings, topics) as second:
        assert second.folded == len(tail)  # the snapshot's events are not folded again
        truth = await cold(settings, topics)
        assert log_derived(second) == log_derived(truth)
        assert len(second.market.agents) == 3 and second.market.waiting and second.stats.ended == {"completed": 7}
        inputs = second.alerter.alerting
        assert {a: w.cpu_streak for a, w in inputs.agents.items()} == {"a0": 5, "a1": 5, "a2": 5}  # 4 + 1 in the tail
        assert set(inputs.task_seq) == {f"acme:t{i}" for i in range(0, 15, 2)}  # the live ones: the others ended
        assert set(second.market.task_seq) == set(second.stats.seen) == set(inputs.task_seq)
    assert f"matcher from snapshot at offset {written_at} of {topics.matcher_snapshots}" in " ".join(caplog.messages)

    # a snapshot that does not decode: folded from the beginning
    garbage = producer(as_role("worker"))
    await garbage.start()
    await garbage.send_and_wait(topics.matcher_snapshots, b"HSNAPM1{not json", key=b"0", partition=0)
    caplog.clear()
    async with leading(settings, topics) as third:
        assert third.folded == len(first_events) + len(tail)
        assert log_derived(third) == log_derived(truth)
    assert any("ignoring the newest matcher snapshot (manifest does not decode" in m for m in caplog.messages)

    # a snapshot that decodes, but names another event before its offset than the log has: the same
    forged = decode(value)
    task_position = next(i for i, p in enumerate(forged.positions) if p.offset > 0)
    forged.positions = tuple(replace(p, check_id="someone-else") if i == task_position else p
                             for i, p in enumerate(forged.positions))
    for key, chunk in records(0, encode(forged)):
        await garbage.send_and_wait(topics.matcher_snapshots, chunk, key=key, partition=0)
    await garbage.stop()
    caplog.clear()
    async with leading(settings, topics) as fourth:
        assert fourth.folded == len(first_events) + len(tail)
        assert log_derived(fourth) == log_derived(truth)
    assert any("ignoring the newest matcher snapshot" in m and "not someone-else" in m
               for m in caplog.messages), caplog.messages


async def replay_check(settings: Settings, topics) -> tuple[int, list]:
    """What `replay` says of the newest matcher snapshot: the matcher's fold of the log to the offsets it names."""
    kafka = as_role("analyst")
    check = await matcher_check(kafka, default_codec(), topics, settings)
    async for batch in read_to_end(kafka, dict.fromkeys(input_partitions(topics)), stops=check.stops or None):
        for record in batch:
            check.observe(record)
    return check.differences()


async def test_replay_checks_the_matcher_snapshot_against_its_own_fold_of_the_log(kafka_bootstrap, topics):
    settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_credentials=credentials(), topic_prefix=topics.prefix,
                        service_secret=SERVICE_SECRET.decode(), partitions=topics.partitions, worker_id=topics.prefix,
                        snapshot_every_events=20, snapshot_every_seconds=3600)
    at = now_ms()
    await send(topics, history(0, 12, at))
    async with leading(settings, topics):
        _, value = await snapshot_written(topics)
    await send(topics, history(12, 3, at))  # a tail after the snapshot: not part of what it is compared with

    compared, found = await replay_check(settings, topics)
    assert found == [] and compared > 40, found  # agents, tasks, figures, maps and alert inputs, key by key

    # a snapshot that fits the log (same offsets, same check events) but says something the log does not
    forged = decode(value)
    forged.market.task_seq["acme:t0"] = 9
    forged.stats.ended["completed"] += 1
    writer = producer(as_role("worker"))
    await writer.start()
    try:
        for key, chunk in records(0, encode(forged)):
            await writer.send_and_wait(topics.matcher_snapshots, chunk, key=key, partition=0)
        _, found = await replay_check(settings, topics)
        assert {(d.where, d.key, d.kind) for d in found} == {("matcher.snapshot task seq", "acme:t0", "changed"),
                                                             ("matcher.snapshot figures", "ended", "changed")}, found
        assert "9 → 1" in next(str(d) for d in found if d.key == "acme:t0")

        # one that does not fit the log at all is itself the difference
        forged.positions = tuple(replace(p, check_id="someone-else") if p.offset else p for p in forged.positions)
        for key, chunk in records(0, encode(forged)):
            await writer.send_and_wait(topics.matcher_snapshots, chunk, key=key, partition=0)
        compared, found = await replay_check(settings, topics)
        assert compared == 0 and len(found) == 1 and "does not fit the log" in found[0].detail, found
    finally:
        await writer.stop()
