"""The scheduler's behaviour through the real stack: retries, deadlines, cancels, pins, dependencies, lost agents."""
from __future__ import annotations

import pytest

from hive_streams.domain import events as e
from hive_streams.domain import reputation
from hive_streams.processes import wait_until

from .eventlog import events_of
from .logcheck import History, history
from .stack import Stack

pytestmark = pytest.mark.stack
AGENTS = {"fast": ("echo,sleep:1.0,shell", 2), "slow": ("echo,sleep:0.6,shell", 2)}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("sched"), HIVE_AGENT_TIMEOUT_SECONDS="3")
    s.start(AGENTS)
    s.wait_for_agents(2)
    yield s
    s.stop()


def run(stack: Stack, definition: dict) -> list:
    response = stack.client.submit(definition)
    assert response.status_code == 202, response.text
    return list(stack.client.follow(response.json()["task_id"], timeout=90))


def kinds(frames) -> list[str]:
    return [f.event for f in frames]


def agent(stack: Stack, agent_id: str) -> dict:
    return next(a for a in stack.client.http.get("/api/status/agents").json()["agents"] if a["agent_id"] == agent_id)


def log(stack: Stack, topic: str) -> History:
    h = history(events_of(stack.bootstrap, topic, stack.topics.partitions))
    assert h.problems == []
    return h


def outcomes_in_log(stack: Stack, agent_id: str) -> dict[str, int]:
    """What the task events actually produced say about the agent, kind by kind."""
    counts = dict.fromkeys(reputation.KINDS, 0)
    for ev in log(stack, stack.topics.task_events).events("task"):
        found = reputation.outcome(ev)
        if found and found[0] == agent_id:
            counts[found[1]] += 1
    return counts


def heartbeats(stack: Stack, agent_id: str) -> list[e.AgentHeartbeat]:
    return [ev for ev in log(stack, stack.topics.agent_events).of("agent").get(agent_id, [])
            if isinstance(ev, e.AgentHeartbeat)]


def formula(n: dict[str, int]) -> float:
    """The README's and domain/reputation.py's formula, written out here so a change to either shows."""
    return round((n["completed"] + 2) / (n["completed"] + n["failed"] + n["late"] + 2 * n["rejected"] + 3), 4)


def test_status_views(stack):
    agents = {a["agent_id"]: a for a in stack.client.http.get("/api/status/agents").json()["agents"]}
    assert set(agents) == {"fast", "slow"}
    assert agents["fast"]["slots"] == 2
    assert agents["fast"]["reputation"] == formula(outcomes_in_log(stack, "fast"))
    assert {c["name"] for c in agents["slow"]["capabilities"]} == {"echo", "sleep", "shell"}
    beats = heartbeats(stack, "fast")
    assert beats and all(0 <= b.cpu_percent <= 100 and 0 < b.memory_percent <= 100 for b in beats)
    assert any(b.cpu_percent > 0 for b in beats)  # measured host load, not the 0.0 a missing reading defaults to
    wait_until(lambda: agent(stack, "fast")["load"]["cpu_percent"] in {b.cpu_percent for b in heartbeats(stack, "fast")},
               15, what="the view to show the load of a heartbeat in the log")
    cluster = stack.client.http.get("/api/status/cluster").json()
    assert cluster["agents"]["online"] == 2 and "queues" in cluster and "utilisation" in cluster


def test_failed_attempt_retries_on_a_different_agent_then_fails(stack):
    frames = run(stack, {"name": "flaky", "max_retries": 1, "retry_backoff_seconds": 0.2,
                         "nodes": [{"id": "x", "kind": "shell", "command": "exit 3"}]})
    assigned = [f.data for f in frames if f.event == "TaskAssigned"]
    assert [a["attempt"] for a in assigned] == [1, 2]
    assert assigned[0]["agent_id"] != assigned[1]["agent_id"]
    assert kinds(frames).count("TaskRetryScheduled") == 1 and frames[-1].event == "TaskFailed"
    assert "after 1 retries" in frames[-1].data["reason"]
    first, task_id = assigned[0]["agent_id"], frames[0].data["task_id"]
    wait_until(lambda: any(ev["task_id"] == task_id for ev in
                           stack.client.http.get(f"/api/agents/{first}/reputation").json()["events"]), 30,
               what="the outcome in the reputation")
    explained = stack.client.http.get(f"/api/agents/{first}/reputation").json()
    counts = outcomes_in_log(stack, first)
    assert counts["failed"] >= 1 and {k: explained[k] for k in reputation.KINDS} == counts
    assert explained["score"] == formula(counts) < formula(dict.fromkeys(reputation.KINDS, 0))  # below a newcomer's
    assert [ev["kind"] for ev in explained["events"] if ev["task_id"] == task_id] == ["failed"]


def test_unservable_task_waits_with_a_reason_and_fails_at_its_deadline(stack):
    frames = run(stack, {"name": "quantum", "deadline_seconds": 3, "requires": ["quantum"],
                         "nodes": [{"id": "a", "kind": "echo"}]})
    waiting = [f.data["reason"] for f in frames if f.event == "TaskWaiting"]
    assert waiting and "capability 'quantum' missing" in waiting[0]
    assert frames[-1].event == "TaskFailed" and frames[-1].data["reason"] == "deadline_exceeded"
    assert stack.client.task(frames[0].data["task_id"])["waiting_reason"] == waiting[-1]


