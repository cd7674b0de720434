"""Forged commands on the real stack: what the broker lets an executor or a producer write is still refused
by the deciders when the command is not theirs to send, and the fabric carries on."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain.definition import parse_task
from hive_streams.kafka.clock import now_ms
from hive_streams.kafka.principal import principal_header
from hive_streams.kafka.routing import command_topic
from hive_streams.processes import wait_until
from hive_streams.topics import partition_for

from .eventlog import events_of
from .roles import as_role, producer_sealer
from .stack import TENANT, Stack

AGENT = "fx-a"
ECHO = {"name": "echo", "nodes": [{"id": "a", "kind": "echo"}]}
UNPLACEABLE = {"name": "stuck", "requires": ["nobody-has-this"], "nodes": [{"id": "a", "kind": "echo"}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("forgery"))
    s.start({AGENT: ("echo", 2)})
    s.wait_for_agents(1)
    yield s
    s.stop()


async def _write(stack: Stack, role: str, command, principal: str, sealer=None) -> None:
    """The command as a client with `role`'s Kafka credentials writes it: its own headers, any principal."""
    codec = default_codec()
    key, value, headers = codec.message(command, f"/tests/{role}")
    headers.append(principal_header(principal))
    if sealer is not None:
        headers.append(sealer.header(value, headers))
    producer = AIOKafkaProducer(**as_role(role).options())
    await producer.start()
    try:
        await producer.send_and_wait(command_topic(stack.topics, command), value, key=key, headers=headers,
                                     partition=partition_for(key, stack.topics.partitions))
    finally:
        await producer.stop()


def _refusals(stack: Stack, command_ids: set[str]) -> dict[str, str]:
    letters = events_of(stack.bootstrap, stack.topics.deadletter, 1)
    return {r.header("ce_id"): r.header("dlq_reason") for r in letters if r.header("ce_id") in command_ids}


def _events_of(stack: Stack, topic: str, key: str) -> list[str]:
    return [type(r.event).__name__ for r in events_of(stack.bootstrap, topic, stack.topics.partitions)
            if r.key == key.encode()]


def test_forged_service_commands_and_principals_are_dead_lettered(stack):
    queued = stack.client.submit(UNPLACEABLE).json()["task_id"]
    wait_until(lambda: (stack.client.task(queued) or {}).get("status") == "queued", 60, what="the task queued")
    victim, stranger = f"{TENANT}/victim", f"{TENANT}:forged-{uuid.uuid4().hex[:8]}"
    now = now_ms()
    spec = parse_task(dict(ECHO), now)
    forged = {
        # an executor takes a queued task for itself, books a slot, and submits a task on another's account
        "assign": (c.AssignTask(queued, uuid.uuid4().hex, now, AGENT), "executor", f"agent:{AGENT}", None),
        "reserve": (c.ReserveSlot(AGENT, uuid.uuid4().hex, now, queued), "executor", f"agent:{AGENT}", None),
        "submit": (c.SubmitTask.of(stranger, uuid.uuid4().hex, now, victim, spec), "executor", victim, None),
        # a producer with its own key submits a task that another account would pay for
        "pay-as": (c.SubmitTask.of(f"{stranger}-p", uuid.uuid4().hex, now, victim, spec), "producer",
                   f"{TENANT}/mallory", producer_sealer(f"{TENANT}/mallory")),
    }
    for command, role, principal, sealer in forged.values():
        asyncio.run(_write(stack, role, command, principal, sealer))
    ids = {name: command.command_id for name, (command, *_) in forged.items()}
    refused = wait_until(lambda: (lambda got: got if len(got) == len(ids) else None)(_refusals(stack, set(ids.values()))),
                         60, what="every forged command dead-lettered")
    assert "AssignTask has no valid seal" in refused[ids["assign"]]
    assert "ReserveSlot has no valid seal" in refused[ids["reserve"]]
    assert "SubmitTask has no valid seal" in refused[ids["submit"]]
    assert f"SubmitTask for '{victim}' sealed by the producer of '{TENANT}/mallory'" in refused[ids["pay-as"]]

    # nothing of them reached an aggregate: the queued task is still queued, no slot was booked for it,
    # and neither forged task exists
    assert "TaskAssigned" not in _events_of(stack, stack.topics.task_events, queued)
    assert "SlotReserved" not in _events_of(stack, stack.topics.agent_events, AGENT)
    assert _events_of(stack, stack.topics.task_events, stranger) == []
    assert _events_of(stack, stack.topics.task_events, f"{stranger}-p") == []
    assert (stack.client.task(queued) or {}).get("status") == "queued"

    # and the fabric carries on
    done = stack.client.submit(ECHO).json()["task_id"]
    assert list(stack.client.follow(done, timeout=60))[-1].event == "TaskCompleted"
