"""The deciders' door without a broker: executor commands signed over their record, keys by trust on
first use, and the ledger's checks of releases and deposits. Refusals are dead letters with a reason."""
from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hive_streams.codec import default_codec, event_id
from hive_streams.codec.signature import SIGNATURE_HEADER, signed_bytes
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain import ledger
from hive_streams.domain.ledger import LEDGER_ID
from hive_streams.domain.model import Capability, NodeOutput, NodeSpec, result_digest
from hive_streams.domain.task import TaskState
from hive_streams.executor.signing import Signer
from hive_streams.kafka.principal import principal_header
from hive_streams.streams.deciders import PartitionState, agent_aggregate, ledger_aggregate, task_aggregate
from hive_streams.streams.verify import command_signature_valid
from hive_streams.topics import Topics

from .consumed import Msg

TOPICS = Topics("door", 1)
codec = default_codec()
AGENT, OTHER, NEW = (Signer(Ed25519PrivateKey.generate()) for _ in range(3))
FEE = 500


def msg(command, topic: str, signer: Signer | None = None, offset: int = 0, extra=(), **ids) -> Msg:
    key, value, headers = codec.message(command, "/test", **ids)
    if signer is not None:
        headers.append((SIGNATURE_HEADER, signer.sign_command(value)))
    return Msg(topic, 0, offset, key, value, headers + list(extra))


def reasons(decided) -> list[str]:
    return [dict(r.headers)["dlq_reason"].decode() for r in decided.records if r.topic == TOPICS.deadletter]


def events(decided, topic: str) -> list:
    return [codec.decode(r.value) for r in decided.records if r.topic == topic]


def decide(state: PartitionState, *messages, now: int = 10):
    decided = state.decide(list(messages), now)
    state.apply(decided)
    return decided


# the scheme -------------------------------------------------------------------------------

def test_a_signature_covers_exactly_one_record():
    beat = c.Heartbeat("ag", "b1", 1, running=1)
    value = codec.encode(beat)
    signature = AGENT.sign_command(value).decode()
    assert command_signature_valid(AGENT.public_key, value, signature)
    assert not command_signature_valid(OTHER.public_key, value, signature)
    for i in range(len(value)):  # any byte changed: the type, the command id, the agent, a field
        assert not command_signature_valid(AGENT.public_key, value[:i] + bytes([value[i] ^ 1]) + value[i + 1:], signature)
    another = codec.encode(c.Heartbeat("ag", "b2", 1, running=1))  # the same beat under another command id
    assert not command_signature_valid(AGENT.public_key, another, signature)
    assert not command_signature_valid(AGENT.public_key, codec.encode(c.Heartbeat("ag2", "b1", 1, running=1)), signature)


def test_a_signature_is_bound_to_its_context():
    value = codec.encode(c.Heartbeat("ag", "b1", 1))
    assert signed_bytes(value) != value
    bare = AGENT.key.sign(value).hex()  # a signature of the bare bytes, made for some other purpose
    assert not command_signature_valid(AGENT.public_key, value, bare)
    assert not command_signature_valid(AGENT.public_key, value, "not hex")


# agents: trust on first use, then the current key ----------------------------------------------

def agents() -> PartitionState:
    return PartitionState(codec, agent_aggregate(10_000), TOPICS, TOPICS.agent_events, 0, 1)


def register(command_id: str, public_key: str, name: str = "box") -> c.RegisterAgent:
    return c.RegisterAgent("ag", command_id, 1, name, (Capability("echo"),), 1, public_key=public_key)


def test_a_first_registration_is_signed_by_the_key_it_registers():
    state = agents()
    assert reasons(decide(state, msg(register("r0", AGENT.public_key), TOPICS.agent_commands, OTHER))) == [
        "refused: bad signature: RegisterAgent is not signed by the registered key of agent ag"]
    assert reasons(decide(state, msg(register("r1", ""), TOPICS.agent_commands, AGENT))) == [
        "refused: RegisterAgent: a registration must carry a public key"]
    assert "ag".encode() not in state.states
    decided = decide(state, msg(register("r2", AGENT.public_key), TOPICS.agent_commands, AGENT))
    assert reasons(decided) == [] and state.states[b"ag"].public_key == AGENT.public_key


