"""Schedules on the real stack: each slot fires once over a window with a rebalance and a worker restart, and the
API and CLI manage them with permissions."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from hive_streams.domain import events as e
from hive_streams.domain import schedule as s
from hive_streams.processes import wait_until
from hive_streams.schedules.cron import slots_after
from hive_streams.settings import REPO_ROOT
from hive_streams.topics import partition_for

from .eventlog import events_of
from .stack import Stack

pytestmark = pytest.mark.stack
EVERY_TWO_SECONDS = "* * * * * */2"
TASK = {"name": "tick", "nodes": [{"id": "a", "kind": "echo", "value": "tick"}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    # a one-second grace: slots the worker reaches late (a rebalance, a restart) go through the catch-up policy
    started = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("schedules"),
                    HIVE_SCHEDULE_GRACE_SECONDS="1", HIVE_SESSION_TIMEOUT_SECONDS="6").start({})
    yield started
    started.stop()


def schedule_events(stack: Stack) -> list:
    n = stack.topics.partitions
    return [r.event for r in events_of(stack.bootstrap, stack.topics.schedule_events, n) if r.event is not None]


def fired_slots(stack: Stack, schedule_id: str) -> list[int]:
    return [ev.slot_at for ev in schedule_events(stack) if isinstance(ev, s.ScheduleFired)
            and ev.schedule_id == schedule_id]


def schedule_owner(stack: Stack, schedule_id: str, workers):
    """The worker whose log last says it owns the schedule's command partition."""
    where = f"{stack.topics.schedule_commands}[{partition_for(schedule_id.encode(), stack.topics.partitions)}]"
    for worker in workers:
        mentions = [line for line in worker.tail(2000).splitlines() if where in line]
        if mentions and " own " in mentions[-1]:
            return worker
    return None


def test_each_slot_fires_once_across_a_rebalance_and_a_worker_restart(stack):
    created = stack.client.http.post("/api/schedules", json={"id": "ticks", "cron": EVERY_TWO_SECONDS,
                                                             "catchup": "all", "target": {"task": TASK}})
    assert created.status_code == 202, created.text
    schedule_id = created.json()["schedule_id"]
    assert schedule_id == "tests:ticks"
    wait_until(lambda: len(fired_slots(stack, schedule_id)) >= 2, 60, what="the first slots")

    second = stack.fabric.worker("worker-1")  # a rebalance: partitions move between the two
    wait_until(lambda: "own " in second.tail(200), 60, what="the second worker to own partitions")
    before = len(fired_slots(stack, schedule_id))
    wait_until(lambda: len(fired_slots(stack, schedule_id)) >= before + 2, 60, what="slots after the rebalance")

    owner = wait_until(lambda: schedule_owner(stack, schedule_id, [stack.worker, second]), 30,
                       what="the schedule's owner")
    owner.kill()  # a crash: its partitions wait out the session, their slots are missed, then caught up
    time.sleep(3)
    stack.restart_worker()
    before = len(fired_slots(stack, schedule_id))
    wait_until(lambda: len(fired_slots(stack, schedule_id)) >= before + 4, 90, what="slots after the restart")

    assert stack.client.http.delete(f"/api/schedules/{schedule_id}").status_code == 202
    wait_until(lambda: stack.client.http.get(f"/api/schedules/{schedule_id}").json()["status"] == "deleted", 30,
               what="the schedule deleted")
    time.sleep(3)  # a slot fired after the deletion would show up now

    events = [ev for ev in schedule_events(stack) if ev.schedule_id == schedule_id]
    born = next(ev for ev in events if isinstance(ev, s.ScheduleCreated)).at
    ended = next(ev for ev in events if isinstance(ev, s.ScheduleDeleted)).at
    fired = [ev.slot_at for ev in events if isinstance(ev, s.ScheduleFired)]
    skipped = [slot for ev in events if isinstance(ev, s.ScheduleSkipped) for slot in ev.slots]
    assert Counter(fired).most_common(1)[0][1] == 1, "a slot fired twice"
    assert skipped == []  # catch-up `all`: every missed slot ran
    expected = slots_after(EVERY_TWO_SECONDS, "UTC", born, max(fired), 10_000)
    assert fired == expected, "every slot from the creation on fired, in order"
    assert max(fired) <= ended
    late = [ev.slot_at for ev in events if isinstance(ev, s.ScheduleFired) and ev.at - ev.slot_at > 1_000]
    assert late, "no slot was caught up: the restart went unnoticed"

    n = stack.topics.partitions
    submitted = Counter(r.event.task_id for r in events_of(stack.bootstrap, stack.topics.task_events, n)
                        if isinstance(r.event, e.TaskSubmitted) and r.event.task_id.startswith("tests:sched.ticks."))
    assert sorted(submitted) == sorted(s.slot_task_id(schedule_id, slot) for slot in fired)
    assert set(submitted.values()) == {1}
    task = stack.client.task(s.slot_task_id(schedule_id, fired[0]))
    assert task is not None and task["requester"] == "tests/admin"


