"""Shadow replay of the scheduler through the real stack: tasks queue behind two agents of different prices and
proficiencies, and the recorded policy makes every recorded placement again; another policy (weights, or a
module named on the command line) moves them, and its counts add up."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from hive_streams.codec import default_codec
from hive_streams.domain.matching import DEFAULT_POLICY
from hive_streams.replay.shadow import read_events, run_shadow

from .roles import as_role
from .stack import Stack

pytestmark = pytest.mark.stack
SLOTS = 3  # cheap has 2, dear 1
BURSTS = [[(0, 0.3), (0, 0.5), (1, 0.2), (0, 0.4), (2, 0.3), (0, 0.2)],  # (priority, seconds): more tasks than slots
          [(1, 0.4), (0, 0.3), (0, 0.6), (2, 0.2), (1, 0.3)],
          [(0, 0.2), (0, 0.2), (0, 0.5), (1, 0.4), (0, 0.3), (2, 0.2), (0, 0.3)]]
TASKS = sum(map(len, BURSTS))


def task(priority: int, seconds: float) -> dict:
    return {"name": "shadowed", "budget": 2, "priority": priority, "deadline_seconds": 60,
            "nodes": [{"id": "nap", "kind": "sleep", "seconds": seconds}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("shadow"))
    s.start({"cheap": ("sleep:1.0,echo", 2, "--price", "0.5"), "dear": ("sleep:0.6,echo", 1, "--price", "1")})
    s.wait_for_agents(2)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def recorded(stack):
    """Bursts larger than the agents' slots, each sent while the last one still runs: tasks queue, and the live
    matcher decides over releases and arrivals as it reads them. Returns every task's assignments, in order."""
    assert stack.client.http.post(f"/api/accounts/{stack.account('admin')}/deposits",
                                  json={"amount": 100}).status_code == 202
    ids = []
    for burst in BURSTS:
        sent = stack.client.submit_many([task(*t) for t in burst])
        assert sent.status_code in (200, 201, 202, 207), sent.text
        ids += [item["task_id"] for item in sent.json()["items"]]
        first = list(stack.client.follow(ids[-len(burst)], timeout=60))  # the next burst arrives while this one runs
        assert first[-1].event == "TaskCompleted", [f.event for f in first]
    placed = {}
    for task_id in ids:
        frames = list(stack.client.watch(task_id))
        assert frames[-1].event == "TaskCompleted", [f.event for f in frames]
        placed[task_id] = tuple(f.data["agent_id"] for f in frames if f.event == "TaskAssigned")
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
    assert len(recorded) == TASKS and {a for agents in recorded.values() for a in agents} == {"cheap", "dear"}
    records = asyncio.run(read_events(as_role("analyst"), default_codec(), stack.topics, lambda n: None))
    result = run_shadow(records, DEFAULT_POLICY, 10_000)
    queued = [t for t, p in result.recorded.items() if p.wait_ms >= 150]
    assert queued, "no task queued behind a busy agent"
    assert {t: p.agents for t, p in result.base.items()} == recorded  # every task, every assignment
    assert result.base == result.recorded and result.unreproduced == []
    run = shadow(stack, tmp_path, "recorded")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"reproduces all {TASKS} recorded placements" in run.stdout
    assert cells(run, "same agent / moved")[2] == f"{TASKS} / 0"
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("policy", ["weights:cheapness=-1", "tests.shadow_policy"])
def test_another_policy_reports_differences_that_add_up(stack, recorded, tmp_path, policy):
    run = shadow(stack, tmp_path, policy)
    assert run.returncode == 0, run.stdout + run.stderr
    same, moved = map(int, cells(run, "same agent / moved")[2].split(" / "))
    assert same + moved == TASKS and moved > 0  # the dear agent first: some tasks move to it
    base = {a: int(cells(run, f"placed on {a}")[1]) for a in ("cheap", "dear")}
    other = {a: int(cells(run, f"placed on {a}")[2]) for a in ("cheap", "dear")}
    assert sum(base.values()) == sum(other.values()) + int(cells(run, "not placed")[2]) == TASKS
    assert all(int(cells(run, f"placed on {a}")[3]) == other[a] - base[a] for a in ("cheap", "dear"))
    base_cost, shadow_cost, diff = cells(run, "cost")[1:]
    assert float(shadow_cost) - float(base_cost) == pytest.approx(float(diff))
    assert float(diff) == pytest.approx((other["dear"] - base["dear"]) * 0.5)  # each move from cheap to dear: +0.50
    base_missed, shadow_missed, change = (int(v) for v in cells(run, "deadline misses")[1:])
    newly, no_longer = map(int, cells(run, "newly missed / no longer")[2].split(" / "))
    assert shadow_missed == base_missed + newly - no_longer and change == shadow_missed - base_missed
    longer, less = map(int, cells(run, "waited longer / less")[2].split(" / "))
    assert longer + less <= TASKS
    assert (tmp_path / "chart.png").stat().st_size > 1000


def test_a_policy_that_cannot_be_loaded_exits_2(stack, tmp_path):
    for policy in ("weights:speed=1", "no.such.module"):
        run = shadow(stack, tmp_path, policy)
        assert run.returncode == 2 and "--policy" in run.stdout, run.stdout + run.stderr
