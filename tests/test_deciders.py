"""The decider's partition state without a broker: fold, dedupe by command id, resume point, outbox."""
from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain.ledger import LEDGER_ID
from hive_streams.domain.model import NodeSpec
from hive_streams.executor.signing import Signer
from hive_streams.kafka.principal import principal_header
from hive_streams.streams.deciders import (COMMAND_OFFSET, Decided, Out, PartitionState, ledger_aggregate,
                                           task_aggregate)
from hive_streams.topics import Topics, partition_for

from .consumed import Msg

AGENT = Signer(Ed25519PrivateKey.generate())

TOPICS = Topics("unit", 4)
codec = default_codec()


def command_msg(command, offset: int, topic: str, partitions: int, principal: str = "acme/admin") -> Msg:
    """The command as the API sends it: naming the principal it acts for."""
    key, value, headers = codec.message(command, "/test")
    return Msg(topic, partition_for(key, partitions), offset, key, value, headers + [principal_header(principal)])


def ledger_state() -> PartitionState:
    return PartitionState(codec, ledger_aggregate(), TOPICS, TOPICS.ledger_events, 0, 1)


def as_records(decided, topic: str) -> list[Msg]:
    return [Msg(r.topic, r.partition or 0, i, r.key, r.value, r.headers)
            for i, r in enumerate(x for x in decided.records if x.topic == topic)]


def test_a_redelivered_deposit_posts_once_even_after_a_reload():
    state = ledger_state()
    deposit = c.DepositFunds(LEDGER_ID, "idem-1", 1, "acme/alice", 500, "ref")
    first = state.decide([command_msg(deposit, 0, TOPICS.ledger_commands, 1)], now=10)
    assert first.events == 1
    state.apply(first)
    again = state.decide([command_msg(deposit, 1, TOPICS.ledger_commands, 1)], now=11)
    assert again.events == 0 and again.records == []
    reloaded = ledger_state()  # a new owner folds the log: the command id travels in the events' headers
    for record in as_records(first, TOPICS.ledger_events):
        reloaded.observe(record)
    assert reloaded.states[b"main"].available["acme/alice"] == 500
    assert reloaded.decide([command_msg(deposit, 7, TOPICS.ledger_commands, 1)], now=12).events == 0
    assert reloaded.decided_to == 0


def test_one_batch_applies_a_command_id_once():
    state = ledger_state()
    deposit = c.DepositFunds(LEDGER_ID, "idem-2", 1, "acme/bob", 300, "ref")
    decided = state.decide([command_msg(deposit, 0, TOPICS.ledger_commands, 1),
                            command_msg(deposit, 1, TOPICS.ledger_commands, 1)], now=10)
    assert decided.events == 1 and decided.decided_to == 1


def test_deciding_leaves_the_state_alone_until_applied():
    state = ledger_state()
    decided = state.decide([command_msg(c.DepositFunds(LEDGER_ID, "x", 1, "a", 5, "r"), 0, TOPICS.ledger_commands, 1)], 9)
    assert state.states == {} and decided.states[b"main"].available["a"] == 5


def test_events_carry_the_command_offset_and_follow_ups_share_the_batch():
    spec_nodes = ({"id": "a", "kind": "echo", "value": "x"},)
    from hive_streams.domain.definition import parse_task
    spec = parse_task({"name": "n", "nodes": list(spec_nodes)}, 0)
    submit = c.SubmitTask.of("t-1", "cmd-1", 5, "acme/alice", spec)
    msg = command_msg(submit, 41, TOPICS.task_commands, 4)
    state = PartitionState(codec, task_aggregate(), TOPICS, TOPICS.task_events, msg.partition, 4)
    decided = state.decide([msg], now=6)
    events = [r for r in decided.records if r.topic == TOPICS.task_events]
    assert [dict(r.headers)[COMMAND_OFFSET] for r in events] == [b"41"] * len(events) and events
    assert all(r.partition == msg.partition for r in events)


