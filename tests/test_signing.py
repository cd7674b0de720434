"""Executor identity on the real stack: the deciders refuse forged, wrongly signed and unsigned executor
commands with a dead letter, and the work they aimed at goes on as if they had never been sent."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hive_streams.codec import default_codec
from hive_streams.codec.signature import SIGNATURE_HEADER
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.model import Capability
from hive_streams.executor.signing import Signer
from hive_streams.kafka import now_ms
from hive_streams.kafka import producer as make_producer
from hive_streams.processes import wait_until

from .eventlog import events_of
from .roles import as_role
from .stack import Stack

pytestmark = pytest.mark.stack
MALLORY = Signer(Ed25519PrivateKey.generate())
SLOW = {"name": "slow", "nodes": [{"id": "work", "kind": "sleep", "seconds": 3}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("signing"))
    s.start({"box": ("echo,sleep", 1)})
    s.wait_for_agents(1)
    yield s
    s.stop()


def forge(stack: Stack, command, signer: Signer | None = None) -> str:
    """Writes a command straight to its topic, as anyone with the topic's write permission could."""
    codec = default_codec()
    key, value, headers = codec.message(command, "/mallory")
    if signer is not None:
        headers.append((SIGNATURE_HEADER, signer.sign_command(value)))
    topic = stack.topics.task_commands if isinstance(command, c.TaskCommand) else stack.topics.agent_commands

    async def send():
        producer = make_producer(as_role("executor"))  # an executor's own credentials: the ACLs let it write here
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()
    asyncio.run(send())
    return command.command_id


def dead_letter_reason(stack: Stack, command_id: str) -> str:
    def found():
        for r in events_of(stack.bootstrap, stack.topics.deadletter, 1):
            if r.header("ce_id") == command_id:
                return r.header("dlq_reason")
        return None
    return wait_until(found, 60, what=f"the dead letter of {command_id}")


def agent_events(stack: Stack, agent_id: str) -> list:
    return [r.event for r in events_of(stack.bootstrap, stack.topics.agent_events, stack.topics.partitions)
            if getattr(r.event, "agent_id", None) == agent_id]


def cid() -> str:
    return uuid.uuid4().hex


def test_a_failure_report_signed_with_the_wrong_key_is_refused_and_the_task_completes(stack):
    response = stack.client.submit(SLOW)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    task = wait_until(lambda: (t := stack.client.task(task_id)) and t["status"] in ("assigned", "running") and t,
                      60, what="the task to be assigned")
    assert task["agent_id"] == "box"
    aggregate, attempt = task["task_id"], task["attempt"]
    as_box = forge(stack, c.ReportNodeFailed(aggregate, cid(), now_ms(), "box", attempt, "work", "forged"), MALLORY)
    as_self = forge(stack, c.ReportNodeFailed(aggregate, cid(), now_ms(), "mallory", attempt, "work", "forged"), MALLORY)
    unsigned = forge(stack, c.ReportNodeFailed(aggregate, cid(), now_ms(), "box", attempt, "work", "forged"))

    frames = list(stack.client.follow(task_id, timeout=60))
    assert frames[-1].event == "TaskCompleted" and frames[-1].data["agent_id"] == "box"
    assert not [f for f in frames if f.event in ("NodeFailed", "TaskRetryScheduled", "ResultRejected")]
    assert dead_letter_reason(stack, as_box) == \
        "refused: bad signature: ReportNodeFailed is not signed by the registered key of agent box"
    assert dead_letter_reason(stack, as_self) == \
        f"refused: ReportNodeFailed: agent mallory does not hold task {aggregate}, so its signature cannot be checked"
    assert dead_letter_reason(stack, unsigned) == "refused: unsigned ReportNodeFailed from agent box"
    assert stack.worker.alive


def test_a_forged_registration_of_an_existing_agent_is_refused_and_its_key_stays(stack):
    registered = [ev for ev in agent_events(stack, "box") if isinstance(ev, e.AgentRegistered)]
    key = registered[-1].public_key
    assert key
    offer = dict(name="box", capabilities=(Capability("echo"), Capability("sleep")), slots=8, price=0.0,
                 endpoint="https://mallory.example")
    forged = forge(stack, c.RegisterAgent("box", cid(), now_ms(), **offer, public_key=MALLORY.public_key), MALLORY)
    unsigned = forge(stack, c.RegisterAgent("box", cid(), now_ms(), **offer, public_key=MALLORY.public_key))
    assert dead_letter_reason(stack, forged) == \
        "refused: bad signature: RegisterAgent is not signed by the registered key of agent box"
    assert dead_letter_reason(stack, unsigned) == "refused: unsigned RegisterAgent from agent box"
    after = [ev for ev in agent_events(stack, "box") if isinstance(ev, e.AgentRegistered)]
    assert {ev.public_key for ev in after} == {key} and all(ev.endpoint != offer["endpoint"] for ev in after)
    assert next(a for a in stack.client.agents() if a["agent_id"] == "box")["status"] == "online"


def test_an_unsigned_heartbeat_is_refused(stack):
    unsigned = forge(stack, c.Heartbeat("box", cid(), now_ms(), running=77))
    assert dead_letter_reason(stack, unsigned) == "refused: unsigned Heartbeat from agent box"
    beats = [ev for ev in agent_events(stack, "box") if isinstance(ev, e.AgentHeartbeat)]
    assert beats and all(ev.running != 77 for ev in beats)  # the executor's own beats keep going
