"""Poison on every topic: garbage, keyless and oversized records on each command topic and on every event topic
(`Topics.event_topics`: each family's events and the alerts), an offer
with an impossible price and an event a read model refuses. Each lands in the dead-letter topic with its
reason, the audit log holds every committed record of the event topics, and the tasks in flight complete."""
from __future__ import annotations

import asyncio
import os

import pytest
from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, select

from hive_streams.codec import default_codec
from hive_streams.codec.signature import SIGNATURE_HEADER
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.ledger import LEDGER_ID
from hive_streams.domain.model import Capability, NodeSpec
from hive_streams.executor.signing import Signer
from hive_streams.kafka import consumer, producer, read_to_end
from hive_streams.processes import wait_until
from hive_streams.store.models import audit_log

from .roles import as_role
from .samples import samples
from .stack import Stack

OVERSIZED = 950_000  # over the fabric's record limit (900 KiB), under the broker's message size
codec = default_codec()


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("poison"))
    s.start({"steady": ("echo,sleep", 4)})
    s.wait_for_agents(1)
    yield s
    s.stop()


def _valid(stack: Stack) -> dict[str, tuple[bytes, list]]:
    """A well-formed value (and its headers) of each topic's own family, to send without its key: the command
    topics, and every event topic of the one audited set (each family's events and the alerts)."""
    t = stack.topics
    values = {t.task_commands: c.CancelTask("tests:nobody", "p1", 1, "poison"),
              t.agent_commands: c.DeregisterAgent("nobody", "p2", 1, "poison"),
              t.ledger_commands: c.DepositFunds(LEDGER_ID, "p3", 1, "tests/nobody", 100),
              **samples(t)}
    assert set(t.event_topics) <= values.keys()
    return {topic: codec.message(value, "/poison")[1:] for topic, value in values.items()}


async def _poison(stack: Stack) -> dict[tuple[str, int, int], str]:
    """Writes the poison as the broker's admin; returns (topic, partition, offset) -> the reason it must get."""
    t = stack.topics
    writer = producer(as_role("admin"))
    await writer.start()
    expected = {}

    async def put(topic: str, key: bytes | None, value: bytes, headers=(), reason: str = "") -> None:
        meta = await writer.send_and_wait(topic, value, key=key, headers=list(headers))
        expected[(topic, meta.partition, meta.offset)] = reason

    try:
        commands = (t.task_commands, t.agent_commands, t.ledger_commands)
        for topic, (value, headers) in _valid(stack).items():
            await put(topic, b"poison", b"\xc3\x01 not avro at all", reason="undecodable")
            await put(topic, None, value, headers, reason="key None" if topic in commands else "keyless")
            await put(topic, b"poison", os.urandom(OVERSIZED), reason="oversized")
        signer = Signer(Ed25519PrivateKey.generate())  # a first registration signed by the key it registers
        offer = c.RegisterAgent("nan-price", "p4", 1, "nan", (Capability("echo"),), 1, price=float("nan"),
                                public_key=signer.public_key)
        key, value, headers = codec.message(offer, "/poison")
        await put(t.agent_commands, key, value, headers + [(SIGNATURE_HEADER, signer.sign_command(value))],
                  reason="refused: price must be")
        refused = e.TaskSubmitted("tests:refused", 1, 1, "nul\x00name", "tests/admin", (NodeSpec("a", "echo"),))
        key, value, headers = codec.message(refused, "/poison")
        await put(t.task_events, key, value, headers, reason="read model refused it")
    finally:
        await writer.stop()
    return expected


async def _dead_letters(stack: Stack, wanted: set, timeout: float = 120) -> dict[tuple[str, int, int], str]:
    """(topic, partition, offset) -> reason, for the dead letters of the wanted records."""
    reader = consumer(as_role("admin"))
    await reader.start()
    found = {}
    try:
        tp = TopicPartition(stack.topics.deadletter, 0)
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not wanted <= found.keys() and loop.time() < deadline:
            for record in (await reader.getmany(tp, timeout_ms=500)).get(tp, []):
                h = dict(record.headers)
                place = (h["dlq_topic"].decode(), int(h["dlq_partition"]), int(h["dlq_offset"]))
                found[place] = h["dlq_reason"].decode()
    finally:
        await reader.stop()
    return found


async def _committed(stack: Stack) -> dict[tuple[str, int, int], bytes]:
    t = stack.topics
    layout = t.layout()
    starts = {TopicPartition(topic, p): None for topic in t.event_topics for p in range(layout[topic][0])}
    out = {}
    async for records in read_to_end(as_role("admin"), starts):
        out.update({(r.topic, r.partition, r.offset): r.value for r in records})
    return out


def _submit(stack: Stack, seconds: float) -> str:
    response = stack.client.submit({"name": "steady", "max_retries": 0,
                                    "nodes": [{"id": "s", "kind": "sleep", "seconds": seconds}]})
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def test_poison_on_every_topic_is_dead_lettered_audited_and_stops_nothing(stack):
    in_flight = [_submit(stack, 3) for _ in range(3)]
    expected = asyncio.run(_poison(stack))
    after = _submit(stack, 0.1)

    for task_id in in_flight + [after]:
        assert list(stack.client.follow(task_id, timeout=120))[-1].event == "TaskCompleted", task_id

    letters = asyncio.run(_dead_letters(stack, set(expected)))
    for place, reason in expected.items():
        assert place in letters, (place, reason)
        assert reason in letters[place], (place, letters[place])

    engine = create_engine(stack.database_url)
    try:
        def audited():
            with engine.connect() as conn:
                rows = conn.execute(select(audit_log.c.topic, audit_log.c.partition, audit_log.c.offset,
                                           audit_log.c.record_value))
                return {(r.topic, r.partition, r.offset): bytes(r.record_value or b"") for r in rows}
        committed = asyncio.run(_committed(stack))
        rows = wait_until(lambda: (got := audited()).keys() >= committed.keys() and got, 60,
                          what="every committed event record in the audit log")
        assert all(rows[place] == (value or b"") for place, value in committed.items())
        poisoned_events = {p for p in expected if p[0].endswith(".events")}
        assert poisoned_events <= rows.keys()
    finally:
        engine.dispose()
    assert stack.client.http.get("/api/tasks/tests:refused").status_code == 404  # never reached the read model
    for listing in ("/api/schedules", "/api/triggers"):  # the API folds those event topics, strays skipped
        assert stack.client.http.get(listing).status_code == 200, listing
    stack.fabric.check_alive()


def test_a_new_worker_loads_the_poisoned_partitions_and_decides_on(stack):
    stack.worker.stop()
    stack.restart_worker()  # its deciders fold every events partition, strays included
    tasks = [_submit(stack, 0.1) for _ in range(4)]
    for task_id in tasks:
        assert list(stack.client.follow(task_id, timeout=120))[-1].event == "TaskCompleted", task_id
    loaded = stack.worker.tail(1000)
    for reason in ("skipped: undecodable", "skipped: keyless", "skipped: oversized"):
        assert reason in loaded, reason
    stack.fabric.check_alive()
