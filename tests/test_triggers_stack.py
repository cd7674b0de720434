"""A trigger on the real stack: three failures of the same capability fire one diagnosis task, not before the
third, and not again inside the cooldown."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hive_streams.domain import trigger as t
from hive_streams.processes import wait_until
from hive_streams.settings import REPO_ROOT

from .eventlog import events_of
from .stack import Stack

pytestmark = pytest.mark.stack
DIAGNOSIS = {"name": "diagnose", "nodes": [{"id": "look", "kind": "echo", "value": "diagnosis"}]}
TRIGGER = {"id": "diagnose", "on": {"type": "TaskFailed", "group_by": "task.capabilities",
                                    "where": [{"field": "task.capabilities", "op": "contains", "value": "shell"}],
                                    "count": 3, "window_seconds": 600},
           "cooldown_seconds": 600, "target": {"task": DIAGNOSIS}}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    started = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("triggers")).start(
        {"ex-1": ("echo,shell", 2)})
    yield started
    started.stop()


def trigger_log(stack: Stack, topic: str) -> list:
    return [r.event for r in events_of(stack.bootstrap, topic, stack.topics.partitions) if r.event is not None]


def fail_one(stack: Stack, name: str) -> str:
    response = stack.client.submit({"id": name, "name": name, "max_retries": 0,
                                    "nodes": [{"id": "a", "kind": "shell", "command": "exit 3"}]})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    wait_until(lambda: (stack.client.task(task_id) or {}).get("status") == "failed", 90, what=f"{name} to fail")
    return task_id


def matched(stack: Stack) -> list:
    return [ev for ev in trigger_log(stack, stack.topics.trigger_events) if isinstance(ev, t.TriggerMatched)]


def fired(stack: Stack) -> list:
    return [ev for ev in trigger_log(stack, stack.topics.trigger_events) if isinstance(ev, t.TriggerFired)]


def test_fires_on_the_third_failure_and_not_inside_its_cooldown(stack):
    stack.wait_for_agents(1)
    assert stack.client.http.post("/api/triggers", json=TRIGGER).status_code == 202
    wait_until(lambda: stack.client.http.get("/api/triggers/diagnose").status_code == 200, 30, what="the trigger")

    for n in (1, 2):
        fail_one(stack, f"broken-{n}")
        wait_until(lambda: len(matched(stack)) == n, 30, what=f"match {n} noted")
        assert fired(stack) == [], f"fired after {n} failures"
    third = fail_one(stack, "broken-3")
    [firing] = wait_until(lambda: fired(stack), 30, what="the trigger to fire")
    assert firing.group == "shell" and firing.events[-1].startswith(third + "/")
    assert len(firing.events) == 3
    diagnosis = wait_until(lambda: (lambda task: task if task and task["status"] == "completed" else None)(
        stack.client.task(firing.task_id)), 90, what="the diagnosis task to complete")
    assert diagnosis["requester"] == "tests/admin"

    later = [fail_one(stack, f"broken-again-{n}") for n in range(3)]  # inside the ten-minute cooldown
    noted = lambda: {c.task_id for c in trigger_log(stack, stack.topics.trigger_commands)
                     if isinstance(c, t.NoteTriggerMatch)}
    wait_until(lambda: set(later) <= noted(), 30, what="the later failures noted")
    assert stack.client.http.delete("/api/triggers/diagnose").status_code == 202  # decided after those notes
    wait_until(lambda: any(isinstance(ev, t.TriggerDeleted) for ev in trigger_log(stack, stack.topics.trigger_events)),
               30, what="the trigger deleted")
    assert len(fired(stack)) == 1 and len(matched(stack)) == 3


def test_cli_creates_lists_and_deletes(stack):
    env = {**os.environ, "HIVE_API_URL": stack.base_url, "HIVE_TOKEN": stack.token("developer", "dana"),
           "PYTHONPATH": str(REPO_ROOT)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "hive_streams.cli", "triggers", *args], env=env,
                              capture_output=True, text=True, timeout=60)
    definition = stack.fabric.log_dir.parent / "trigger.json"
    definition.write_text(json.dumps({**TRIGGER, "id": "from-cli"}))
    made = cli("create", str(definition))
    assert made.returncode == 0 and '"tests:from-cli"' in made.stdout, made.stdout + made.stderr
    wait_until(lambda: '"tests:from-cli"' in cli("list").stdout, 30, what="the CLI to list the trigger")
    assert cli("delete", "from-cli").returncode == 0
    assert cli("get", "nowhere").returncode == 2


def test_bad_triggers_are_refused_naming_the_field(stack):
    def refused(body):
        response = stack.client.http.post("/api/triggers", json=body)
        assert response.status_code == 422, response.text
        return response.json()["field"]
    assert refused({**TRIGGER, "id": "x", "on": {**TRIGGER["on"], "type": "Nope"}}) == "on.type"
    assert refused({**TRIGGER, "id": "x", "on": {**TRIGGER["on"], "count": 0}}) == "on.count"
    assert refused({**TRIGGER, "id": "x", "on": {**TRIGGER["on"], "group_by": "colour"}}) == "on.group_by"
    bad_op = {**TRIGGER["on"], "where": [{"field": "reason", "op": "like", "value": "x"}]}
    assert refused({**TRIGGER, "id": "x", "on": bad_op}) == "on.where[0].op"
    assert refused({**TRIGGER, "id": "x", "cooldown_seconds": -1}) == "cooldown_seconds"
    assert refused({**TRIGGER, "id": "x", "target": {"workflow": "w"}}) == "target.workflow"
    assert stack.client_as("viewer").http.post("/api/triggers", json={**TRIGGER, "id": "y"}).status_code == 403