def test_bad_schedules_are_refused_naming_the_field(stack):
    def refused(body):
        response = stack.client.http.post("/api/schedules", json=body)
        assert response.status_code == 422, response.text
        return response.json()["field"]
    good = {"cron": "0 9 * * *", "target": {"task": TASK}}
    assert refused({**good, "cron": "at nine"}) == "cron"
    assert refused({**good, "timezone": "Mars/Olympus"}) == "timezone"
    assert refused({**good, "catchup": "sometimes"}) == "catchup"
    assert refused({**good, "target": {"workflow": "nightly", "inputs": {}}}) == "target.workflow"
    assert refused({**good, "target": {"task": {"name": "x", "nodes": []}}}) == "target.task.nodes"
    assert refused({**good, "target": {"task": {**TASK, "id": "mine"}}}) == "target.task.id"
    assert refused({**good, "every": "day"}) == "every"


def test_permissions_and_tenants(stack):
    body = {"id": "morning", "cron": "0 9 * * *", "timezone": "Europe/Berlin", "target": {"task": TASK}}
    assert stack.client_as("viewer").http.post("/api/schedules", json=body).status_code == 403
    dev = stack.client_as("developer", "dana")
    assert dev.http.post("/api/schedules", json=body).status_code == 202
    mine = wait_until(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
        dev.http.get("/api/schedules/morning")), 30, what="the schedule")
    assert mine["status"] == "active" and mine["timezone"] == "Europe/Berlin" and mine["next_slot_at"] > mine["created_at"]
    assert stack.client_as("viewer").http.get("/api/schedules/morning").status_code == 200
    other = stack.client_as("developer", "olga", tenant="globex")
    assert other.http.get("/api/schedules/morning").status_code == 404
    assert other.http.delete("/api/schedules/morning").status_code == 404
    assert all(row["schedule_id"].startswith("globex:") for row in other.http.get("/api/schedules").json()["schedules"])
    assert "tests:morning" in {row["schedule_id"] for row in dev.http.get("/api/schedules").json()["schedules"]}
    assert dev.http.post("/api/schedules", json=body).status_code == 409
    assert stack.client_as("viewer").http.delete("/api/schedules/morning").status_code == 403


def test_cli_lists_and_deletes(stack):
    env = {**os.environ, "HIVE_API_URL": stack.base_url, "HIVE_TOKEN": stack.token("developer", "dana"),
           "PYTHONPATH": str(REPO_ROOT)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "hive_streams.cli", "schedules", *args], env=env,
                              capture_output=True, text=True, timeout=60)
    task_file = stack.fabric.log_dir.parent / "tick.yaml"
    task_file.write_text("name: tick\nnodes:\n  - id: a\n    kind: echo\n    value: tick\n")
    made = cli("create", str(task_file), "--cron", "0 0 1 1 *", "--id", "yearly", "--timezone", "Asia/Tokyo")
    assert made.returncode == 0 and '"tests:yearly"' in made.stdout, made.stdout + made.stderr
    wait_until(lambda: '"tests:yearly"' in cli("list").stdout, 30, what="the CLI to list the schedule")
    assert cli("delete", "yearly").returncode == 0
    assert cli("get", "nowhere").returncode == 2
