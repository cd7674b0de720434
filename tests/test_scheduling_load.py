"""300 tasks of mixed priority over 5 agents and two workers on 4 partitions, checked from the log."""
from __future__ import annotations

import random

import pytest
from sqlalchemy import create_engine, text

from hive_streams.processes import wait_until

from .eventlog import whole_log
from .ledgercheck import payments_per_escrow
from .logcheck import endings, history, last_problems, log_problems
from .stack import Stack

pytestmark = pytest.mark.stack
TASKS = 300
AGENTS = {
    "gpu-big": ("echo,sleep,shell,gpu:0.95", 3, "--gpu-type", "a100", "--vram-gb", "80", "--price", "2"),
    "gpu-small": ("echo,sleep,gpu:0.7", 2, "--gpu-type", "t4", "--vram-gb", "16", "--price", "1"),
    "cpu-a": ("echo,sleep,shell", 4, "--price", "0.5"),
    "cpu-b": ("echo:0.8,sleep", 2, "--price", "0.3"),
    "cheap": ("echo:0.6,sleep:0.6", 3, "--price", "0.1"),
}


def definition(i: int, rng: random.Random) -> dict:
    kind = rng.choice(["plain", "plain", "shell", "gpu", "big-gpu", "budget"])
    nodes = [{"id": "a", "kind": "echo", "value": i}, {"id": "b", "kind": "sleep", "seconds": 0.05, "depends_on": ["a"]}]
    task = {"id": f"load-{i}", "name": f"load-{i}", "priority": rng.randint(0, 9), "nodes": nodes}
    if kind == "shell":
        nodes.append({"id": "c", "kind": "shell", "command": "true", "depends_on": ["b"]})
    elif kind == "gpu":
        task["requires"] = [{"name": "gpu", "proficiency": 0.5}]
    elif kind == "big-gpu":
        task["requires"] = [{"name": "gpu", "proficiency": 0.9}]
        task["hardware"] = {"vram_gb": 40}
    elif kind == "budget":
        task["budget"] = 0.4
    return task


@pytest.mark.timeout(900)
def test_three_hundred_tasks_two_workers(kafka_bootstrap, pg_url, tmp_path):
    stack = Stack(kafka_bootstrap, pg_url, tmp_path, partitions=4).start(AGENTS, workers=2)
    engine = create_engine(stack.database_url)
    try:
        stack.wait_for_agents(len(AGENTS))
        # the agents are priced: the requester pays every award from escrow
        deposited = stack.client.http.post(f"/api/accounts/{stack.account()}/deposits", json={"amount": 10_000})
        assert deposited.status_code == 202, deposited.text
        rng = random.Random(7)
        ids = []
        for i in range(TASKS):
            response = stack.client.submit(definition(i, rng))
            assert response.status_code == 202, response.text
            ids.append(response.json()["task_id"])

        def ended():
            with engine.connect() as conn:
                n = conn.execute(text("select count(*) from tasks where task_id like 'tests:load-%' and status in "
                                      "('completed', 'failed', 'cancelled', 'rejected')")).scalar()
            stack.fabric.check_alive()
            return n == TASKS
        wait_until(ended, 600, interval=1, what="300 tasks to end")

        # the raw log, every record: no two different events at one seq, nothing undecodable, seqs 1..n,
        # then capacity, backed assignments, requirements, digests, balanced entries, each escrow settled once
        assert last_problems(lambda: log_problems(whole_log(kafka_bootstrap, stack.topics)), 60) == []
        h = history(whole_log(kafka_bootstrap, stack.topics))
        assert set(payments_per_escrow(h.events("ledger")).values()) == {1}
        ends = endings(h)
        assert sorted(ends) == sorted(ids)
        assert all(c == {"TaskCompleted": 1} for c in ends.values()), {t: c for t, c in ends.items() if c != {"TaskCompleted": 1}}
        cluster = stack.client.http.get("/api/status/cluster").json()
        assert cluster["tasks"].get("completed", 0) >= TASKS and cluster["running"] == 0
    finally:
        stack.stop()
        engine.dispose()
