"""The execution aggregate without a broker: definitions, step commits, frontier, barriers, interrupts."""
from __future__ import annotations

import json

import pytest

from hive_streams.domain import execution as ex
from hive_streams.domain import execution_records as x
from hive_streams.domain.definition import DefinitionError
from hive_streams.domain.workflow import canonical
from hive_streams.workflows import CHECKS, WorkflowBuilder, load_definition, validate_definition

YAML = """
name: fanjoin
channels:
  results: {type: {type: array, items: {type: integer}}, reducer: append}
  total: {type: {type: integer}, reducer: sum}
  verdict: {type: {type: string}, update: single}
nodes:
  split: {kind: echo, value: {}}
  work: {kind: echo, value: {}}
  prep: {kind: echo, value: {}}
  audit: {kind: echo, value: {}}
  collect: {kind: echo, value: {}}
entry: [split]
edges:
  - {from: split, to: prep}
  - {from: prep, to: audit}
joins:
  - {from: [work, audit], to: collect, name: gather}
"""


def start(raw, inputs=None, budget=None):
    state = x.ExecutionState("t:e1")
    cmd = x.StartExecution("t:e1", "c0", 1, raw["name"], 1, "t/alice", canonical(raw), json.dumps(inputs or {}),
                           budget)
    return run(state, cmd)


def run(state, cmd):
    events = ex.decide(cmd, state, cmd.at, CHECKS)
    for event in events:
        state = ex.evolve(state, event)
    return state, events


def finish(state, outputs: dict, order=None, outcome="completed", error=""):
    """Ends the current step's tasks with `outputs` (ordinal -> output), in `order`."""
    events = []
    for ordinal in order or sorted(outputs):
        item = state.items[ordinal]
        cmd = x.RecordItemOutcome(state.execution_id, f"o{state.step}.{ordinal}", 5, item.task_id,
                                  outcome if outputs[ordinal] is None else "completed",
                                  json.dumps(outputs[ordinal]), error)
        state, out = run(state, cmd)
        events += out
    return state, events


def nodes(state):
    return [i.node.id for i in state.items]


def test_yaml_definition_is_validated_with_field_paths():
    validate_definition(load_definition(YAML))
    bad = load_definition(YAML.replace("to: collect", "to: nowhere"))
    with pytest.raises(DefinitionError) as info:
        validate_definition(bad)
    assert info.value.path == "joins[0].to"
    with pytest.raises(DefinitionError) as info:
        validate_definition(load_definition(YAML.replace("reducer: sum", "reducer: avg")))
    assert info.value.path == "channels.total.reducer"
    with pytest.raises(DefinitionError) as info:
        validate_definition(load_definition(YAML.replace("{type: integer}, reducer: sum", "{type: intgr}, reducer: sum")))
    assert info.value.path == "channels.total.type"
    with pytest.raises(DefinitionError) as info:
        validate_definition(load_definition(YAML.replace("reducer: sum}", "reducer: sum, initial: x}")))
    assert info.value.path == "channels.total.initial"


def test_builder_gives_the_same_definition_as_yaml():
    b = (WorkflowBuilder("fanjoin")
         .add_channel("results", {"type": "array", "items": {"type": "integer"}}, "append")
         .add_node("split", "echo", entry=True, value={}).add_node("work", "echo", value={})
         .add_node("collect", "echo", value={}).add_router("split", [("total > `3`", "collect")])
         .add_edge("work", "collect", on="error").add_join_edge(["work"], "collect"))
    wf = b.build()
    assert [n.spec.id for n in wf.nodes] == ["split", "work", "collect"] and wf.joins[0].sources == ("work",)
    raw = b.to_dict()
    raw["routers"][0]["routes"][0]["when"] = "total >"
    with pytest.raises(DefinitionError) as info:
        validate_definition(raw)
    assert info.value.path == "routers[0].routes[0].when"