def test_deadline_stops_the_running_executor(stack):
    frames = run(stack, {"name": "too-slow", "deadline_seconds": 3,
                         "nodes": [{"id": "long", "kind": "shell", "command": "sleep 30"}]})
    assert frames[-1].event == "TaskFailed" and frames[-1].data["reason"] == "deadline_exceeded"
    holder = frames[-1].data["agent_id"]
    assert holder and "NodeCompleted" not in kinds(frames)
    task_id = frames[0].data["task_id"]
    wait_until(lambda: f"stopping task {task_id}" in stack.executors[holder].tail(200), 15, what="the executor to stop")
    wait_until(lambda: agent(stack, holder)["running"] == 0, 15, what="the slot to be released")


def test_cancel_reaches_the_executor(stack):
    response = stack.client.submit({"name": "cancel-me", "nodes": [{"id": "long", "kind": "shell", "command": "sleep 30"}]})
    task_id = response.json()["task_id"]
    frames = []
    for frame in stack.client.follow(task_id, timeout=60):
        frames.append(frame)
        if frame.event == "NodeStarted":
            assert stack.client.http.delete(f"/api/tasks/{task_id}").status_code == 202
    assert frames[-1].event == "TaskCancelled"
    holder = frames[-1].data["agent_id"]
    wait_until(lambda: f"stopping task {task_id}" in stack.executors[holder].tail(200), 15, what="the executor to stop")


def test_manual_assignment_overrides_the_marketplace(stack):
    response = stack.client.submit({"name": "special", "requires": ["special"], "nodes": [{"id": "a", "kind": "echo"}]})
    task_id = response.json()["task_id"]
    wait_until(lambda: (stack.client.task(task_id) or {}).get("waiting_reason"), 30, what="a waiting reason")
    assert stack.client.http.put(f"/api/tasks/{task_id}/assign", json={"agent_id": "nobody"}).status_code == 422
    assert stack.client.http.put(f"/api/tasks/{task_id}/assign", json={}).json()["field"] == "agent_id"
    assert stack.client.http.put(f"/api/tasks/{task_id}/assign", json={"agent_id": "slow"}).status_code == 202
    frames = list(stack.client.follow(task_id, timeout=60))
    assert frames[-1].event == "TaskCompleted" and frames[-1].data["agent_id"] == "slow"
    wait_until(lambda: stack.client.task(task_id)["status"] == "completed", 30, what="the read model")
    assert stack.client.http.put(f"/api/tasks/{task_id}/assign", json={"agent_id": "slow"}).status_code == 409


def test_dependencies_wait_for_completion_and_fail_with_their_dependency(stack):
    first = stack.client.submit({"name": "first", "nodes": [{"id": "s", "kind": "sleep", "seconds": 1}]}).json()["task_id"]
    second = stack.client.submit({"name": "second", "after": [first], "nodes": [{"id": "a", "kind": "echo"}]}).json()["task_id"]
    broken = stack.client.submit({"name": "broken", "max_retries": 0,
                                  "nodes": [{"id": "x", "kind": "shell", "command": "exit 1"}]}).json()["task_id"]
    orphan = stack.client.submit({"name": "orphan", "after": [broken], "nodes": [{"id": "a", "kind": "echo"}]}).json()["task_id"]
    first_frames = list(stack.client.follow(first, timeout=60))
    second_frames = list(stack.client.follow(second, timeout=60))
    assert kinds(second_frames)[:3] == ["TaskSubmitted", "TaskBlocked", "DependencyResolved"]
    assert second_frames[-1].event == "TaskCompleted"
    validated = next(f for f in second_frames if f.event == "TaskValidated")
    assert validated.data["at"] >= first_frames[-1].data["at"]
    orphan_frames = list(stack.client.follow(orphan, timeout=60))
    assert orphan_frames[-1].event == "TaskFailed" and orphan_frames[-1].data["reason"] == f"dependency {broken} failed"


def test_killed_executor_tasks_finish_elsewhere_without_rerunning_completed_nodes(stack):
    response = stack.client.submit({"name": "survivor", "nodes": [
        {"id": "a", "kind": "echo", "value": "kept"},
        {"id": "b", "kind": "shell", "command": "sleep 4; echo done", "depends_on": ["a"]}]})
    task_id = response.json()["task_id"]
    frames, killed = [], None
    for frame in stack.client.follow(task_id, timeout=120):
        frames.append(frame)
        if frame.event == "NodeStarted" and frame.data["node_id"] == "b" and killed is None:
            killed = frame.data["agent_id"]
            stack.executors[killed].kill()
    assert frames[-1].event == "TaskCompleted" and frames[-1].data["agent_id"] != killed
    retry = next(f.data for f in frames if f.event == "TaskRetryScheduled")
    assert f"agent {killed} went offline" in retry["reason"]
    second = [f.data for f in frames if f.event == "TaskAssigned"][-1]
    assert second["attempt"] == 2 and [o["node_id"] for o in second["completed"]] == ["a"]
    started = [f.data["node_id"] for f in frames if f.event == "NodeStarted"]
    assert started.count("a") == 1 and started.count("b") == 2