def test_a_forged_registration_of_an_existing_agent_is_refused_and_its_key_stays():
    state = agents()
    decide(state, msg(register("r1", AGENT.public_key), TOPICS.agent_commands, AGENT))
    forged = decide(state, msg(register("r2", OTHER.public_key, "mine now"), TOPICS.agent_commands, OTHER))
    assert reasons(forged) == ["refused: bad signature: RegisterAgent is not signed by the registered key of agent ag"]
    assert forged.events == 0
    unsigned = decide(state, msg(register("r3", OTHER.public_key, "mine now"), TOPICS.agent_commands))
    assert reasons(unsigned) == ["refused: unsigned RegisterAgent from agent ag"]
    assert (state.states[b"ag"].public_key, state.states[b"ag"].name) == (AGENT.public_key, "box")


def test_the_current_key_may_rotate_to_a_new_one():
    state = agents()
    decide(state, msg(register("r1", AGENT.public_key), TOPICS.agent_commands, AGENT))
    rotated = decide(state, msg(register("r2", NEW.public_key), TOPICS.agent_commands, AGENT))
    assert reasons(rotated) == [] and state.states[b"ag"].public_key == NEW.public_key
    assert reasons(decide(state, msg(c.Heartbeat("ag", "b1", 2), TOPICS.agent_commands, AGENT))) == [
        "refused: bad signature: Heartbeat is not signed by the registered key of agent ag"]
    assert reasons(decide(state, msg(c.Heartbeat("ag", "b2", 2), TOPICS.agent_commands, NEW))) == []


def test_unsigned_or_unregistered_heartbeats_and_deregistrations_are_refused():
    state = agents()
    assert reasons(decide(state, msg(c.Heartbeat("ag", "b0", 1), TOPICS.agent_commands, AGENT))) == [
        "refused: Heartbeat: agent ag has no registered key"]
    decide(state, msg(register("r1", AGENT.public_key), TOPICS.agent_commands, AGENT))
    before = state.states[b"ag"]
    assert reasons(decide(state, msg(c.Heartbeat("ag", "b1", 5, running=3), TOPICS.agent_commands))) == [
        "refused: unsigned Heartbeat from agent ag"]
    assert reasons(decide(state, msg(c.DeregisterAgent("ag", "d1", 5), TOPICS.agent_commands, OTHER))) == [
        "refused: bad signature: DeregisterAgent is not signed by the registered key of agent ag"]
    assert state.states[b"ag"] == before
    assert reasons(decide(state, msg(c.DeregisterAgent("ag", "d2", 5), TOPICS.agent_commands, AGENT))) == []
    assert state.states[b"ag"].status == "offline"


def test_a_registration_and_a_beat_in_one_batch_are_checked_against_the_pending_key():
    state = agents()
    decided = decide(state, msg(register("r1", AGENT.public_key), TOPICS.agent_commands, AGENT),
                     msg(c.Heartbeat("ag", "b1", 2), TOPICS.agent_commands, AGENT, offset=1))
    assert reasons(decided) == [] and [type(ev) for ev in events(decided, TOPICS.agent_events)] == [
        e.AgentRegistered, e.AgentStatusChanged, e.AgentHeartbeat]


def test_the_workers_own_agent_commands_need_no_signature():
    state = agents()
    decide(state, msg(register("r1", AGENT.public_key), TOPICS.agent_commands, AGENT))
    assert reasons(decide(state, msg(c.ReserveSlot("ag", "s1", 2, "t1"), TOPICS.agent_commands))) == []
    assert state.states[b"ag"].holding == frozenset({"t1"})


