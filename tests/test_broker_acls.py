"""The launched broker keeps each process to what it must do: SASL/SCRAM logins, ACLs per role."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (ClusterAuthorizationFailedError, GroupAuthorizationFailedError, KafkaError,
                             TopicAuthorizationFailedError)

from hive_streams.kafka.clients import admin, producer

from .roles import as_role

pytestmark = pytest.mark.stack
REFUSED = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError)


def may_write(topics) -> dict[str, set[str]]:
    """Stated here on its own, not derived from the grants: what each role's process writes today."""
    commands = {topics.task_commands, topics.agent_commands, topics.ledger_commands, topics.execution_commands}
    return {
        "worker": set(topics.layout()) - {topics.audit_checkpoints, topics.blobs},  # events, snapshots, dead letters, follow-ups
        "api": commands | {topics.schedule_commands, topics.trigger_commands},
        "executor": {topics.task_commands, topics.agent_commands, topics.blobs},  # reports, large outputs
        "producer": {topics.task_commands},
        "connector": {topics.audit_checkpoints, topics.deadletter},  # the chain's heads, strays of event topics
        "analyst": set(),
    }


async def write_each(role: str, names) -> dict[str, object]:
    """topic -> "ok" or the exception the write raised, through one producer of the role."""
    writer = producer(as_role(role), request_timeout_ms=10_000)
    out = {}
    try:
        try:
            await writer.start()
        except ClusterAuthorizationFailedError as exc:  # an idempotent writer that may write no topic at all
            return {name: exc for name in names}
        for name in sorted(names):
            try:
                await asyncio.wait_for(writer.send_and_wait(name, b"probe", key=b"probe"), 15)
                out[name] = "ok"
            except KafkaError as exc:
                out[name] = exc
    finally:
        await writer.stop()
    return out


@pytest.mark.parametrize("role", ["worker", "api", "executor", "producer", "connector", "analyst"])
async def test_each_role_writes_exactly_its_topics(topics, role):
    allowed = may_write(topics)[role]
    results = await write_each(role, topics.layout())
    assert {name for name, result in results.items() if result == "ok"} == allowed
    refused = {name: result for name, result in results.items() if result != "ok"}
    assert all(isinstance(exc, REFUSED) for exc in refused.values()), refused


async def test_an_executor_cannot_write_events_or_ledger_commands(topics):
    results = await write_each("executor", [topics.task_events, topics.ledger_commands, topics.task_commands])
    assert isinstance(results[topics.task_events], TopicAuthorizationFailedError)
    assert isinstance(results[topics.ledger_commands], TopicAuthorizationFailedError)
    assert results[topics.task_commands] == "ok"


async def _read(role: str, topic: str) -> tuple[list[bytes], bool]:
    """The records of partition 0 of `topic` read as `role` without a group (as an executor reads), and whether
    the broker refused the topic to it (the consumer then waits, logging the refusal: it raises nothing)."""
    reader = AIOKafkaConsumer(**as_role(role).options(), auto_offset_reset="earliest", isolation_level="read_committed")
    await reader.start()
    try:
        reader.assign([TopicPartition(topic, 0)])
        got = []
        for _ in range(10):
            batch = await reader.getmany(timeout_ms=1000)
            got += [r.value for records in batch.values() for r in records]
            if got:
                break
        await reader._client.force_metadata_update()
        return got, topic in reader._client.cluster.unauthorized_topics
    finally:
        await reader.stop()


async def test_an_executor_reads_its_inbox_and_never_the_task_events(topics):
    worker = producer(as_role("worker"))
    await worker.start()
    await worker.send_and_wait(topics.task_events, b"someone's task", key=b"t1", partition=0)
    await worker.send_and_wait(topics.executor_inbox, b"sealed", key=b"ag", partition=0)
    await worker.stop()
    assert await _read("executor", topics.executor_inbox) == ([b"sealed"], False)
    assert await _read("executor", topics.task_events) == ([], True)
    assert await _read("worker", topics.task_events) == ([b"someone's task"], False)  # the record is there


async def test_an_analyst_reads_events_in_its_own_groups_and_writes_nothing(topics):
    worker = producer(as_role("worker"))
    await worker.start()
    await worker.send_and_wait(topics.task_events, b"an event", key=b"t1")
    await worker.stop()

    # the documented read-only client: the analyst's credentials, a group under <prefix>.analyst.
    reader = AIOKafkaConsumer(topics.task_events, **as_role("analyst").options(),
                              group_id=f"{topics.prefix}.analyst.notebook", auto_offset_reset="earliest",
                              isolation_level="read_committed")
    await reader.start()
    try:
        record = await asyncio.wait_for(reader.getone(), 30)
        assert record.value == b"an event"
        await reader.commit()
    finally:
        await reader.stop()

    elsewhere = AIOKafkaConsumer(topics.task_events, **as_role("analyst").options(), group_id="someone-elses-group")
    with pytest.raises(GroupAuthorizationFailedError):
        try:
            await elsewhere.start()
            await asyncio.wait_for(elsewhere.getone(), 30)
        finally:
            await elsewhere.stop()

    commands = AIOKafkaConsumer(topics.task_commands, **as_role("analyst").options(),
                                group_id=f"{topics.prefix}.analyst.notebook")
    with pytest.raises(TopicAuthorizationFailedError):
        try:
            await commands.start()
            await asyncio.wait_for(commands.getone(), 30)
        finally:
            await commands.stop()

    plain = AIOKafkaProducer(**as_role("analyst").options())  # not idempotent: asks for nothing on the cluster
    await plain.start()
    try:
        for name in topics.layout():
            with pytest.raises(TopicAuthorizationFailedError):
                await plain.send_and_wait(name, b"x")
    finally:
        await plain.stop()


async def test_no_client_connects_without_the_right_password(kafka_bootstrap):
    wrong = admin(dataclasses.replace(as_role("worker"), password="not-the-password"), request_timeout_ms=5000)
    with pytest.raises(KafkaError):
        try:
            await asyncio.wait_for(wrong.start(), 20)
        finally:
            await wrong.close()
    anonymous = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=3000)
    with pytest.raises((KafkaError, TimeoutError)):
        try:
            await asyncio.wait_for(anonymous.start(), 10)
        finally:
            await anonymous.stop()
