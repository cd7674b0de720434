"""agent_down on the real fabric: raised after an executor is killed, resolved when it is back, and not raised
again inside its cooldown; every frame read from the cluster feed."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from hive_streams.processes import wait_until

from .stack import Stack, free_port

pytestmark = pytest.mark.stack

AGENT = "down-a"
PICKY = "picky-b"  # offers a response time no task can meet
TIMEOUT_SECONDS = 3
WINDOW_SECONDS = TIMEOUT_SECONDS + 30  # silence, then the sweep, the decider and the matcher's round, on a busy machine


class Frames:
    """The cluster feed's alert and status frames, from the beginning, read in a thread."""

    def __init__(self, stack: Stack):
        self.client = stack.client_as("admin")
        self.frames: list = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for frame in self.client.stream("/api/events", last_event_id="t=0;a=0", timeout=600,
                                            params={"types": "AlertRaised,AlertResolved,AgentStatusChanged"}):
                self.frames.append(frame)
        except httpx.HTTPError:
            pass  # closed at the end of the test

    def of(self, kind: str, **fields) -> list:
        return [f for f in list(self.frames) if f.event == kind and all(f.data.get(k) == v for k, v in fields.items())]


@pytest.fixture(scope="module")
def worker_port():
    return free_port()


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory, worker_port):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("alerts"),
              HIVE_AGENT_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS), HIVE_WORKER_METRICS_PORT=str(worker_port),
              HIVE_ALERT_RULES="agent_down=cooldown:600")
    s.start({AGENT: ("echo", 1), PICKY: ("sleep", 1, "--target", "max_response_seconds=0.05")})
    s.wait_for_agents(2)
    yield s
    s.stop()


def health(port: int) -> float | None:
    """The worker's hive_agent_health_status of the agent: what the matcher (and so the alert rules) folded."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(f'hive_agent_health_status{{agent="{AGENT}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def restart(stack: Stack) -> None:
    stack.executors[AGENT] = stack.fabric.executor(AGENT, "echo", 1)


def test_agent_down_raised_resolved_and_held_back_by_its_cooldown(stack, worker_port):
    feed = Frames(stack)
    wait_until(lambda: health(worker_port) == 1, 60, what="the matcher sees the agent live")
    assert not feed.of("AlertRaised", rule="agent_down")
    stack.executors[AGENT].kill()
    killed = time.monotonic()
    raised = wait_until(lambda: feed.of("AlertRaised", alert_id=f"agent_down:{AGENT}"), WINDOW_SECONDS,
                        what="agent_down raised")
    raised_after = time.monotonic() - killed
    alert = raised[0].data
    assert (alert["rule"], alert["key"], alert["severity"], alert["seq"]) == ("agent_down", AGENT, "critical", 1)
    assert "no heartbeat" in alert["message"], alert

    restart(stack)
    resolved = wait_until(lambda: feed.of("AlertResolved", alert_id=f"agent_down:{AGENT}"), 60,
                          what="agent_down resolved after the agent's return")
    assert resolved[0].data["seq"] == 2

    # down again inside the cooldown (600 s from the raise): the rules see it, and raise nothing
    stack.executors[AGENT].kill()
    wait_until(lambda: len(feed.of("AgentStatusChanged", agent_id=AGENT, status="offline")) >= 2, WINDOW_SECONDS,
               what="the second silence in the log")
    wait_until(lambda: health(worker_port) == 0, 30, what="the matcher folds the second silence")
    restart(stack)
    wait_until(lambda: health(worker_port) == 1, 60, what="the agent back again")
    wait_until(lambda: len(feed.of("AgentStatusChanged", agent_id=AGENT, status="online")) >= 3, 30,
               what="three returns to online in the feed")
    assert len(feed.of("AlertRaised", alert_id=f"agent_down:{AGENT}")) == 1, feed.frames
    assert len(feed.of("AlertResolved", alert_id=f"agent_down:{AGENT}")) == 1, feed.frames
    print(f"agent_down raised {raised_after:.1f}s after the kill (agent timeout {TIMEOUT_SECONDS}s)")


def test_a_missed_performance_target_is_raised_from_the_heartbeats(stack):
    feed = Frames(stack)
    task = stack.client.submit({"name": "slowish", "nodes": [{"id": "s", "kind": "sleep", "seconds": 0.3}]})
    assert task.status_code == 202, task.text
    frames = list(stack.client.follow(task.json()["task_id"], timeout=60))
    assert frames[-1].event == "TaskCompleted" and frames[-1].data["agent_id"] == PICKY, stack.logs()
    raised = wait_until(lambda: feed.of("AlertRaised", alert_id=f"performance_target:{PICKY}"), 60,
                        what="performance_target raised")
    assert "above the offered maximum 0.05s" in raised[0].data["message"], raised[0].data

    def load_reported():  # the read model follows the heartbeats the alert came from, a little later
        beats = stack.client.get_json("/api/status/agents")["agents"]
        found = next(a for a in beats if a["agent_id"] == PICKY)["load"]
        return found if found.get("response_seconds") is not None else None
    load = wait_until(load_reported, 60, what="the heartbeat's response time in the read model")
    assert load["response_seconds"] >= 0.3 and load["gpu_percent"] is None and load["gpu_temperature_c"] is None, load
