"""The executors' inbox without a broker: assignments and stops sealed to the agent that acts on them."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hive_streams.codec import default_codec
from hive_streams.codec.inbox import seal_to
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.model import NodeSpec
from hive_streams.domain.task import TaskState, delivery
from hive_streams.exceptions import CodecError
from hive_streams.executor.signing import Signer
from hive_streams.kafka.principal import principal_header
from hive_streams.kafka.seal import SealCheck, Sealer
from hive_streams.streams.deciders import PartitionState, task_aggregate
from hive_streams.topics import Topics, partition_for

from .consumed import Msg

TOPICS = Topics("inbox", 4)
codec = default_codec()
MINE, OTHER = Signer(Ed25519PrivateKey.generate()), Signer(Ed25519PrivateKey.generate())
SECRET = b"i" * 32


def test_a_record_sealed_to_an_agent_opens_with_its_key_only():
    sealed = seal_to(MINE.public_key, b"the task's nodes")
    assert b"the task's nodes" not in sealed
    assert MINE.inbox_opener().open(sealed) == b"the task's nodes"
    with pytest.raises(CodecError, match="not sealed to this agent"):
        OTHER.inbox_opener().open(sealed)
    with pytest.raises(CodecError):
        seal_to("not a key", b"x")


def test_an_executor_receives_its_assignments_and_the_stops_of_its_tasks_only():
    base = dict(task_id="acme:t", seq=3, at=1)
    assigned = e.TaskAssigned(**base, agent_id="ag", attempt=1, nodes=(), agent_key=MINE.public_key)
    assert delivery(assigned, TaskState("acme:t")) == ("ag", MINE.public_key)
    holding = TaskState("acme:t", agent_id="ag", agent_key=MINE.public_key)
    for stop in (e.TaskCancelled(**base, agent_id="ag"), e.TaskFailed(**base, reason="x", agent_id="ag"),
                 e.TaskRetryScheduled(**base, agent_id="ag", attempt=1, reason="x", not_before=0)):
        assert delivery(stop, holding) == ("ag", MINE.public_key)
    assert delivery(e.TaskCancelled(**base, agent_id=""), holding) is None  # it held nothing
    assert delivery(e.TaskCompleted(**base, agent_id="ag", outputs=()), holding) is None


def test_the_decider_writes_the_assignment_to_the_agents_inbox_in_the_same_batch():
    state = PartitionState(codec, task_aggregate(), TOPICS, TOPICS.task_events, 0, 4,
                           sealer=Sealer.service(SECRET), seal=SealCheck(SECRET))
    sealer = Sealer.service(SECRET)
    submit = c.SubmitTask("acme:t", "s1", 1, "t", "acme/a", (NodeSpec("a", "echo"),))
    assign = c.AssignTask("acme:t", "a1", 2, "ag", agent_key=MINE.public_key)
    messages = []
    for offset, command in enumerate((submit, assign)):
        key, value, headers = codec.message(command, "/test", correlation_id="req-7")
        headers.append(principal_header("acme/a"))
        headers.append(sealer.header(value, headers))
        messages.append(Msg(TOPICS.task_commands, partition_for(key, 4), offset, key, value, headers))
    decided = state.decide(messages, 5)
    (inbox,) = [r for r in decided.records if r.topic == TOPICS.executor_inbox]
    (event,) = [r for r in decided.records if r.topic == TOPICS.task_events and b"TaskAssigned" in dict(r.headers)["ce_type"]]
    assert inbox.key == b"ag" and inbox.partition == partition_for(b"ag", 4)
    assert dict(inbox.headers) == {"ce_type": b"hive.v1.TaskAssigned", "ce_correlationid": b"req-7"}
    assert MINE.inbox_opener().open(inbox.value) == event.value
    assert isinstance(codec.decode(MINE.inbox_opener().open(inbox.value)), e.TaskAssigned)