def test_garbage_and_misplaced_commands_are_dead_lettered_with_a_reason():
    state = ledger_state()
    garbage = Msg(TOPICS.ledger_commands, 0, 3, b"main", b"\x00garbage")
    wrong_key = command_msg(c.DepositFunds(LEDGER_ID, "k", 1, "a", 5, "r"), 4, TOPICS.ledger_commands, 1)
    wrong_key.key = b"other"
    decided = state.decide([garbage, wrong_key], now=1)
    reasons = [dict(r.headers)["dlq_reason"].decode() for r in decided.records]
    assert [r.topic for r in decided.records] == [TOPICS.deadletter] * 2
    assert reasons[0].startswith("undecodable") and "is not the aggregate id" in reasons[1]
    assert decided.decided_to == 4


def test_a_stray_record_on_an_events_topic_is_skipped_and_counted():
    state = ledger_state()
    state.observe(Msg(TOPICS.ledger_events, 0, 0, b"main", b"junk"))
    state.observe(Msg(TOPICS.ledger_events, 0, 1, None, b"junk"))
    assert state.strays == 2 and state.states == {}


def test_a_command_whose_events_cannot_be_encoded_is_dead_lettered_and_the_batch_goes_on():
    state = ledger_state()
    bad = c.DepositFunds(LEDGER_ID, "nan", 1, "acme/a", 5, "r")
    good = c.DepositFunds(LEDGER_ID, "ok", 1, "acme/a", 7, "r")
    unencodable = ledger_aggregate()
    original = unencodable.decide
    unencodable.decide = lambda cmd, st, now: [
        ev if cmd.command_id == "ok" else type(ev)(**{**ev.__dict__, "amount": float("nan")})
        for ev in original(cmd, st, now)]
    state.aggregate = unencodable
    decided = state.decide([command_msg(bad, 0, TOPICS.ledger_commands, 1),
                            command_msg(good, 1, TOPICS.ledger_commands, 1)], now=2)
    assert [r.topic for r in decided.records] == [TOPICS.deadletter, TOPICS.ledger_events]
    assert dict(decided.records[0].headers)["dlq_reason"].startswith(b"decide failed")
    assert decided.events == 1 and decided.applied == {b"main": {"ok"}}


def test_events_name_who_acted_and_carry_the_request():
    from hive_streams.domain.definition import parse_task
    spec = parse_task({"name": "n", "nodes": [{"id": "a", "kind": "echo", "value": "x"}]}, 0)
    msg = command_msg(c.SubmitTask.of("acme:t-2", "cmd-2", 5, "acme/alice", spec), 7, TOPICS.task_commands, 4,
                      principal="acme/alice")
    msg.headers.append(("ce_correlationid", b"req-9"))
    state = PartitionState(codec, task_aggregate(), TOPICS, TOPICS.task_events, msg.partition, 4)
    decided = state.decide([msg], now=6)
    events = [dict(r.headers) for r in decided.records if r.topic == TOPICS.task_events]
    assert events and all(h["hive_principal"] == b"acme/alice" and h["ce_correlationid"] == b"req-9" for h in events)
    unsigned = command_msg(c.CancelTask("acme:t-2", "cmd-3", 8, "stop"), 8, TOPICS.task_commands, 4)
    unsigned.headers[:] = [h for h in unsigned.headers if h[0] != "hive_principal"]
    decided = state.decide([unsigned], now=9, into=decided)
    cancelled = [dict(r.headers) for r in decided.records if r.topic == TOPICS.task_events][len(events):]
    assert cancelled and all(h["hive_principal"] == b"system:/test" for h in cancelled)


def task_partition() -> PartitionState:
    return PartitionState(codec, task_aggregate(), TOPICS, TOPICS.task_events, 0, 1)


def decided_tasks(state: PartitionState, commands, first_offset: int = 0) -> None:
    decided = state.decide([command_msg(cmd, first_offset + i, TOPICS.task_commands, 1, "acme/ann")
                            for i, cmd in enumerate(commands)], now=100)
    state.apply(decided)


def submit(task_id: str, deadline_at: int | None = None) -> c.SubmitTask:
    return c.SubmitTask(task_id, f"submit-{task_id}", 1, "n", "acme/ann", (NodeSpec("a", "echo"),),
                        deadline_at=deadline_at)


