from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.model import NodeOutput, NodeSpec, node_digest, result_digest
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
    if cls is c.ReportNodeCompleted and "digest" not in kw:
        kw["digest"] = node_digest("t1", attempt, node_id, kw["output_json"])
    return cls("t1", f"{cls.__name__}{node_id}", 20, agent, attempt, node_id, **kw)


def final(outputs, attempt=1, agent="ag", digest=None, signature="", nodes=()):
    digest = result_digest("t1", attempt, outputs) if digest is None else digest
    return c.ReportTaskResult("t1", "result", 21, agent, attempt, digest, signature, nodes)


def test_happy_path_sequence_and_final_state():
    state, log = run([
        submit(), c.AssignTask("t1", "x", 11, "ag"), c.StartTask("t1", "y", 12, "ag", 1),
        report(c.ReportNodeStarted, "a"), report(c.ReportNodeCompleted, "a", output_json='"A"'),
        report(c.ReportNodeStarted, "b"), report(c.ReportNodeCompleted, "b", output_json='"B"'),
        final({"a": '"A"', "b": '"B"'}),
    ])
    assert [type(ev).__name__ for ev in log] == [
        "TaskSubmitted", "TaskAssigned", "TaskStarted", "NodeStarted", "NodeCompleted",
        "NodeStarted", "NodeCompleted", "TaskCompleted"]
    assert log[0].queued  # one event: submitted and queued
    assert [ev.seq for ev in log] == list(range(1, 9))
    assert state.status == "completed" and state.seq == 8
    assert state.outputs == {"a": '"A"', "b": '"B"'}
    assert log[-1].outputs[1].output_json == '"B"'
    assert log[-1].result_digest == result_digest("t1", 1, {"a": '"A"', "b": '"B"'})


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
    assert [type(ev).__name__ for ev in log[-2:]] == ["TaskAssigned", "NodeStarted"]  # no separate TaskStarted
    assert state.status == "running"


def test_a_fast_task_completes_with_one_report_carrying_its_outputs():
    outputs = {"a": '"A"', "b": '"B"'}
    assigned, _ = run([submit(), c.AssignTask("t1", "x", 11, "ag")])
    nodes = tuple(NodeOutput(k, v) for k, v in outputs.items())
    state, log = run([final(outputs, nodes=nodes)], assigned)
    assert [type(ev).__name__ for ev in log] == ["TaskCompleted"]
    assert state.status == "completed" and state.outputs == outputs
    assert state.node_status == {"a": "completed", "b": "completed"}
    assert log[0].result_digest == result_digest("t1", 1, outputs)
    # some outputs reported before, the rest with the result
    half, _ = run([report(c.ReportNodeCompleted, "a", output_json='"A"')], assigned)
    state, log = run([final(outputs, nodes=(NodeOutput("b", '"B"'),))], half)
    assert state.status == "completed" and dict((o.node_id, o.output_json) for o in log[0].outputs) == outputs


def test_a_result_that_misses_an_output_or_changes_a_recorded_one_does_not_complete():
    outputs = {"a": '"A"', "b": '"B"'}
    assigned, _ = run([submit(), c.AssignTask("t1", "x", 11, "ag")])
    assert decide(final(outputs, nodes=(NodeOutput("a", '"A"'),)), assigned, 21) == []  # b missing
    half, _ = run([report(c.ReportNodeCompleted, "a", output_json='"A"')], assigned)
    forged = final({"a": '"X"', "b": '"B"'}, nodes=(NodeOutput("a", '"X"'), NodeOutput("b", '"B"')))
    events = decide(forged, half, 21)  # a's recorded output stands: the digest over the forged one fails
    assert [type(ev).__name__ for ev in events] == ["ResultRejected", "TaskRetryScheduled"]


def test_node_failure_fails_the_task_and_names_the_node():
    state, log = run([submit(max_retries=0), c.AssignTask("t1", "x", 11, "ag"), report(c.ReportNodeFailed, "a", error="boom")])
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


def test_node_failure_retries_with_backoff_and_keeps_completed_outputs():
    state, log = run([submit(max_retries=2, retry_backoff_seconds=2), c.AssignTask("t1", "x", 11, "ag"),
                      report(c.ReportNodeCompleted, "a", output_json='"A"'), report(c.ReportNodeFailed, "b", error="boom")])
    retry = log[-1]
    assert isinstance(retry, e.TaskRetryScheduled) and retry.not_before == 20 + 2000 and retry.agent_id == "ag"
    assert (state.status, state.failures, state.node_status) == ("queued", 1, {"a": "completed", "b": "pending"})
    state, log = run([c.AssignTask("t1", "y", 30, "other")], state)
    assert log[0].attempt == 2 and [o.node_id for o in log[0].completed] == ["a"]
    state, log = run([report(c.ReportNodeFailed, "b", attempt=2, agent="other", error="again")], state)
    assert log[-1].not_before == 20 + 4000  # doubled


