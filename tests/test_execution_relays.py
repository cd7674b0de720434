"""Between executions and tasks, without a broker: frontier items become tasks, their ends come back,
and the execution's decider shell writes both in one batch; a fold of its records gives the same state."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain import execution_records as x
from hive_streams.domain.model import NodeOutput, NodeSpec
from hive_streams.domain.workflow import canonical
from hive_streams.streams.deciders import PartitionState, execution_aggregate
from hive_streams.streams.relays import follow_up
from hive_streams.topics import Topics, partition_for
from hive_streams.workflows import validate_definition

from .consumed import Msg

TOPICS = Topics("unit", 4)
codec = default_codec()
FLOW = {"name": "two", "channels": {"n": {"type": {"type": "integer"}, "reducer": "sum"}},
        "nodes": {"a": {"kind": "echo", "value": {"writes": {"n": 1}}}, "b": {"kind": "echo", "value": {}}},
        "entry": ["a"], "edges": [{"from": "a", "to": "b"}]}


def msg(command, offset: int) -> Msg:
    key, value, headers = codec.message(command, "/test")
    return Msg(TOPICS.execution_commands, partition_for(key, 4), offset, key, value, headers)


def test_a_started_step_submits_one_task_per_item_as_the_requester():
    item = x.StepItem(0, "acme:e.s1.n0", NodeSpec("a", "echo", "{}"), budget=0.5, max_retries=1)
    step = x.StepStarted("acme:e", 2, 7, 1, (item,), "acme/alice", 99, 0.5)
    [submit] = follow_up(step)
    assert isinstance(submit, c.SubmitTask) and submit.task_id == "acme:e.s1.n0"
    assert (submit.requester, submit.deadline_at, submit.budget, submit.max_retries) == ("acme/alice", 99, 0.5, 1)
    assert submit.command_id == "acme:e/2:0"


def test_a_frontier_task_ending_goes_back_to_its_execution_and_others_do_not():
    done = e.TaskCompleted("acme:e.s3.n1", 9, 5, "ag", (NodeOutput("a", '{"writes": {}}'),))
    back = [cmd for cmd in follow_up(done) if isinstance(cmd, x.RecordItemOutcome)]
    assert back == [x.RecordItemOutcome("acme:e", "acme:e.s3.n1/9:outcome", 5, "acme:e.s3.n1", "completed",
                                        '{"writes": {}}', "")]
    failed = e.TaskFailed("acme:e.s3.n2", 4, 5, "boom")
    assert [cmd.outcome for cmd in follow_up(failed) if isinstance(cmd, x.RecordItemOutcome)] == ["failed"]
    plain = e.TaskCompleted("acme:nightly", 9, 5, "ag", ())
    assert not [cmd for cmd in follow_up(plain) if isinstance(cmd, x.RecordItemOutcome)]


def test_a_cancelled_execution_cancels_its_running_tasks():
    cancelled = x.ExecutionCancelled("acme:e", 5, 8, "stop", ("acme:e.s2.n0", "acme:e.s2.n1"))
    assert [(cmd.task_id, type(cmd)) for cmd in follow_up(cancelled)] == [
        ("acme:e.s2.n0", c.CancelTask), ("acme:e.s2.n1", c.CancelTask)]


def test_the_shell_writes_events_and_task_submissions_together_and_a_fold_restores_the_state():
    start = x.StartExecution("acme:e", "s1", 1, "two", 1, "acme/alice", canonical(FLOW))
    first = msg(start, 0)
    state = PartitionState(codec, execution_aggregate(), TOPICS, TOPICS.execution_events, first.partition, 4)
    started = state.decide([first], now=2)
    assert {r.topic for r in started.records} == {TOPICS.execution_events, TOPICS.task_commands}
    state.apply(started)
    outcome = x.RecordItemOutcome("acme:e", "o1", 3, "acme:e.s1.n0", "completed", '{"writes": {"n": 1}}')
    decided = state.decide([msg(outcome, 1), msg(outcome, 2)], now=4)  # a redelivery changes nothing
    types = [codec.decode(r.value).__class__.__name__ for r in decided.records if r.topic == TOPICS.execution_events]
    assert types == ["StepItemFinished", "StepCommitted", "StepStarted"]
    state.apply(decided)
    live = state.states[b"acme:e"]
    assert live.step == 2 and json.loads(live.values_json) == {"n": 1}
    refolded = PartitionState(codec, execution_aggregate(), TOPICS, TOPICS.execution_events, first.partition, 4)
    events = [r for r in started.records + decided.records if r.topic == TOPICS.execution_events]
    for offset, r in enumerate(events):
        refolded.observe(Msg(r.topic, r.partition, offset, r.key, r.value, r.headers))
    assert refolded.states[b"acme:e"] == live and refolded.decided_to == 1  # the redelivery decided nothing
    garbage = Msg(TOPICS.execution_commands, first.partition, 9, b"acme:e", b"not avro", [])
    assert state.decide([garbage], 5).records[0].topic == TOPICS.deadletter


def test_the_readme_example_is_a_valid_workflow():
    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("## Workflows and executions", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    wf = validate_definition(yaml.safe_load(block))
    assert wf.channel("scratch").scope == "task_local" and wf.joins[0].sources == ("work", "check")


def test_a_start_whose_definition_does_not_parse_is_dead_lettered_with_the_reason():
    bad = x.StartExecution("acme:bad", "s9", 1, "two", 1, "acme/alice", '{"name": "two"}')
    message = msg(bad, 0)
    state = PartitionState(codec, execution_aggregate(), TOPICS, TOPICS.execution_events, message.partition, 4)
    [record] = state.decide([message], now=2).records
    reason = dict(record.headers)["dlq_reason"].decode()
    assert record.topic == TOPICS.deadletter and "decide failed" in reason and "nodes" in reason