def test_fan_out_join_merges_in_ordinal_order_whatever_the_finishing_order():
    raw = load_definition(YAML)
    finals = []
    for order in ([0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 0, 1]):
        state, events = start(raw)
        assert nodes(state) == ["split"] and state.items[0].task_id == "t:e1.s1.n0"
        state, _ = finish(state, {0: {"spawn": [{"node": "work", "input": i} for i in (1, 2, 3)]}})
        assert nodes(state) == ["work", "work", "work", "prep"]
        outs = {0: {"writes": {"results": 10, "total": 1}}, 1: {"writes": {"results": 20, "total": 2}},
                2: {"writes": {"results": 30, "total": 3}}, 3: {}}
        state, events = finish(state, outs, order)
        committed = [e for e in events if isinstance(e, x.StepCommitted)][0]
        assert json.loads(committed.writes_json) == [[0, "work", "results", 10], [0, "work", "total", 1],
                                                     [1, "work", "results", 20], [1, "work", "total", 2],
                                                     [2, "work", "results", 30], [2, "work", "total", 3]]
        assert json.loads(committed.barriers_json) == {"gather": ["work"]}  # audit has not fired yet
        assert nodes(state) == ["audit"]
        state, events = finish(state, {0: {}})
        assert nodes(state) == ["collect"] and json.loads(state.barriers_json) == {}
        state, events = finish(state, {0: {"writes": {"verdict": "ok"}}})
        assert state.status == "completed" and isinstance(events[-1], x.ExecutionCompleted)
        finals.append(json.loads(state.values_json))
    assert finals[0] == finals[1] == finals[2] == {"results": [10, 20, 30], "total": 6, "verdict": "ok"}


def test_single_channel_written_twice_fails_naming_both_writers():
    state, _ = start(load_definition(YAML))
    state, _ = finish(state, {0: {"spawn": [{"node": "work", "input": 1}, {"node": "work", "input": 2}]}})
    state, events = finish(state, {0: {"writes": {"verdict": "a"}}, 1: {"writes": {"verdict": "b"}}, 2: {}}, [1, 2, 0])
    assert state.status == "failed"
    assert "t:e1.s2.n0" in state.reason and "t:e1.s2.n1" in state.reason and "'verdict'" in state.reason


def test_failed_task_fails_the_execution_unless_an_error_route_is_declared():
    raw = load_definition(YAML)
    state, _ = start(raw)
    state, events = finish(state, {0: None}, outcome="failed", error="boom")
    assert state.status == "failed" and "boom" in state.reason and "'split'" in state.reason
    raw["nodes"]["fix"] = {"kind": "echo", "value": {}}
    raw["edges"].append({"from": "split", "to": "fix", "on": "error"})
    state, _ = start(raw)
    state, _ = finish(state, {0: None}, outcome="failed", error="boom")
    assert state.status == "running" and nodes(state) == ["fix"]
    assert json.loads(state.items[0].input_json)["error"] == "boom"


def test_a_failure_cancels_the_running_tasks():
    state, _ = start(load_definition(YAML))
    state, _ = finish(state, {0: {"spawn": [{"node": "work", "input": 1}]}})
    item = state.items[1]
    state, events = run(state, x.RecordItemOutcome("t:e1", "f", 6, item.task_id, "failed", "null", "no"))
    assert events[-1].running == (state.items[0].task_id,)


def test_router_conditions_and_route_decisions():
    raw = load_definition(YAML)
    raw["routers"] = [{"from": "split", "routes": [{"when": "total > `5`", "to": "collect"}], "default": "audit"}]
    raw["edges"] = []
    state, _ = start(raw, {"total": 9})
    state, events = finish(state, {0: {}})
    assert nodes(state) == ["collect"]
    state, _ = start(raw, {"total": 1})
    state, _ = finish(state, {0: {}})
    assert nodes(state) == ["audit"]
    state, _ = start(raw, {"total": 1})
    state, events = finish(state, {0: {"route": "collect"}})
    assert nodes(state) == ["collect"]
    state, _ = start(raw)
    state, _ = finish(state, {0: {"route": "work"}})
    assert state.status == "failed" and "route 'work'" in state.reason


