"""SIGKILL the Faust worker while tasks run: each still completes once, no event applies twice."""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import asdict

import pytest
from sqlalchemy import create_engine, text

from hive_streams.domain import events as e
from hive_streams.processes import wait_until

from .eventlog import events_of
from .stack import ALL_KINDS, Stack

pytestmark = pytest.mark.stack
TASKS = 24


def chain(i: int) -> dict:
    return {"id": f"crash-{i}", "name": f"crash-{i}", "nodes": [
        {"id": "a", "kind": "sleep", "seconds": 0.3},
        {"id": "b", "kind": "shell", "command": "sleep 0.4; echo b", "depends_on": ["a"]},
        {"id": "c", "kind": "echo", "value": "{{ nodes.b.output.stdout }}", "depends_on": ["b"]},
    ]}


def statuses(engine, ids) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("select task_id, status from tasks where task_id = any(:ids)"), {"ids": list(ids)})
        return dict(rows.all())


def test_sigkill_worker_mid_run(kafka_bootstrap, pg_url, tmp_path):
    stack = Stack(kafka_bootstrap, pg_url, tmp_path).start({"ex-1": (ALL_KINDS, 3), "ex-2": (ALL_KINDS, 3)})
    engine = create_engine(stack.database_url)
    try:
        stack.wait_for_agents(2)
        ids = [f"crash-{i}" for i in range(TASKS)]
        for i in range(TASKS):
            assert stack.client.submit(chain(i)).status_code == 202
        wait_until(lambda: sum(s == "running" for s in statuses(engine, ids).values()) >= 3, 60, what="running tasks")
        stack.worker.kill()
        time.sleep(2)  # executors keep reporting into the command topic meanwhile
        stack.restart_worker()
        wait_until(lambda: (lambda st: len(st) == TASKS and all(s in ("completed", "failed", "cancelled") for s in st.values()))(
            statuses(engine, ids)), 180, what="all tasks to end")
        assert set(statuses(engine, ids).values()) == {"completed"}, stack.logs()

        log = [r.event for r in events_of(kafka_bootstrap, stack.topics.task_events, stack.topics.partitions)]
        by_task: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
        for ev in log:
            by_task[ev.task_id][ev.seq].append(ev)
        for task_id in ids:
            history = by_task[task_id]
            assert sorted(history) == list(range(1, len(history) + 1)), f"{task_id}: gap in seq"
            for seq, copies in history.items():  # a redelivered command may re-produce an event: same fact, same seq
                facts = {repr({k: v for k, v in asdict(c).items() if k != "at"}) for c in copies}
                assert len(facts) == 1, f"{task_id}/{seq} means two different things: {copies}"
            distinct = [copies[0] for _, copies in sorted(history.items())]
            kinds = Counter(type(ev).__name__ for ev in distinct)
            assert kinds["TaskCompleted"] == 1 and kinds["TaskFailed"] == 0 and kinds["TaskAssigned"] == 1
            assert Counter(ev.node_id for ev in distinct if isinstance(ev, e.NodeCompleted)) == {"a": 1, "b": 1, "c": 1}
        with engine.connect() as conn:
            seqs = dict(conn.execute(text("select task_id, seq from tasks where task_id = any(:ids)"), {"ids": ids}).all())
            holding = conn.execute(text("select agent_id, holding from agents where agent_id in ('ex-1', 'ex-2')")).all()
        assert seqs == {t: len(by_task[t]) for t in ids}  # the state applied every event exactly once
        wait_until(lambda: True, 0)
        assert all(h == 0 for _, h in holding), f"slots still held: {holding}"
    finally:
        stack.stop()
        engine.dispose()