def test_retries_exhausted_fail_the_task():
    state, log = run([submit(max_retries=0), c.AssignTask("t1", "x", 11, "ag"), report(c.ReportNodeFailed, "a", error="boom")])
    assert state.status == "failed" and "no retries allowed" in state.reason


def test_agent_loss_requeues_the_task():
    state, _ = run([submit(), c.AssignTask("t1", "x", 11, "ag")])
    assert decide(c.ReportAgentLost("t1", "l", 12, "someone-else"), state, 12) == []
    events = decide(c.ReportAgentLost("t1", "l", 12, "ag"), state, 12)
    assert isinstance(events[0], e.TaskRetryScheduled) and "went offline" in events[0].reason


def test_deadline_fails_the_task_and_names_the_holder():
    state, _ = run([c.SubmitTask("t1", "s", 10, "d", "r", NODES, deadline_at=100), c.AssignTask("t1", "x", 11, "ag")])
    assert decide(c.ExpireTask("t1", "e", 99), state, 99) == []
    events = decide(c.ExpireTask("t1", "e", 100), state, 100)
    assert events[0].reason == "deadline_exceeded" and events[0].agent_id == "ag"


def test_waiting_reason_is_recorded_once():
    state, log = run([submit(), c.NoteWaiting("t1", "n", 12, "no eligible agent")])
    assert state.waiting_reason == "no eligible agent" and isinstance(log[-1], e.TaskWaiting)
    assert decide(c.NoteWaiting("t1", "n2", 13, "no eligible agent"), state, 13) == []


def test_pinned_task_declines_other_agents():
    state, _ = run([submit(), c.PinTask("t1", "p", 11, "chosen")])
    assert isinstance(decide(c.AssignTask("t1", "x", 12, "other"), state, 12)[0], e.TaskAssignmentDeclined)
    assert isinstance(decide(c.AssignTask("t1", "x", 12, "chosen"), state, 12)[0], e.TaskAssigned)


def test_dependencies_block_until_completed_and_fail_on_failure():
    waiting = c.SubmitTask("t1", "s", 10, "d", "r", NODES, after=("u1", "u2"))
    state, log = run([waiting])
    assert state.status == "blocked" and log[-1].waiting_on == ("u1", "u2")
    state, _ = run([c.DependencyFinished("t1", "d1", 11, "u1", "completed")], state)
    assert state.status == "blocked"
    done, log = run([c.DependencyFinished("t1", "d2", 12, "u2", "completed")], state)
    assert done.status == "queued" and isinstance(log[-1], e.TaskValidated)
    failed, _ = run([c.DependencyFinished("t1", "d3", 12, "u2", "cancelled")], state)
    assert failed.status == "failed" and failed.reason == "dependency u2 cancelled"


def test_watchers_hear_the_outcome_now_or_later():
    state, _ = run([submit(), c.WatchTask("t1", "w", 11, "later")])
    _, log = run([c.CancelTask("t1", "k", 12)], state)
    assert [(type(ev).__name__, getattr(ev, "watcher", None)) for ev in log] == [("TaskCancelled", None), ("TaskOutcomeShared", "later")]
    ended, _ = run([c.CancelTask("t1", "k", 12)], state)
    events = decide(c.WatchTask("t1", "w2", 13, "late-watcher"), ended, 13)
    assert events[-1].outcome == "cancelled"


def assigned(**assign):
    return run([submit(), c.AssignTask("t1", "x", 11, "ag", **assign)])[0]


def test_a_keyless_agent_completes_only_on_a_final_result_whose_digest_matches():
    state, log = run([report(c.ReportNodeCompleted, "a", output_json='"A"'),
                      report(c.ReportNodeCompleted, "b", output_json='"B"')], assigned())
    assert not any(isinstance(ev, e.TaskCompleted) for ev in log)  # node reports alone never complete
    lying, _ = run([final({"a": '"A"', "b": '"forged"'})], state)
    assert lying.status == "queued" and "output digest does not match" in lying.reason
    done, log = run([final({"a": '"A"', "b": '"B"'})], state)
    assert done.status == "completed" and log[-1].result_digest == result_digest("t1", 1, {"a": '"A"', "b": '"B"'})


def test_a_lying_agent_whose_node_digest_does_not_match_is_rejected_not_recorded():
    lie = report(c.ReportNodeCompleted, "a", output_json='"A"', digest=node_digest("t1", 1, "a", '"other"'))
    state, log = run([lie], assigned())
    assert [type(ev) for ev in log] == [e.ResultRejected, e.TaskRetryScheduled]
    assert log[0].reason == "output digest does not match the output"
    assert state.outputs == {} and state.status == "queued"


