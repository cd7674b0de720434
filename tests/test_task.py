from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.model import NodeSpec
from hive_streams.domain.task import TaskState, decide, evolve, fold

NODES = (NodeSpec("a", "echo"), NodeSpec("b", "echo", depends_on=("a",)))


def run(commands, state=None):
    state = state or TaskState("t1")
    log = []
    for cmd in commands:
        events = decide(cmd, state, now=cmd.at)
        for ev in events:
            state = evolve(state, ev)
        log += events
    return state, log


def submit(nodes=NODES, **kw):
    return c.SubmitTask("t1", "s", 10, "demo", "alice", nodes, **kw)


def report(cls, node_id, attempt=1, agent="ag", **kw):
    return cls("t1", f"{cls.__name__}{node_id}", 20, agent, attempt, node_id, **kw)


def test_happy_path_sequence_and_final_state():
    state, log = run([
        submit(), c.AssignTask("t1", "x", 11, "ag"), c.StartTask("t1", "y", 12, "ag", 1),
        report(c.ReportNodeStarted, "a"), report(c.ReportNodeCompleted, "a", output_json='"A"'),
        report(c.ReportNodeStarted, "b"), report(c.ReportNodeCompleted, "b", output_json='"B"'),
    ])
    assert [type(ev).__name__ for ev in log] == [
        "TaskSubmitted", "TaskValidated", "TaskAssigned", "TaskStarted", "NodeStarted", "NodeCompleted",
        "NodeStarted", "NodeCompleted", "TaskCompleted"]
    assert [ev.seq for ev in log] == list(range(1, 10))
    assert state.status == "completed" and state.seq == 9
    assert state.outputs == {"a": '"A"', "b": '"B"'}
    assert log[-1].outputs[1].output_json == '"B"'


def test_evolve_skips_events_already_applied():
    state, log = run([submit(), c.AssignTask("t1", "x", 11, "ag")])
    replayed = state
    for ev in log:  # a redelivery of everything
        replayed = evolve(replayed, ev)
    assert replayed == state
    assert fold(log + log, "t1") == state


def test_commands_are_idempotent():
    state, _ = run([submit(), c.AssignTask("t1", "x", 11, "ag")])
    assert decide(submit(), state, 30) == []
    assert decide(c.AssignTask("t1", "x2", 31, "ag"), state, 31) == []
    declined = decide(c.AssignTask("t1", "x3", 32, "other"), state, 32)
    assert [type(ev) for ev in declined] == [e.TaskAssignmentDeclined]


def test_reports_from_wrong_agent_or_attempt_are_ignored():
    state, _ = run([submit(), c.AssignTask("t1", "x", 11, "ag")])
    assert decide(report(c.ReportNodeStarted, "a", agent="intruder"), state, 40) == []
    assert decide(report(c.ReportNodeStarted, "a", attempt=7), state, 40) == []
    assert decide(report(c.ReportNodeStarted, "zz"), state, 40) == []


def test_first_report_starts_the_task_implicitly():
    state, log = run([submit(), c.AssignTask("t1", "x", 11, "ag"), report(c.ReportNodeStarted, "a")])
    assert [type(ev).__name__ for ev in log[-2:]] == ["TaskStarted", "NodeStarted"]
    assert state.status == "running"


def test_node_failure_fails_the_task_and_names_the_node():
    state, log = run([submit(), c.AssignTask("t1", "x", 11, "ag"), report(c.ReportNodeFailed, "a", error="boom")])
    assert state.status == "failed"
    assert "node a failed: boom" in state.reason
    assert log[-1].agent_id == "ag"


def test_invalid_graph_is_rejected_with_a_reason():
    state, log = run([submit(nodes=(NodeSpec("a", "echo", depends_on=("a",)),))])
    assert state.status == "rejected" and "itself" in state.reason
    assert [type(ev) for ev in log] == [e.TaskSubmitted, e.TaskRejected]


def test_cancel_only_once_and_carries_the_agent():
    state, _ = run([submit(), c.AssignTask("t1", "x", 11, "ag")])
    cancelled = decide(c.CancelTask("t1", "k", 50, "user"), state, 50)
    assert cancelled[0].agent_id == "ag"
    state = evolve(state, cancelled[0])
    assert decide(c.CancelTask("t1", "k2", 51), state, 51) == []