# tasks: reports are signed by the key of the agent holding the task -----------------------------

def tasks(escrow_id: str = "") -> PartitionState:
    state = PartitionState(codec, task_aggregate(), TOPICS, TOPICS.task_events, 0, 1, fee_bps=FEE)
    state.states[b"t1"] = TaskState("t1", seq=3, status="running", agent_id="ag", attempt=1, agent_key=AGENT.public_key,
                                    escrow_id=escrow_id, nodes=(NodeSpec("a", "echo"), NodeSpec("b", "echo")),
                                    node_status={"a": "running", "b": "pending"})
    return state


def failed(agent_id: str = "ag", command_id: str = "f1") -> c.ReportNodeFailed:
    return c.ReportNodeFailed("t1", command_id, 5, agent_id, 1, "a", "it broke")


def test_a_failure_report_signed_with_another_key_is_refused_and_the_task_runs_on():
    state = tasks()
    forged = decide(state, msg(failed(), TOPICS.task_commands, OTHER))
    assert reasons(forged) == ["refused: bad signature: ReportNodeFailed is not signed by the registered key of agent ag"]
    assert forged.events == 0 and state.states[b"t1"].status == "running"
    stranger = decide(state, msg(failed("intruder", "f2"), TOPICS.task_commands, OTHER))
    assert reasons(stranger) == ["refused: ReportNodeFailed: agent intruder does not hold task t1, "
                                 "so its signature cannot be checked"]
    assert reasons(decide(state, msg(failed(command_id="f3"), TOPICS.task_commands))) == [
        "refused: unsigned ReportNodeFailed from agent ag"]
    honest = decide(state, msg(failed(command_id="f4"), TOPICS.task_commands, AGENT))
    assert reasons(honest) == [] and [type(ev) for ev in events(honest, TOPICS.task_events)] == [
        e.NodeFailed, e.TaskRetryScheduled]


def test_a_rejection_is_made_at_the_door_and_never_taken_from_the_topic():
    state = tasks()
    sent = decide(state, msg(c.RejectResult("t1", "x", 5, "ag", 1, "slander"), TOPICS.task_commands, AGENT))
    assert reasons(sent) == ["refused: RejectResult is made at the door, never taken from a topic"]
    assert sent.events == 0


def test_a_signed_result_completes_and_its_payment_passes_the_ledgers_door():
    tasks_state = tasks(escrow_id="esc")
    outputs = {"a": '"x"', "b": '"y"'}
    digest = result_digest("t1", 1, outputs)
    result = c.ReportTaskResult("t1", "r1", 6, "ag", 1, digest, AGENT.sign(digest),
                                tuple(NodeOutput(k, v) for k, v in outputs.items()))
    decided = decide(tasks_state, msg(result, TOPICS.task_commands, AGENT))
    completed, = [ev for ev in events(decided, TOPICS.task_events) if isinstance(ev, e.TaskCompleted)]
    pay, = [r for r in decided.records if r.topic == TOPICS.ledger_commands]
    release = codec.decode(pay.value)
    assert (release.task_id, release.agent_id, release.completed_by, release.fee_bps) == ("t1", "ag", event_id(completed), FEE)
    books = held_ledger()
    paid = decide(books, Msg(TOPICS.ledger_commands, 0, 0, pay.key, pay.value, pay.headers))
    assert reasons(paid) == [] and [type(ev) for ev in events(paid, TOPICS.ledger_events)] == [e.EscrowReleased]


# the ledger: releases as the completion asks, money in and out on the API's path ---------------------

def held_ledger() -> PartitionState:
    state = PartitionState(codec, ledger_aggregate(FEE), TOPICS, TOPICS.ledger_events, 0, 1)
    books = ledger.LedgerState()
    for command in (c.DepositFunds(LEDGER_ID, "d", 1, "acme/alice", 1000),
                    c.HoldEscrow(LEDGER_ID, "h", 2, "esc", "t1", "acme/alice", "ag", 400)):
        for ev in ledger.decide(command, books, 2):
            books = ledger.evolve(books, ev)
    state.states[b"main"] = books
    return state