def test_priced_work_is_declined_for_an_agent_without_a_key():
    events = decide(c.AssignTask("t1", "x", 11, "ag", escrow_id="esc"), run([submit()])[0], 11)
    assert [type(ev) for ev in events] == [e.TaskAssignmentDeclined] and events[0].escrow_id == "esc"
    keyed = decide(c.AssignTask("t1", "x", 11, "ag", escrow_id="esc", agent_key="k"), run([submit()])[0], 11)
    assert [type(ev) for ev in keyed] == [e.TaskAssigned]


def test_a_priced_task_held_by_a_keyless_agent_is_never_completed():
    nodes = (NodeSpec("a", "echo"),)
    legacy = TaskState("t1", seq=3, status="running", agent_id="ag", attempt=1, escrow_id="esc", nodes=nodes,
                       node_status={"a": "completed"}, outputs={"a": '"A"'})  # written before keys were required
    events = decide(final({"a": '"A"'}), legacy, 30)
    assert not any(isinstance(ev, e.TaskCompleted) for ev in events)
    assert isinstance(events[0], e.ResultRejected) and "key" in events[0].reason


def test_a_keyed_agent_must_sign_its_result():
    state, _ = run([report(c.ReportNodeCompleted, "a", output_json='"A"', signature="s"),
                    report(c.ReportNodeCompleted, "b", output_json='"B"', signature="s")], assigned(agent_key="k"))
    events = decide(final({"a": '"A"', "b": '"B"'}), state, 30)
    assert isinstance(events[0], e.ResultRejected) and events[0].reason == "result is not signed"


def test_a_task_belongs_to_its_requesters_tenant_and_waits_only_for_its_tasks():
    def submitted(task_id, requester, after=()):
        return run([c.SubmitTask(task_id, "s", 10, "d", requester, NODES, after=after)], TaskState(task_id))

    state, _ = submitted("acme:nightly", "acme/dev", after=("acme:extract",))
    assert state.status == "blocked"
    state, log = submitted("globex:nightly", "acme/dev")
    assert state.status == "rejected" and "not in the requester's tenant 'acme'" in state.reason
    assert isinstance(log[0], e.TaskSubmitted)
    state, _ = submitted("acme:nightly", "acme/dev", after=("globex:extract",))
    assert state.status == "rejected" and state.reason == "dependency 'globex:extract' is not a task of tenant 'acme'"
    state, _ = submitted("nightly", "acme/dev")  # a bare id is no tenant's: a raw command cannot escape its tenant
    assert state.status == "rejected"


def test_a_repeated_submission_changes_nothing():
    first = c.SubmitTask("acme:t", "s1", 10, "d", "acme/dev", NODES, definition_digest="one")
    state, _ = run([first], TaskState("acme:t"))
    assert state.definition_digest == "one"
    assert decide(c.SubmitTask("acme:t", "s2", 11, "other", "acme/dev", NODES, definition_digest="two"), state, 11) == []


def test_a_submission_without_a_deadline_gets_the_default_from_its_own_time():
    from hive_streams.domain.task import with_default_deadline
    given = with_default_deadline(submit(), 3_600_000)
    assert given.deadline_at == 10 + 3_600_000
    assert with_default_deadline(submit(deadline_at=99), 3_600_000).deadline_at == 99
    assert with_default_deadline(submit(), 0).deadline_at is None
    cancel = c.CancelTask("t1", "x", 10)
    assert with_default_deadline(cancel, 5) is cancel
    [submitted] = decide(given, TaskState("t1"), 20)
    assert submitted.deadline_at == 3_600_010


def test_a_second_offer_on_the_agent_a_task_runs_on_is_declined_without_freeing_its_slot():
    """A defence: with a lost task's slot held until its release this should not arise; if it does, the second
    escrow goes back (a decline naming no agent, so no slot is released) and the running attempt is untouched."""
    from hive_streams.streams.relays import follow_up
    running = TaskState("t1", seq=3, status="running", agent_id="ag", attempt=1, escrow_id="E1", nodes=NODES,
                        agent_key="k")
    declined = decide(c.AssignTask("t1", "a2", 5, "ag", "E2", "k"), running, 5)
    assert [type(ev) for ev in declined] == [e.TaskAssignmentDeclined]
    assert (declined[0].escrow_id, declined[0].agent_id) == ("E2", "")
    assert [type(cmd) for cmd in follow_up(declined[0])] == [c.RefundEscrow]
    assert decide(c.AssignTask("t1", "a3", 5, "ag", "E1", "k"), running, 5) == []  # the same assignment again
