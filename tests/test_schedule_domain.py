"""The schedule aggregate: each slot fires once, whoever asks and however often. Pure: no broker."""
import json
from functools import reduce

from hive_streams.domain import schedule as s
from hive_streams.domain.commands import SubmitTask
from hive_streams.streams.relays import follow_up

SID = "acme:nightly"
TASK = {"name": "report", "nodes": [{"id": "a", "kind": "echo", "params": {"message": "hi"}}], "deadline_seconds": 60}


def run(state, *commands):
    for command in commands:
        state = reduce(s.evolve, s.decide(command, state, 0), state)
    return state


def created(at=1_000, catchup="all"):
    return run(s.ScheduleState(SID), s.CreateSchedule(SID, "c1", at, "acme/dev", "* * * * * *", "UTC", catchup,
                                                      json.dumps({"task": TASK})))


def test_created_schedule_starts_after_its_creation():
    state = created()
    assert state.active and state.last_slot_at == 1_000


def test_a_slot_fires_once_even_when_sent_again_or_in_an_overlapping_plan():
    state = created()
    first = s.decide(s.FireSchedule(SID, "f:3000", 3_500, (2_000, 3_000), (), 3_000), state, 0)
    assert [ev.slot_at for ev in first] == [2_000, 3_000]
    state = reduce(s.evolve, first, state)
    again = s.decide(s.FireSchedule(SID, "f:4000", 4_200, (2_000, 3_000, 4_000), (), 4_000), state, 0)
    assert [ev.slot_at for ev in again] == [4_000]
    assert s.decide(s.FireSchedule(SID, "f:3000", 3_500, (2_000, 3_000), (), 3_000), run(state, *[]), 0) == []


def test_skipped_slots_move_the_schedule_on_without_firing():
    state = created(catchup="skip")
    events = s.decide(s.FireSchedule(SID, "f", 9_000, (9_000,), (2_000, 3_000), 9_000), state, 0)
    assert [type(ev).__name__ for ev in events] == ["ScheduleFired", "ScheduleSkipped"]
    state = reduce(s.evolve, events, state)
    assert (state.last_slot_at, state.fired, state.skipped) == (9_000, 1, 2)


def test_a_deleted_schedule_fires_nothing():
    state = run(created(), s.DeleteSchedule(SID, "d", 1_500))
    assert state.status == "deleted"
    assert s.decide(s.FireSchedule(SID, "f", 3_000, (2_000,), (), 2_000), state, 0) == []


def test_creation_is_refused_outside_the_requesters_tenant_or_without_a_task_or_workflow_target():
    foreign = s.CreateSchedule(SID, "c", 1, "globex/dev", "* * * * *", "UTC", "skip", json.dumps({"task": TASK}))
    neither = s.CreateSchedule(SID, "c", 1, "acme/dev", "* * * * *", "UTC", "skip", json.dumps({"job": "w"}))
    assert s.decide(foreign, s.ScheduleState(SID), 0) == [] and s.decide(neither, s.ScheduleState(SID), 0) == []
    pinned = json.dumps({"workflow": "w", "version": 2, "definition": "{}", "inputs": {}})
    workflow = s.CreateSchedule(SID, "c", 1, "acme/dev", "* * * * *", "UTC", "skip", pinned)
    assert [type(ev).__name__ for ev in s.decide(workflow, s.ScheduleState(SID), 0)] == ["ScheduleCreated"]


def test_a_fired_slot_with_a_workflow_target_starts_an_execution_of_the_pinned_version():
    from hive_streams.domain.execution_records import StartExecution
    from hive_streams.streams.relays import follow_up
    pinned = json.dumps({"workflow": "w", "version": 2, "definition": '{"name":"w"}', "inputs": {"n": 1}})
    fired = s.ScheduleFired(SID, 2, 5_000, slot_at=4_000, task_id=f"{SID}.4000", requester="acme/dev",
                            target_json=pinned)
    (start,) = follow_up(fired, 0)
    assert isinstance(start, StartExecution) and start.execution_id == f"{SID}.4000"
    assert (start.workflow, start.version, start.definition_json, start.requester) == ("w", 2, '{"name":"w"}', "acme/dev")
    assert json.loads(start.inputs_json) == {"n": 1} and start.command_id == f"schedule:{SID}:4000"


def test_a_fired_slot_submits_a_task_named_by_schedule_and_slot():
    state = created()
    fired = s.decide(s.FireSchedule(SID, "f", 2_500, (2_000,), (), 2_000), state, 0)[0]
    [submit] = follow_up(fired)
    assert isinstance(submit, SubmitTask)
    assert submit.task_id == "acme:sched.nightly.2000" and submit.command_id == f"schedule:{SID}:2000"
    assert submit.requester == "acme/dev" and submit.deadline_at == 2_500 + 60_000
    assert follow_up(fired) == [submit]  # deterministic: a repeat is the same command
