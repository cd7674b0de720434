"""Shadow replay of the scheduler through the real stack: the recorded policy reproduces every recorded
placement; another policy (weights, or a module named on the command line) moves them, and its counts add up."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from hive_streams.processes import wait_until

from .stack import Stack

pytestmark = pytest.mark.stack
PAIRS = 5
TASK = {"name": "shadowed", "budget": 2, "deadline_seconds": 60, "nodes": [{"id": "nap", "kind": "sleep", "seconds": 0.2}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("shadow"))
    s.start({"cheap": ("sleep:1.0,echo", 2, "--price", "0.5"), "dear": ("sleep:0.6,echo", 1, "--price", "1")})
    s.wait_for_agents(2)
    yield s
    s.stop()


def idle(stack) -> bool:
    return all(stack.client.get_json(f"/api/agents/{a}")["holding"] == 0 for a in ("cheap", "dear"))


@pytest.fixture(scope="module")
def recorded(stack):
    """Pairs of tasks, each pair sent once both agents are idle again: the live matcher puts both on `cheap`."""
    assert stack.client.http.post(f"/api/accounts/{stack.account('admin')}/deposits",
                                  json={"amount": 100}).status_code == 202
    placed = {}
    for _ in range(PAIRS):
        ids = [r["task_id"] for r in stack.client.submit_many([TASK, TASK]).json()["items"]]
        for task_id in ids:
            frames = list(stack.client.follow(task_id, timeout=60))
            assert frames[-1].event == "TaskCompleted", [f.event for f in frames]
            placed[task_id] = next(f.data["agent_id"] for f in frames if f.event == "TaskAssigned")
        wait_until(lambda: idle(stack), 30, what="both agents idle")
        time.sleep(1)  # the matcher reads the releases a moment after the read model shows them
    return placed


def shadow(stack, tmp_path, policy: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIVE_KAFKA_BOOTSTRAP": stack.bootstrap, "HIVE_TOPIC_PREFIX": stack.topics.prefix,
           "HIVE_PARTITIONS": str(stack.topics.partitions), "COLUMNS": "220"}
    return subprocess.run([sys.executable, "-m", "hive_streams.cli", "replay", "--policy", policy, "--chart",
                           str(tmp_path / "chart.png")], env=env, capture_output=True, text=True, timeout=300)


def cells(run: subprocess.CompletedProcess, measure: str) -> list[str]:
    line = next(line for line in run.stdout.splitlines() if measure in line)
    return [c.strip() for c in line.split("│")[2:-1]]


def test_the_recorded_policy_reproduces_every_recorded_placement(stack, recorded, tmp_path):
    assert set(recorded.values()) == {"cheap"}
    run = shadow(stack, tmp_path, "recorded")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"reproduces all {2 * PAIRS} recorded placements" in run.stdout
    assert cells(run, "placed on cheap")[:3] == [str(2 * PAIRS)] * 3
    assert cells(run, "same agent / moved")[2] == f"{2 * PAIRS} / 0"
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("policy", ["weights:cheapness=-1", "tests.shadow_policy"])
def test_another_policy_reports_differences_that_add_up(stack, recorded, tmp_path, policy):
    run = shadow(stack, tmp_path, policy)
    assert run.returncode == 0, run.stdout + run.stderr
    tasks = 2 * PAIRS
    same, moved = map(int, cells(run, "same agent / moved")[2].split(" / "))
    assert same + moved == tasks and moved == PAIRS  # each pair: the first to `dear`, the second where a slot is
    on_cheap, on_dear = int(cells(run, "placed on cheap")[2]), int(cells(run, "placed on dear")[2])
    assert on_cheap + on_dear + int(cells(run, "not placed")[2]) == tasks and on_dear == moved
    base_cost, shadow_cost, diff = cells(run, "cost")[1:]
    assert float(shadow_cost) - float(base_cost) == pytest.approx(float(diff)) == pytest.approx(moved * 0.5)
    base_missed, shadow_missed, change = (int(v) for v in cells(run, "deadline misses")[1:])
    newly, no_longer = map(int, cells(run, "newly missed / no longer")[2].split(" / "))
    assert shadow_missed == base_missed + newly - no_longer and change == shadow_missed - base_missed
    assert (tmp_path / "chart.png").stat().st_size > 1000


def test_a_policy_that_cannot_be_loaded_exits_2(stack, tmp_path):
    for policy in ("weights:speed=1", "no.such.module"):
        run = shadow(stack, tmp_path, policy)
        assert run.returncode == 2 and "--policy" in run.stdout, run.stdout + run.stderr