def test_a_restored_snapshot_keeps_finished_tasks_encoded_until_a_command_needs_them():
    from hive_streams.streams.snapshots import Snapshots
    state = task_partition()
    decided_tasks(state, [submit("acme:done", deadline_at=500), submit("acme:live", deadline_at=500),
                          c.CancelTask("acme:done", "cancel-done", 2, "no longer needed")])
    assert state.states[b"acme:done"].terminal and not state.states[b"acme:live"].terminal
    truth = {k: v for k, v in state.states.items()}
    value = Snapshots(codec).encode(state, set(state.states), 3, "e3")

    restored = task_partition()
    Snapshots(codec).restore(restored, value)
    assert set(restored.states) == {b"acme:live"} and set(restored.asleep) == {b"acme:done"} and restored.count() == 2
    assert [cmd.task_id for cmd in restored.due(1_000)] == ["acme:live"]  # the sleeper has nothing due, unread
    again = restored.decide([command_msg(c.CancelTask("acme:done", "cancel-done", 2, "again"), 9, TOPICS.task_commands, 1,
                                         "acme/ann")], now=101)
    assert again.events == 0 and set(restored.asleep) == {b"acme:done"}  # a repeated command id: nothing decoded
    late = restored.decide([command_msg(c.CancelTask("acme:done", "cancel-2", 3, "late"), 10, TOPICS.task_commands, 1,
                                        "acme/ann")], now=102)
    assert late.events == 0 and set(restored.asleep) == {b"acme:done"}  # read to decide, unchanged: still asleep
    restored.apply(late)
    assert set(restored.asleep) == {b"acme:done"} and b"acme:done" not in restored.states
    assert restored.wake_all() == truth


def test_a_command_that_changes_a_sleeping_task_wakes_it_once_its_batch_is_applied():
    from hive_streams.streams.snapshots import Snapshots
    state = task_partition()
    decided_tasks(state, [submit("acme:done"), c.CancelTask("acme:done", "cancel-done", 2)])
    restored = task_partition()
    Snapshots(codec).restore(restored, Snapshots(codec).encode(state, set(state.states), 2, "e2"))
    watch = restored.decide([command_msg(c.WatchTask("acme:done", "watch-1", 3, "acme:later"), 5,
                                         TOPICS.task_commands, 1, "acme/ann")], now=101)
    shared = [codec.decode(r.value) for r in watch.records if r.topic == TOPICS.task_events]
    assert [type(ev).__name__ for ev in shared] == ["TaskWatched", "TaskOutcomeShared"]
    assert shared[1].outcome == "cancelled"  # decided on the decoded state
    assert set(restored.asleep) == {b"acme:done"}  # not before the batch is committed and applied
    restored.apply(watch)
    assert restored.asleep == {} and b"acme:done" in restored.touched
    assert restored.states[b"acme:done"].watchers == ("acme:later",)


def test_settling_after_a_snapshot_keeps_only_live_tasks_decoded_and_the_next_snapshot_unchanged():
    from hive_streams.streams.snapshots import Snapshots
    state, snapshots = task_partition(), Snapshots(codec)
    decided_tasks(state, [submit("acme:done"), submit("acme:live"), c.CancelTask("acme:done", "cancel-done", 2)])
    first = snapshots.encode(state, set(state.states), 3, "e3")
    state.touched.clear()
    state.settle(snapshots.encoded)
    assert set(state.states) == {b"acme:live"} and set(state.asleep) == {b"acme:done"} and set(snapshots.encoded) == {b"acme:live"}
    settled, whole = task_partition(), task_partition()
    Snapshots(codec).restore(settled, snapshots.encode(state, state.touched, 3, "e3"))
    Snapshots(codec).restore(whole, first)
    assert settled.wake_all() == whole.wake_all() and settled.applied == whole.applied
    decided_tasks(state, [c.CancelTask("acme:live", "cancel-live", 3)], first_offset=3)
    assert state.touched == {b"acme:live"}
    restored = task_partition()
    Snapshots(codec).restore(restored, snapshots.encode(state, state.touched, 4, "e4"))
    assert restored.wake_all() == state.wake_all() and restored.applied == state.applied