def release(command_id: str = "t1/9:pay", fee_bps: int = FEE, task_id: str = "t1", agent_id: str = "ag",
            completed_by: str = "t1/9") -> c.ReleaseEscrow:
    return c.ReleaseEscrow(LEDGER_ID, command_id, 9, "esc", fee_bps, task_id, agent_id, completed_by)


def test_a_release_must_match_its_escrow_the_fee_and_the_completion_that_caused_it():
    state = held_ledger()
    cases = [
        (release("a", fee_bps=9000), "refused: fee of 9000 bps is outside 0..500, the platform's fee"),
        (release("b", fee_bps=-100), "refused: fee of -100 bps is outside 0..500, the platform's fee"),
        (release("c", agent_id="mallory"), "refused: release names task 't1' on agent 'mallory'; escrow esc is for "
                                           "task 't1' on agent 'ag'"),
        (release("d", completed_by=""), "refused: release names no completion of task 't1' ('')"),
        (release("e", completed_by="t2/4"), "refused: release names no completion of task 't1' ('t2/4')"),
        (c.ReleaseEscrow(LEDGER_ID, "f", 9, "esc", FEE), "refused: release names task '' on agent ''; escrow esc is "
                                                         "for task 't1' on agent 'ag'"),
    ]
    for command, reason in cases:
        assert reasons(decide(state, msg(command, TOPICS.ledger_commands, causation_id=command.completed_by))) == [reason]
    uncaused = decide(state, msg(release("g"), TOPICS.ledger_commands, causation_id="t1/8"))
    assert reasons(uncaused) == ["refused: release of escrow esc was not caused by the completion it names"]
    assert state.states[b"main"].escrows["esc"].status == "held"
    paid = decide(state, msg(release(fee_bps=0), TOPICS.ledger_commands, causation_id="t1/9"))
    assert reasons(paid) == [] and events(paid, TOPICS.ledger_events)[0].fee == 0
    assert decide(state, msg(release("again"), TOPICS.ledger_commands, causation_id="t1/9")).records == []


def test_deposits_and_withdrawals_name_the_principal_that_authorised_them():
    state = held_ledger()
    deposit = c.DepositFunds(LEDGER_ID, "d2", 3, "mallory", 1_000_000)
    assert reasons(decide(state, msg(deposit, TOPICS.ledger_commands))) == [
        "refused: DepositFunds names no principal that authorised it (the API's path always does)"]
    withdrawal = c.WithdrawFunds(LEDGER_ID, "w1", 3, "acme/alice", 100)
    assert reasons(decide(state, msg(withdrawal, TOPICS.ledger_commands))) == [
        "refused: WithdrawFunds names no principal that authorised it (the API's path always does)"]
    assert state.states[b"main"].balance("acme/alice") == (600, 400)
    allowed = decide(state, msg(withdrawal, TOPICS.ledger_commands, extra=[principal_header("acme/alice")]))
    assert reasons(allowed) == [] and state.states[b"main"].balance("acme/alice") == (500, 400)


def test_offers_with_impossible_values_are_refused_at_registration():
    from dataclasses import replace
    from hive_streams.domain.model import Hardware
    good = register("ok", AGENT.public_key)
    bad = {"price NaN": replace(good, price=float("nan")), "price inf": replace(good, price=float("inf")),
           "price 1e300": replace(good, price=1e300), "price -1": replace(good, price=-1.0),
           "slots 0": replace(good, slots=0), "slots 2^31-1": replace(good, slots=2**31 - 1),
           "proficiency NaN": replace(good, capabilities=(Capability("echo", float("nan")),)),
           "vram inf": replace(good, hardware=Hardware(vram_gb=float("inf"))),
           "target NaN": replace(good, targets={"latency": float("nan")})}
    state = agents()
    for n, (what, command) in enumerate(bad.items()):
        refused = reasons(decide(state, msg(replace(command, command_id=f"bad{n}"), TOPICS.agent_commands, AGENT)))
        assert len(refused) == 1 and refused[0].startswith("refused: "), what
    assert b"ag" not in state.states
    assert reasons(decide(state, msg(good, TOPICS.agent_commands, AGENT))) == []
    assert state.states[b"ag"].status == "online"


