"""The per-agent and per-capability statistics fold, on a synthetic event list."""
from hive_streams.analytics.performance import fold, percentile
from hive_streams.domain import events as e
from hive_streams.domain.model import NodeSpec, Requirement

ECHO = (NodeSpec("a", "echo"),)
GPU = (Requirement("gpu", 0.5),)


def submitted(task, at, requires=(), seq=1):
    return e.TaskSubmitted(task_id=task, seq=seq, at=at, name=task, requester="acme/alice", nodes=ECHO,
                           requires=requires, queued=True)


def assigned(task, seq, at, agent, attempt=1):
    return e.TaskAssigned(task_id=task, seq=seq, at=at, agent_id=agent, attempt=attempt, nodes=ECHO)


def completed(task, seq, at, agent):
    return e.TaskCompleted(task_id=task, seq=seq, at=at, agent_id=agent, outputs=())


def released(seq, task, agent, amount, fee):
    return e.EscrowReleased(ledger_id="main", seq=seq, at=0, escrow_id=f"x-{task}", task_id=task, agent_id=agent,
                            amount=amount, fee=fee)


LOG = [
    submitted("t1", 0, GPU), assigned("t1", 2, 1_000, "a"), completed("t1", 3, 4_000, "a"),
    submitted("t2", 0), assigned("t2", 2, 2_000, "a"),
    e.TaskRetryScheduled(task_id="t2", seq=3, at=5_000, agent_id="a", attempt=1, reason="node failed", not_before=6_000),
    assigned("t2", 4, 9_000, "b", attempt=2), completed("t2", 5, 10_000, "b"),
    submitted("t3", 0), assigned("t3", 2, 500, "b"),
    e.TaskFailed(task_id="t3", seq=3, at=3_600_500, reason="deadline_exceeded", agent_id="b"),
    submitted("t4", 0), assigned("t4", 2, 100, "a"), e.TaskCancelled(task_id="t4", seq=3, at=200, agent_id="a"),
    released(1, "t1", "a", 1000, 50), released(2, "t2", "b", 400, 20),
]


def test_per_agent_success_run_time_wait_and_earnings():
    rows = {r.name: r for r in fold(LOG).agents()}
    a, b = rows["a"], rows["b"]
    assert (a.completed, a.failed, a.success_rate) == (1, 1, 0.5)  # the cancelled attempt counts neither way
    assert (a.run_p50_ms, a.run_p95_ms) == (3_000, 3_000)
    assert (a.wait_p50_ms, a.wait_p95_ms) == (1_000, 2_000)  # waits 1000 (t1), 2000 (t2), 100 (t4)
    assert a.earnings == 950
    assert (b.completed, b.failed, b.success_rate, b.earnings) == (1, 1, 0.5, 380)
    assert b.run_p50_ms == 1_000
    assert (b.wait_p50_ms, b.wait_p95_ms) == (500, 3_000)  # t2 waited from its retry's not_before (6000) to 9000


def test_per_capability_counts_required_capabilities_and_node_kinds():
    rows = {r.name: r for r in fold(LOG).capabilities_rows()}
    assert set(rows) == {"echo", "gpu"}
    assert (rows["gpu"].completed, rows["gpu"].failed, rows["gpu"].earnings) == (1, 0, 950)
    assert (rows["echo"].completed, rows["echo"].failed) == (2, 2)
    assert rows["echo"].earnings == 950 + 380


def test_throughput_is_completions_per_hour_over_the_span_seen():
    b = {r.name: r for r in fold(LOG).agents()}["b"]
    assert b.per_hour == 1 / ((3_600_500 - 500) / 3_600_000)


def test_duplicated_events_count_once():
    assert fold(LOG + LOG).agents() == fold(LOG).agents()
    assert fold([x for ev in LOG for x in (ev, ev)]).capabilities_rows() == fold(LOG).capabilities_rows()


def test_nearest_rank_percentiles():
    assert percentile([], 50) is None
    assert percentile([5], 95) == 5
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50, 95, 100)


def test_a_declined_assignment_leaves_the_running_attempt_as_it_is():
    """A decline changes no task: an offer that arrives while the task runs (elsewhere, or on its own agent with
    another escrow) does not end the attempt, so its run time is still counted when it completes."""
    declined = e.TaskAssignmentDeclined(task_id="t1", seq=3, at=2_000, agent_id="", reason="already runs on a",
                                        escrow_id="x-2")
    log = [submitted("t1", 0), assigned("t1", 2, 1_000, "a"), declined, completed("t1", 4, 4_000, "a")]
    a = {r.name: r for r in fold(log).agents()}["a"]
    assert (a.completed, a.run_p50_ms) == (1, 3_000)
