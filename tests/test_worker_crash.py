"""SIGKILL the worker while tasks run until commands it had decided are delivered again; still each task
completes once and the log holds one history per aggregate."""
from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from sqlalchemy import create_engine, text

from hive_streams.domain import events as e
from hive_streams.processes import wait_until

from .eventlog import committed_offsets, events_of, kill_in_open_transaction, whole_log
from .logcheck import history, last_problems, log_problems
from .stack import ALL_KINDS, Stack

pytestmark = pytest.mark.stack
TASKS = 24
ROUNDS = 3


def chain(task_id: str) -> dict:
    return {"id": task_id, "name": task_id, "nodes": [
        {"id": "a", "kind": "sleep", "seconds": 0.3},
        {"id": "b", "kind": "shell", "command": "sleep 0.4; echo b", "depends_on": ["a"]},
        {"id": "c", "kind": "echo", "value": "{{ nodes.b.output.stdout }}", "depends_on": ["b"]},
    ]}


def statuses(engine, ids) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("select task_id, status from tasks where task_id = any(:ids)"), {"ids": list(ids)})
        return dict(rows.all())


def decided_but_uncommitted(stack: Stack) -> list[str]:
    """Read while the worker is dead: task commands at or after its group's committed offsets whose events
    it had already written (committed or not). A restarted worker is handed exactly these again."""
    topics, n = stack.topics, stack.topics.partitions
    committed = asyncio.run(committed_offsets(stack.bootstrap, stack.fabric.env["HIVE_WORKER_ID"],
                                              topics.task_commands, n))
    assert committed, "the worker's group had committed no offset: a redelivery cannot be told from a first delivery"
    written = events_of(stack.bootstrap, topics.task_events, n, isolation="read_uncommitted")
    # decided as read: a follow-up decided in place (no offset) is written with its events, and proves nothing
    causes = {r.header("ce_causationid") for r in written if r.header("hive_command_offset") is not None}
    return [f"{r.where} {type(r.event).__name__}" for r in events_of(stack.bootstrap, topics.task_commands, n)
            if r.event is not None and r.offset >= committed.get(r.partition, 0) and r.event.command_id in causes]


def test_sigkill_worker_mid_run(kafka_bootstrap, pg_url, tmp_path):
    # transactions held open half a second: a kill lands while decided commands are uncommitted
    stack = Stack(kafka_bootstrap, pg_url, tmp_path, HIVE_COMMIT_INTERVAL_MS="500").start(
        {"ex-1": (ALL_KINDS, 3), "ex-2": (ALL_KINDS, 3)})
    engine = create_engine(stack.database_url)
    try:
        stack.wait_for_agents(2)
        ids, redelivered = [], []
        for round_ in range(ROUNDS):  # a kill between two transactions proves nothing: kill again, with new work
            batch = []
            for i in range(TASKS // ROUNDS):
                response = stack.client.submit(chain(f"crash-{round_}-{i}"))
                assert response.status_code == 202
                batch.append(response.json()["task_id"])
            ids += batch
            wait_until(lambda: sum(s == "running" for s in statuses(engine, batch).values()) >= 3, 60,
                       what="running tasks")
            # the kill lands while a transaction of task events is open (their commands decided, not committed)
            asyncio.run(kill_in_open_transaction(stack.bootstrap, stack.topics.task_events, stack.topics.partitions,
                                                 stack.worker.kill, 20))
            stack.worker.kill()  # already dead, or none opened in time: a kill anyway, and another round
            time.sleep(2)  # executors keep reporting into the command topic meanwhile; no commit is still in flight
            redelivered += decided_but_uncommitted(stack)
            stack.restart_worker()
            if redelivered:
                break
        assert redelivered, f"{ROUNDS} kills left no decided command uncommitted: the redelivery path went unexercised"
        wait_until(lambda: (lambda st: len(st) == len(ids) and all(s in ("completed", "failed", "cancelled")
                                                                    for s in st.values()))(statuses(engine, ids)),
                   180, what="all tasks to end")
        assert set(statuses(engine, ids).values()) == {"completed"}, stack.logs()

        assert last_problems(lambda: log_problems(whole_log(kafka_bootstrap, stack.topics)), 60) == []
        tasks = history(whole_log(kafka_bootstrap, stack.topics)).of("task")
        for task_id in ids:
            kinds = Counter(type(ev).__name__ for ev in tasks[task_id])
            assert kinds["TaskCompleted"] == 1 and kinds["TaskFailed"] == 0 and kinds["TaskAssigned"] == 1, (task_id, kinds)
            recorded = Counter(ev.node_id for ev in tasks[task_id] if isinstance(ev, e.NodeCompleted))
            final = next(ev for ev in tasks[task_id] if isinstance(ev, e.TaskCompleted))
            assert set(recorded.values()) <= {1}, (task_id, recorded)  # no node's output recorded twice
            assert {o.node_id for o in final.outputs} == {"a", "b", "c"} and set(recorded) <= {"a", "b", "c"}
        with engine.connect() as conn:
            seqs = dict(conn.execute(text("select task_id, seq from tasks where task_id = any(:ids)"), {"ids": ids}).all())
        assert seqs == {t: len(tasks[t]) for t in ids}  # the read model applied every event exactly once

        def holding():
            with engine.connect() as conn:
                return conn.execute(text("select agent_id, holding from agents where agent_id in ('ex-1', 'ex-2')")).all()
        wait_until(lambda: all(h == 0 for _, h in holding()), 30, what="every slot released")
    finally:
        stack.stop()
        engine.dispose()