def test_a_sleeping_state_under_another_key_is_refused_not_used():
    from hive_streams.streams.snapshots import Snapshots
    state = task_partition()
    decided_tasks(state, [submit("acme:done"), c.CancelTask("acme:done", "cancel-done", 2)])
    restored = task_partition()
    Snapshots(codec).restore(restored, Snapshots(codec).encode(state, set(state.states), 2, "e2"))
    restored.asleep[b"acme:other"] = restored.asleep.pop(b"acme:done")  # a snapshot that lies about its keys
    late = restored.decide([command_msg(c.CancelTask("acme:other", "cancel-other", 3), 5, TOPICS.task_commands, 1,
                                        "acme/ann")], now=101)
    assert late.events == 0 and [r.topic for r in late.records] == [TOPICS.deadletter]
    assert b"acme:other" not in restored.states


def _submitted_task_state(task_id: str = "acme:t-in-place") -> tuple[PartitionState, int]:
    from hive_streams.domain.definition import parse_task
    spec = parse_task({"name": "n", "nodes": [{"id": "a", "kind": "echo", "value": "x"}]}, 0)
    msg = command_msg(c.SubmitTask.of(task_id, f"submit-{task_id}", 5, "acme/alice", spec), 3, TOPICS.task_commands, 4)
    state = PartitionState(codec, task_aggregate(), TOPICS, TOPICS.task_events, msg.partition, 4)
    state.apply(state.decide([msg], now=6))
    return state, msg.partition


def _follow_up(command) -> Out:
    """The command as a decider's outbox writes it: no partition named, the key's default."""
    key, value, headers = codec.message(command, "/hive-streams/worker")
    return Out(TOPICS.task_commands, key, value, headers)


def test_a_follow_up_decided_in_place_names_no_offset_and_is_skipped_when_read():
    state, partition = _submitted_task_state()
    assign = c.AssignTask("acme:t-in-place", "slot-event-1", 7, "agent-a", agent_key=AGENT.public_key)
    into = Decided()
    assert state.decide_follow_up(_follow_up(assign), now=8, into=into)
    assigned = [r for r in into.records if r.topic == TOPICS.task_events]
    assert [codec.decode(r.value).__class__.__name__ for r in assigned] == ["TaskAssigned"]
    assert COMMAND_OFFSET not in dict(assigned[0].headers) and into.decided_to == -1
    assert [r.topic for r in into.records if r.topic != TOPICS.task_events] == [TOPICS.executor_inbox]
    state.apply(into)
    read_back = command_msg(assign, 12, TOPICS.task_commands, 4, principal="system:/hive-streams/worker")
    again = state.decide([read_back], now=9)
    assert again.events == 0 and again.records == [] and again.decided_to == 12
    reloaded = PartitionState(codec, task_aggregate(), TOPICS, TOPICS.task_events, partition, 4)
    for record in as_records(into, TOPICS.task_events):  # a new owner, before it reads the command
        reloaded.observe(record)
    assert reloaded.decide([read_back], now=10).events == 0 and reloaded.decided_to == -1


def test_a_follow_up_that_leads_to_nothing_is_left_to_its_reading(caplog):
    state, _ = _submitted_task_state("acme:t-nothing")
    into = Decided()
    assert state.decide_follow_up(_follow_up(c.AssignTask("acme:t-nothing", "first", 7, "agent-a", agent_key=AGENT.public_key)), 8, into)
    state.apply(into)
    kept = list(into.records)
    # the same assignment again emits nothing; a sealed decider's refusal would be a dead letter: neither is kept
    assert not state.decide_follow_up(_follow_up(c.AssignTask("acme:t-nothing", "again", 9, "agent-a", agent_key=AGENT.public_key)), 10, into)
    assert into.records == kept and "again" not in into.applied.get(b"acme:t-nothing", set())
    garbage = Out(TOPICS.task_commands, b"acme:t-nothing", b"\x00garbage", [])
    assert not state.decide_follow_up(garbage, 11, into) and into.records == kept
    assert "dead-lettering" not in caplog.text  # nothing was: the dead letter is written, and said, once it is read
    state.decide([Msg(TOPICS.task_commands, 0, 30, garbage.key, garbage.value, [])], 12)
    assert "dead-lettering" in caplog.text