def test_oversized_commands_are_dead_lettered_and_an_event_over_the_limit_is_never_written():
    state = PartitionState(codec, task_aggregate(), TOPICS, TOPICS.task_events, 0, 1, record_limit=2000)
    big = c.SubmitTask("tests:big", "s1", 1, "x" * 3000, "tests/dev", (NodeSpec("a", "echo"),))
    assert reasons(decide(state, msg(big, TOPICS.task_commands))) == [
        f"oversized: {len(msg(big, TOPICS.task_commands).value)} bytes, over the limit of 2000"]
    nodes = (NodeSpec("a", "echo", '{"value": "%s"}' % ("x" * 1900)),)
    state.record_limit = 5000
    assert events(decide(state, msg(c.SubmitTask("tests:grows", "s2", 1, "g", "tests/dev", nodes),
                                    TOPICS.task_commands, offset=1)), TOPICS.task_events)
    state.record_limit = 1900  # the assignment is small; the event it causes carries the nodes again
    decided = decide(state, msg(c.AssignTask("tests:grows", "a1", 2, "ag"), TOPICS.task_commands, offset=2))
    [why] = reasons(decided)
    assert why.startswith("decide failed") and "TaskAssigned would be" in why and "over the limit of 1900" in why
    assert not events(decided, TOPICS.task_events)


def test_strays_on_an_events_partition_are_left_out_of_the_fold():
    state = tasks()
    state.record_limit = 1000
    before = dict(state.states)
    submitted = e.TaskSubmitted("tests:s", 1, 5, name="s", requester="tests/dev", nodes=(NodeSpec("a", "echo"),))
    key, value, headers = codec.message(submitted, "/test")
    agent_event = codec.message(e.AgentRegistered("ag2", 1, 5, name="b", capabilities=()), "/test")
    for offset, (k, v) in enumerate([(b"tests:x", b"garbage"), (None, value), (b"other", value),
                                     (b"tests:x", None), (agent_event[0], agent_event[1]),
                                     (key, value + b"\0" * 1000)]):
        state.observe(Msg(TOPICS.task_events, 0, 100 + offset, k, v, headers))
    assert state.strays == 6 and state.states == before
    state.observe(Msg(TOPICS.task_events, 0, 200, key, value, headers))
    assert state.states[key].status != "new"


def test_a_blob_reference_must_be_signed_by_the_agent_holding_the_task():
    from hive_streams.domain.blobs import BlobRef, digest_of
    blob = digest_of(b"large")

    def result(signer: Signer, command_id: str, reference: str):
        outputs = {"a": reference, "b": '"y"'}
        digest = result_digest("t1", 1, outputs)
        return c.ReportTaskResult("t1", command_id, 6, "ag", 1, digest, AGENT.sign(digest),
                                  tuple(NodeOutput(k, v) for k, v in outputs.items()))

    def outcome(command) -> list:
        return [type(ev).__name__ for ev in events(decide(tasks(), msg(command, TOPICS.task_commands, AGENT)),
                                                   TOPICS.task_events)]

    forged = BlobRef(blob, 5, OTHER.sign(blob), 0, 0).to_json()
    assert "TaskCompleted" not in outcome(result(OTHER, "r1", forged))
    assert "TaskCompleted" not in outcome(result(AGENT, "r2", '{"$blob": {"digest": "md5:x"}}'))
    assert "TaskCompleted" in outcome(result(AGENT, "r3", BlobRef(blob, 5, AGENT.sign(blob), 0, 0).to_json()))
