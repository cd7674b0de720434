"""Time travel through the real stack: a task, an agent and an account as they were, folded from the log."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from hive_streams.processes import wait_until

from .stack import Stack

pytestmark = pytest.mark.stack
PRICE = 2
SLOW = {"name": "travel", "nodes": [{"id": "work", "kind": "sleep", "seconds": 1.5}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("travel"))
    s.start({"paid": ("echo,sleep", 1, "--price", str(PRICE))})
    s.wait_for_agents(1)
    yield s
    s.stop()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


@pytest.fixture(scope="module")
def run(stack):
    """A priced task run to its end: its frames, and the ledger entries of its payment."""
    payer = stack.account("developer", "ann")
    assert stack.client.http.post(f"/api/accounts/{payer}/deposits", json={"amount": 5}).status_code == 202
    wait_until(lambda: stack.client.http.get(f"/api/accounts/{payer}").status_code == 200, 60, what="the deposit")
    response = stack.client_as("developer", "ann").http.post("/api/tasks", json=SLOW)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    frames = list(stack.client.follow(task_id, timeout=90))
    assert frames[-1].event == "TaskCompleted", [f.event for f in frames]

    def settled():
        payments = stack.client.http.get(f"/api/tasks/{task_id}/payments").json()["payments"]
        return payments if [p["type"] for p in payments] == ["EscrowHeld", "EscrowReleased"] else None
    return {"task_id": task_id, "payer": payer, "frames": frames, "payments": wait_until(settled, 60, what="payment")}


def get(stack, path: str, **params):
    response = stack.client.http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_task_as_of_queued_running_and_completed(stack, run):
    task_id, frames = run["task_id"], run["frames"]
    first = {}
    for f in frames:
        first.setdefault(f.event, f.data)
    for event, status in (("TaskSubmitted", "queued"), ("NodeStarted", "running"), ("TaskCompleted", "completed")):
        at = first[event]["at"]
        then = get(stack, f"/api/tasks/{task_id}", as_of=iso(at))
        assert then["status"] == status, (event, then)
        assert then["as_of"] == iso(at) and then["seq"] >= first[event]["seq"]
        assert get(stack, f"/api/tasks/{task_id}", at_seq=first[event]["seq"])["status"] == status
    before = stack.client.http.get(f"/api/tasks/{task_id}", params={"as_of": iso(frames[0].data["at"] - 1)})
    assert (before.status_code, before.json()["field"]) == (404, "as_of")
    now = get(stack, f"/api/tasks/{task_id}", as_of=iso(frames[-1].data["at"] + 60_000))
    live = get(stack, f"/api/tasks/{task_id}")
    assert {k: v for k, v in now.items() if k != "as_of"} == {k: v for k, v in live.items()
                                                               if k not in ("first_partition", "first_offset")}


def test_an_account_before_and_after_the_settlement(stack, run):
    held, released = run["payments"]
    fee = round(released["legs"][2]["delta"], 2)
    payer, at = run["payer"], released["at"]
    before = get(stack, f"/api/accounts/{payer}", as_of=iso(at - 1))
    after = get(stack, f"/api/accounts/{payer}", as_of=iso(at))
    assert (before["available"], before["held"]) == (5 - PRICE, PRICE)
    assert (after["available"], after["held"]) == (5 - PRICE, 0)
    assert after["history"][0]["type"] == "EscrowReleased" and before["history"][0]["type"] == "EscrowHeld"
    assert get(stack, "/api/accounts/paid", as_of=iso(at - 1))["available"] == 0  # named by the hold, not paid yet
    earner = get(stack, "/api/accounts/paid", as_of=iso(at))
    assert earner["available"] == PRICE - fee == get(stack, "/api/accounts/paid")["available"]
    live = get(stack, f"/api/accounts/{payer}")
    assert (live["available"], live["held"]) == (after["available"], after["held"])


def test_an_agent_now_and_at_its_first_event(stack, run):
    live = get(stack, "/api/agents/paid")
    assert live["status"] == "online" and live["slots"] == 1 and live["price"] == PRICE
    first = get(stack, "/api/agents/paid", at_seq=1)
    assert (first["seq"], first["name"], first["at_seq"]) == (1, "paid", 1)
    assert stack.client.http.get("/api/agents/nobody").json()["field"] == "agent_id"
    assigned = next(f.data for f in run["frames"] if f.event == "TaskAssigned")
    holding = get(stack, "/api/agents/paid", as_of=iso(assigned["at"]))
    assert holding["holding"] == 1


@pytest.mark.parametrize("path", ["/api/tasks/x", "/api/agents/paid", "/api/accounts/tests/admin"])
def test_bad_points_are_400_naming_the_parameter(stack, path):
    for params, field in (({"as_of": "last tuesday"}, "as_of"), ({"at_seq": "0"}, "at_seq"),
                          ({"at_seq": "2", "as_of": "2026-01-01"}, "at_seq")):
        response = stack.client.http.get(path, params=params)
        assert (response.status_code, response.json()["field"]) == (400, field), response.text


def test_the_cli_shows_a_task_as_it_was(stack, run):
    started = next(f.data for f in run["frames"] if f.event == "NodeStarted")
    env = {**os.environ, "HIVE_API_URL": stack.base_url, "HIVE_TOKEN": stack.token()}
    shown = subprocess.run([sys.executable, "-m", "hive_streams.cli", "show", "task", run["task_id"],
                            "--as-of", iso(started["at"])], env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["status"] == "running"
    bad = subprocess.run([sys.executable, "-m", "hive_streams.cli", "show", "task", run["task_id"], "--as-of", "soon"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "400" in bad.stdout and "as_of" in bad.stdout