def test_interrupt_smallest_ordinal_then_resume_delivers_the_payload():
    state, _ = start(load_definition(YAML))
    state, _ = finish(state, {0: {"spawn": [{"node": "work", "input": 1}]}})
    state, events = finish(state, {0: {"interrupt": {"ask": "b"}}, 1: {"interrupt": {"ask": "a"}}}, [1, 0])
    assert state.status == "interrupted" and state.interrupt_id == "t:e1/s2/n0"
    assert json.loads(state.interrupt_json) == {"ask": "b"}
    stale, events = run(state, x.ResumeExecution("t:e1", "r0", 7, "t:e1/s2/n1", '"no"'))
    assert events == []
    state, events = run(state, x.ResumeExecution("t:e1", "r1", 7, "t:e1/s2/n0", '{"approved": true}'))
    assert isinstance(events[0], x.ExecutionResumed) and nodes(state) == ["audit"]
    assert json.loads(state.items[0].node.params_json)["hive"]["resume"] == {"approved": True}
    assert run(state, x.ResumeExecution("t:e1", "r2", 8, "t:e1/s2/n0", "null"))[1] == []


def test_state_is_the_fold_of_its_events():
    state, events = start(load_definition(YAML))
    log = list(events)
    state, out = finish(state, {0: {"spawn": [{"node": "work", "input": 1}]}})
    log += out
    state, out = finish(state, {0: {"writes": {"total": 4}}, 1: {}})
    log += out
    assert ex.fold("t:e1", log) == state
    assert [e.step for e in log if isinstance(e, x.StepCommitted)] == [1, 2]


def test_budget_is_shared_and_exhaustion_fails():
    raw = load_definition(YAML)
    raw["nodes"]["work"]["budget"] = 5
    state, _ = start(raw, budget=12)
    assert state.items[0].budget == 12 and state.spent == 12  # an unpriced node takes what is left
    raw["nodes"]["split"]["budget"] = 2
    state, _ = start(raw, budget=12)
    state, events = finish(state, {0: {"spawn": [{"node": "work", "input": i} for i in range(3)]}})
    assert state.status == "failed" and "budget exhausted" in state.reason


def test_cancel_names_the_running_tasks():
    state, _ = start(load_definition(YAML))
    state, events = run(state, x.CancelExecution("t:e1", "c", 9, "stop"))
    assert state.status == "cancelled" and events[0].running == ("t:e1.s1.n0",)


def test_task_local_and_untracked_channels_are_not_carried_or_logged():
    raw = load_definition(YAML)
    raw["channels"]["scratch"] = {"type": {"type": "integer"}, "reducer": "sum", "scope": "task_local"}
    raw["channels"]["cache"] = {"type": {"type": "string"}, "persistence": "untracked"}
    raw["routers"] = [{"from": "split", "routes": [{"when": "scratch > `1` && cache == 'hot'", "to": "collect"}],
                      "default": "audit"}]
    raw["edges"] = []
    state, _ = start(raw)
    state, events = finish(state, {0: {"writes": {"scratch": 2, "cache": "hot"}}})
    committed = [e for e in events if isinstance(e, x.StepCommitted)][0]
    assert nodes(state) == ["collect"]  # the router saw both in the merged values
    assert json.loads(committed.writes_json) == [[0, "split", "scratch", 2], [0, "split", "cache", None]]
    assert "scratch" not in json.loads(committed.values_json) and "cache" not in json.loads(committed.values_json)


def test_a_passed_deadline_fails_the_execution_through_the_sweep():
    from hive_streams.streams.deciders import execution_aggregate
    raw = load_definition(YAML)
    state = x.ExecutionState("t:e1")
    cmd = x.StartExecution("t:e1", "c0", 1, "fanjoin", 1, "t/alice", canonical(raw), "{}", None, 100)
    state, _ = run(state, cmd)
    assert state.items[0].task_id == "t:e1.s1.n0"
    due = execution_aggregate().due(state, 100)
    assert isinstance(due, x.ExpireExecution) and execution_aggregate().due(state, 99) is None
    state, events = run(state, due)
    assert state.status == "failed" and state.reason == "deadline passed" and events[0].running == ("t:e1.s1.n0",)


def test_an_output_that_breaks_the_convention_fails_naming_the_node():
    state, _ = start(load_definition(YAML))
    state, _ = finish(state, {0: {"write": {"total": 1}}})
    assert state.status == "failed" and "'split'" in state.reason and "'write'" in state.reason
    state, _ = start(load_definition(YAML))
    state, _ = finish(state, {0: {"writes": {"total": "many"}}})
    assert state.status == "failed" and "'total'" in state.reason
