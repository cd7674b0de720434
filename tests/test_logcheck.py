"""The log checkers fail on a bad log: fed real encoded records, one fault at a time, no broker."""
from __future__ import annotations

from dataclasses import replace

from hive_streams.domain import agent, ledger, task
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.model import Capability, Leg, NodeSpec, node_digest, result_digest

from .eventlog import decoded, encoded
from .logcheck import evidence, history, log_problems

TOPICS = {"task": "x.task.events", "agent": "x.agent.events", "ledger": "x.ledger.events"}
NODES = (NodeSpec("a", "echo"),)


def decide_all(decide, evolve, state, commands) -> list:
    out = []
    for cmd in commands:
        for ev in decide(cmd, state, cmd.at):
            state = evolve(state, ev)
            out.append(ev)
    return out


def scenario(reserve: bool = True, settle: bool = True) -> dict[str, list]:
    """A priced task run by a keyed agent, paid from escrow: every event made by the domain."""
    money = [c.DepositFunds("main", "d", 1, "alice", 500), c.HoldEscrow("main", "h", 2, "esc", "t1", "alice", "ag", 100)]
    money += [c.ReleaseEscrow("main", "r", 9, "esc", 500)] if settle else []
    offer = c.RegisterAgent("ag", "reg", 1, "ag", (Capability("echo"),), 1, price=1.0, public_key="k")
    slots = [offer] + ([c.ReserveSlot("ag", "res", 3, "t1", escrow_id="esc")] if reserve else [])
    slots.append(c.ReleaseSlot("ag", "rel", 9, "t1"))
    output = '"A"'
    work = [c.SubmitTask("t1", "s", 1, "t", "alice", NODES), c.AssignTask("t1", "as", 4, "ag", "esc", "k"),
            c.ReportNodeCompleted("t1", "n", 5, "ag", 1, "a", output, node_digest("t1", 1, "a", output), "sig"),
            c.ReportTaskResult("t1", "f", 6, "ag", 1, result_digest("t1", 1, {"a": output}), "sig")]
    return {"ledger": decide_all(ledger.decide, ledger.evolve, ledger.LedgerState(), money),
            "agent": decide_all(lambda cmd, s, now: agent.decide(cmd, s, now, 10_000), agent.evolve,
                                agent.AgentState("ag"), slots),
            "task": decide_all(task.decide, task.evolve, task.TaskState("t1"), work)}


def records(log: dict[str, list]) -> list:
    return encoded((TOPICS[kind], ev) for kind, events in log.items() for ev in events)


def with_events(kind: str, *extra) -> dict[str, list]:
    log = scenario()
    log[kind] = log[kind] + list(extra)
    return log


def problems(log) -> list[str]:
    return log_problems(records(log))


def test_a_clean_log_has_no_problems():
    log = scenario()
    assert [type(ev).__name__ for ev in log["task"]][-1] == "TaskCompleted"
    assert problems(log) == []


def test_byte_identical_copies_collapse_into_one_history():
    log = scenario()
    h = history(records(log) + records({"task": log["task"][2:4]}))
    assert h.problems == [] and [ev.seq for ev in h.of("task")["t1"]] == list(range(1, len(log["task"]) + 1))


def test_a_different_event_at_one_seq_is_a_problem():
    log = scenario()
    twin = replace(log["task"][2], at=log["task"][2].at + 1)  # same aggregate/seq, another fact
    found = log_problems(records(log) + records({"task": [twin]}))
    assert any("t1/3: different events at one seq" in p for p in found), found


def test_an_undecodable_record_is_a_problem():
    garbage = decoded(TOPICS["task"], 1, 7, b"t1", b"\xc3\x01 not avro")
    assert garbage.event is None and garbage.error
    found = log_problems(records(scenario()) + [garbage])
    assert found == [f"{TOPICS['task']}[1]@7: undecodable ({garbage.error})"]


def test_a_gap_in_seqs_is_a_problem():
    log = scenario()
    log["task"] = log["task"][:2] + log["task"][3:]
    assert any("task t1: seqs are not 1..3: 1-2,4" in p for p in problems(log)), problems(log)


def test_a_record_under_another_key_is_a_problem():
    r = records(scenario())[0]
    assert any("is not the aggregate" in p for p in log_problems([replace(r, key=b"someone-else")]))


def test_an_aggregate_on_two_partitions_is_a_problem():
    moved = [replace(r, partition=1) if r.topic == TOPICS["task"] and r.offset == 3 else r for r in records(scenario())]
    assert any("task t1: on more than one partition" in p for p in log_problems(moved))


def test_a_task_that_ends_twice_is_a_problem():
    last = scenario()["task"][-1]
    twice = with_events("task", e.TaskCancelled("t1", last.seq + 1, 20, "late cancel"))
    assert "task t1 ended 2 times: {'TaskCompleted': 1, 'TaskCancelled': 1}" in problems(twice)


