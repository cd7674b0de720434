"""Seals at the deciders' door, without a broker: who may send which command whatever the ACLs let through."""
from __future__ import annotations

import pytest

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain.model import NodeSpec
from hive_streams.exceptions import ConfigError
from hive_streams.kafka.principal import principal_header
from hive_streams.kafka.seal import SEAL_HEADER, SealCheck, Sealer, producer_key, service_secret
from hive_streams.streams.deciders import PartitionState, agent_aggregate, task_aggregate
from hive_streams.topics import Topics

from .consumed import Msg

TOPICS = Topics("seal", 1)
codec = default_codec()
SECRET = b"s" * 32
SERVICE = Sealer.service(SECRET)


def producer(principal: str) -> Sealer:
    return Sealer.producer(producer_key(SECRET, principal))


def msg(command, sealer: Sealer | None = None, principal: str | None = None, offset: int = 0) -> Msg:
    key, value, headers = codec.message(command, "/test")
    if principal is not None:
        headers.append(principal_header(principal))
    if sealer is not None:
        headers.append(sealer.header(value, headers))
    topic = TOPICS.task_commands if isinstance(command, c.TaskCommand) else TOPICS.agent_commands
    return Msg(topic, 0, offset, key, value, headers)


def state(aggregate=None) -> PartitionState:
    aggregate = aggregate or task_aggregate()
    events = TOPICS.task_events if aggregate.command_type is c.TaskCommand else TOPICS.agent_events
    return PartitionState(codec, aggregate, TOPICS, events, 0, 1, sealer=SERVICE, seal=SealCheck(SECRET))


def submit(requester: str, task_id: str = "acme:t1") -> c.SubmitTask:
    return c.SubmitTask(task_id, f"submit-{task_id}", 1, "t", requester, (NodeSpec("a", "echo"),))


def outcome(decided) -> tuple[list[str], list[str]]:
    dead = [dict(r.headers)["dlq_reason"].decode() for r in decided.records if r.topic == TOPICS.deadletter]
    written = [type(codec.decode(r.value)).__name__ for r in decided.records if r.topic != TOPICS.deadletter]
    return dead, written


def test_a_service_seal_lets_any_command_through():
    dead, written = outcome(state().decide([msg(submit("acme/alice"), SERVICE, "acme/alice")], 5))
    assert dead == [] and "TaskSubmitted" in written


def test_an_unsealed_command_is_refused_with_the_reason():
    for command in (submit("acme/alice"), c.AssignTask("acme:t1", "assign-1", 1, "ag")):
        dead, written = outcome(state().decide([msg(command, principal="acme/alice")], 5))
        assert written == [] and len(dead) == 1
        assert dead[0].startswith(f"refused: {type(command).__name__} has no valid seal")


def test_a_slot_cannot_be_reserved_or_released_without_the_services_seal():
    for command in (c.ReserveSlot("ag", "r1", 1, "acme:t1"), c.ReleaseSlot("ag", "r2", 1, "acme:t1")):
        dead, _ = outcome(state(agent_aggregate(10_000)).decide([msg(command, producer("acme/x"), "acme/x")], 5))
        assert len(dead) == 1 and "has no valid seal" not in dead[0] and "a producer may only submit tasks" in dead[0]
        dead, _ = outcome(state(agent_aggregate(10_000)).decide([msg(command)], 5))
        assert len(dead) == 1 and "has no valid seal" in dead[0]


def test_a_producer_submits_its_own_tasks_and_nothing_else():
    alice = producer("acme/alice")
    dead, written = outcome(state().decide([msg(submit("acme/alice"), alice, "acme/alice")], 5))
    assert dead == [] and "TaskSubmitted" in written
    dead, _ = outcome(state().decide([msg(c.CancelTask("acme:t1", "cancel-1", 1, "no"), alice, "acme/alice")], 5))
    assert dead == ["refused: CancelTask sealed by a producer: a producer may only submit tasks"]


def test_a_producer_cannot_pay_with_another_account():
    alice = producer("acme/alice")
    # her key under her own principal header, for a task that bob would pay for
    dead, _ = outcome(state().decide([msg(submit("acme/bob"), alice, "acme/alice")], 5))
    assert dead == ["refused: SubmitTask for 'acme/bob' sealed by the producer of 'acme/alice'"]
    # her key under bob's principal header: the seal does not match bob's key
    dead, _ = outcome(state().decide([msg(submit("acme/bob"), alice, "acme/bob")], 5))
    assert len(dead) == 1 and "has no valid seal" in dead[0]


def test_a_seal_covers_the_record_and_its_principal():
    check = SealCheck(SECRET)
    value = codec.encode(submit("acme/alice"))
    headers = [principal_header("acme/alice")]
    seal = SERVICE.header(value, headers)
    assert check.scope(value, headers + [seal]) == "service"
    assert check.scope(value[:-1] + bytes([value[-1] ^ 1]), headers + [seal]) is None
    assert check.scope(value, [principal_header("acme/bob"), seal]) is None
    assert check.scope(value, [seal]) is None
    assert SealCheck(b"t" * 32).scope(value, headers + [seal]) is None  # another deployment's secret
    for forged in (b"service:", b"service", b"root:" + seal[1].split(b":")[1], b"\xff"):
        assert check.scope(value, headers + [(SEAL_HEADER, forged)]) is None


def test_executor_commands_are_checked_by_their_signature_not_a_seal():
    beat = c.Heartbeat("ag", "b1", 1, running=0)
    dead, _ = outcome(state(agent_aggregate(10_000)).decide([msg(beat)], 5))
    assert len(dead) == 1 and dead[0].startswith("refused: unsigned Heartbeat")


def test_follow_ups_carry_the_services_seal():
    decided = state().decide([msg(submit("acme/alice"), SERVICE, "acme/alice")], 5)
    follow_ups = [r for r in decided.records if r.topic not in (TOPICS.task_events, TOPICS.deadletter)]
    check = SealCheck(SECRET)
    assert all(check.scope(r.value, r.headers) == "service" for r in follow_ups)


def test_the_service_secret_is_made_once_and_shared(tmp_path):
    with pytest.raises(ConfigError, match="HIVE_SERVICE_SECRET"):
        service_secret("", tmp_path)
    made = service_secret("", tmp_path, create=True)
    assert len(made) == 64 and service_secret("", tmp_path, create=True) == made == service_secret("", tmp_path)
    assert (tmp_path / "keys" / "service-secret").stat().st_mode & 0o077 == 0
    with pytest.raises(ConfigError, match="at least 32"):
        service_secret("short", tmp_path)
