"""Triggers: matching task events, counting within a window, re-arming and the cooldown. Pure: no broker."""
import json
from functools import reduce

from hive_streams.domain import events as e
from hive_streams.domain import trigger as t
from hive_streams.domain.model import NodeSpec
from hive_streams.domain.task import TaskState
from hive_streams.streams.relays import follow_up

TID = "acme:diagnose"
MINUTE = 60_000
DIAGNOSIS = {"name": "diagnose", "nodes": [{"id": "a", "kind": "echo", "value": "look"}]}


def created(count=3, window_ms=10 * MINUTE, cooldown_ms=10 * MINUTE, where=(), group_by="task.capabilities"):
    command = t.CreateTrigger(TID, "c", 0, "acme/ops", "TaskFailed", where, group_by, count, window_ms, cooldown_ms,
                              json.dumps({"task": DIAGNOSIS}))
    return reduce(t.evolve, t.decide(command, t.TriggerState(TID), 0), t.TriggerState(TID))


def task(task_id="acme:job", kind="shell", name="job") -> TaskState:
    return TaskState(task_id, status="failed", name=name, requester="acme/dev", nodes=(NodeSpec("a", kind),))


def failed(task_id="acme:job", at=0, seq=5) -> e.TaskFailed:
    return e.TaskFailed(task_id, seq, at, "boom")


def note(state, match):
    events = t.decide(match, state, 0)
    return reduce(t.evolve, events, state), events


def feed(state, *failures):
    """Each (task id, at, kind): its matches noted in order; returns the state and the firings."""
    fired = []
    for i, (task_id, at, kind) in enumerate(failures):
        for match in t.matches(state, failed(task_id, at, seq=i + 1), task(task_id, kind)):
            state, events = note(state, match)
            fired += [ev for ev in events if isinstance(ev, t.TriggerFired)]
    return state, fired


def test_fires_on_the_third_match_within_the_window_and_not_before():
    state, fired = feed(created(), ("acme:a", 0, "shell"), ("acme:b", MINUTE, "shell"))
    assert fired == [] and len(state.group("shell").times) == 2
    state, fired = feed(state, ("acme:c", 2 * MINUTE, "shell"))
    assert [(f.group, f.events) for f in fired] == [("shell", ("acme:a/1", "acme:b/2", "acme:c/1"))]


def test_matches_older_than_the_window_do_not_count():
    state, fired = feed(created(), ("acme:a", 0, "shell"), ("acme:b", MINUTE, "shell"),
                        ("acme:c", 10 * MINUTE + MINUTE // 2, "shell"))
    assert fired == [] and state.group("shell").times == (MINUTE, 10 * MINUTE + MINUTE // 2)


def test_groups_count_apart():
    state, fired = feed(created(), ("acme:a", 0, "shell"), ("acme:b", 1, "python"), ("acme:c", 2, "shell"),
                        ("acme:d", 3, "python"))
    assert fired == []
    assert feed(state, ("acme:e", 4, "python"))[1][0].group == "python"


def test_rearms_after_firing_and_ignores_matches_inside_the_cooldown():
    state, fired = feed(created(), *[(f"acme:{i}", i * MINUTE, "shell") for i in range(3)])
    assert len(fired) == 1 and state.group("shell").times == ()
    state, fired = feed(state, *[(f"acme:x{i}", (3 + i) * MINUTE, "shell") for i in range(4)])
    assert fired == [] and state.group("shell").times == ()  # inside the ten-minute cooldown: nothing counted
    state, fired = feed(state, *[(f"acme:y{i}", (13 + i) * MINUTE, "shell") for i in range(3)])
    assert len(fired) == 1 and fired[0].task_id != state.trigger_id


def test_the_same_event_counts_once():
    state = created()
    match = t.matches(state, failed("acme:a"), task("acme:a"))[0]
    state, _ = note(state, match)
    assert t.decide(match, state, 0) == []


def test_a_trigger_never_sees_its_own_tasks_nor_another_tenants():
    state = created(count=1)
    own = t.fired_task_id(TID, 7)
    assert own == "acme:trig.diagnose.7"
    assert t.matches(state, failed(own), task(own)) == []
    assert t.matches(state, failed("globex:job"), task("globex:job")) == []
    assert t.matches(state, e.TaskCompleted("acme:job", 3, 0, "ag", ()), task()) == []
    assert len(t.matches(state, failed("acme:trig.other.1"), task("acme:trig.other.1"))) == 1


def test_field_predicates():
    def where(*predicates):
        return created(count=1, where=tuple(t.Predicate(f, op, json.dumps(v)) for f, op, v in predicates))
    assert t.matches(where(("reason", "eq", "boom")), failed(), task())
    assert not t.matches(where(("reason", "ne", "boom")), failed(), task())
    assert t.matches(where(("task.name", "in", ["job", "other"]), ("task.capabilities", "contains", "shell")),
                     failed(), task())
    assert not t.matches(where(("task.capabilities", "contains", "gpu")), failed(), task())
    assert not t.matches(where(("seq", "gt", 9)), failed(), task())
    assert t.matches(where(("seq", "lt", 9)), failed(), task())


def test_firing_submits_the_target_as_the_triggers_creator():
    state, fired = feed(created(count=1), ("acme:a", 5, "shell"))
    [submit] = follow_up(fired[0])
    assert submit.task_id == fired[0].task_id == f"acme:trig.diagnose.{fired[0].seq}"
    assert submit.command_id == f"trigger:{TID}:{fired[0].seq}" and submit.requester == "acme/ops"


def test_a_deleted_trigger_matches_nothing():
    state = created(count=1)
    state = reduce(t.evolve, t.decide(t.DeleteTrigger(TID, "d", 1), state, 0), state)
    assert t.matches(state, failed(), task()) == []