def test_a_task_that_never_ends_is_a_problem_once_everything_should_have():
    log = scenario()
    log["task"] = log["task"][:-1]
    assert "task t1 ended 0 times: never" in problems(log)
    assert not any("ended" in p for p in log_problems(records(log), everything_ended=False))


def test_an_assignment_without_a_reserved_slot_is_a_problem():
    found = problems(scenario(reserve=False))
    assert "task t1 assigned to ag 1 times on 0 reservations (escrow esc)" in found, found


def test_an_agent_over_its_slots_is_a_problem():
    log = scenario()
    at = next(i for i, ev in enumerate(log["agent"]) if isinstance(ev, e.SlotReserved)) + 1
    forged = replace(log["agent"][at - 1], task_id="t2", escrow_id="")  # a second task while the first is held
    log["agent"] = [replace(ev, seq=i + 1) for i, ev in enumerate(log["agent"][:at] + [forged] + log["agent"][at:])]
    assert any("agent ag holds 2 > 1 slots" in p for p in problems(log)), problems(log)


def test_a_completion_without_the_digest_of_its_result_is_a_problem():
    log = scenario()
    log["task"][-1] = replace(log["task"][-1], result_digest="")
    assert "task t1/4: completed without the digest of its result" in problems(log)


def test_an_unbalanced_entry_is_a_problem():
    log = scenario()
    deposit = log["ledger"][0]
    log["ledger"][0] = replace(deposit, legs=(Leg("external", "available", -500), Leg("alice", "available", 600)))
    found = problems(log)
    assert any("FundsDeposited main/1 does not balance" in p for p in found), found
    assert any("inside != 500 deposited less withdrawn" in p for p in found)


def test_an_escrow_settled_twice_is_a_problem():
    release = scenario()["ledger"][-1]
    refund = e.EscrowRefunded("main", release.seq + 1, 30, "esc", "t1", "alice", 100, "again",
                              (Leg("alice", "held", -100), Leg("alice", "available", 100)))
    found = problems(with_events("ledger", refund))
    assert "escrow esc settled 2 times" in found, found


def test_an_escrow_never_settled_is_a_problem_once_everything_ended():
    found = problems(scenario(settle=False))
    assert "escrow esc never settled" in found
    assert any("escrow esc never settled, not EscrowReleased" in p for p in found)


def test_a_release_no_completion_earned_is_a_problem():
    log = scenario()
    books = ledger.LedgerState()
    for ev in log["ledger"]:
        books = ledger.evolve(books, ev)
    log["ledger"] += decide_all(ledger.decide, ledger.evolve, books, [  # t2 never ran
        c.HoldEscrow("main", "h2", 10, "esc2", "t2", "alice", "ag", 100),
        c.ReleaseEscrow("main", "r2", 11, "esc2", 500, "t2", "ag", "t2/7")])
    found = problems(log)
    assert found == ["escrow esc2 released to ag for task t2 without its completion"], found


def test_a_failed_check_shows_the_records_of_what_it_names():
    log = scenario(settle=False)
    log["task"] += decide_all(task.decide, task.evolve, task.TaskState("t2"),
                              [c.SubmitTask("t2", "s2", 1, "t", "alice", NODES), c.CancelTask("t2", "x2", 2)])
    found = problems(log)
    shown = evidence(records(log), found).splitlines()
    ours = [line for line in shown if "@" in line]
    assert any("EscrowHeld" in line for line in ours) and any("SlotReserved" in line for line in ours)
    assert any("TaskAssigned" in line for line in ours)
    assert not any("task_id='t2'" in line for line in ours)  # an aggregate no problem names stays out


def test_a_slot_its_task_never_released_is_a_problem():
    log = scenario()
    log["agent"] = [ev for ev in log["agent"] if not isinstance(ev, e.SlotReleased)]
    assert any("task t1 at agent ag: 1 reservations, 0 releases, 1 ends" in p for p in problems(log))


def test_a_slot_freed_by_an_offline_instead_of_its_release_is_a_problem():
    log = scenario()
    agent_events = [ev for ev in log["agent"] if not isinstance(ev, e.SlotReleased)]
    last = agent_events[-1]
    offline = e.AgentStatusChanged("ag", last.seq + 1, 8, "offline", "no heartbeat", ("t1",), holds_kept=True)
    log["agent"] = agent_events + [offline]
    assert any("1 reservations, 0 releases" in p for p in problems(log))
    legacy = replace(offline, holds_kept=False)  # written before holds were kept: the offline freed the slot
    log["agent"] = agent_events + [legacy]
    assert not any("reservations" in p for p in problems(log))
