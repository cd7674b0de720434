"""Replay and diff through the real stack: a recorded run of more than 10,000 events (tasks, agents, money)
rebuilds into read models identical to the live ones and agrees with every decider snapshot (schedules and
triggers too) and with the matcher's; an altered live row is named by its key, with exit 1."""
from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone
import re
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from hive_streams.processes import wait_until

from .eventlog import end_offsets
from .stack import Stack

pytestmark = pytest.mark.stack
TASKS = 1600
BATCH = 400
TASK = {"name": "replayed", "nodes": [{"id": "say", "kind": "echo", "value": "hello"}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("replay"), HIVE_SNAPSHOT_EVERY_EVENTS="400",
              HIVE_SNAPSHOT_EVERY_SECONDS="5")
    s.start({"earner-a": ("echo", 8, "--price", "0.5"), "earner-b": ("echo", 8, "--price", "0.25")})
    s.wait_for_agents(2)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def store(stack):
    engine = create_engine(stack.database_url)
    yield engine
    engine.dispose()


def completed(store) -> int:
    with store.connect() as conn:
        return conn.execute(text("select count(*) from tasks where status = 'completed'")).scalar()


@pytest.fixture(scope="module")
def recorded(stack, store):
    """TASKS paid tasks run to their end, then the withdrawal of one earner's earnings."""
    payer = stack.account("admin")
    assert stack.client.http.post(f"/api/accounts/{payer}/deposits", json={"amount": TASKS}).status_code == 202
    for start in range(0, TASKS, BATCH):
        response = stack.client.submit_many([{**TASK, "name": f"replayed-{i}"} for i in range(start, start + BATCH)])
        assert response.status_code == 202 and response.json()["accepted"] == BATCH, response.text[:500]
    wait_until(lambda: completed(store) >= TASKS, 600, what=f"{TASKS} tasks completed")
    assert stack.client.http.post("/api/accounts/earner-b/withdrawals", json={"amount": 1}).status_code == 202
    newer_families(stack)
    return payer


def newer_families(stack) -> None:
    """A schedule (with a callback it requests) and a trigger, snapshotted by their deciders: their events are
    audited and folded, their snapshots compared."""
    schedule = {"id": "replayed", "cron": "0 0 1 1 *", "target": {"task": TASK},
                "callback_url": "http://127.0.0.1:9/replayed"}
    trigger = {"id": "replayed", "on": {"type": "TaskFailed"}, "target": {"task": TASK}}
    for path, body in (("/api/schedules", schedule), ("/api/triggers", trigger)):
        assert stack.client.http.post(path, json=body).status_code == 202, path
    t = stack.topics

    def snapshotted() -> bool:
        return all(sum(asyncio.run(end_offsets(stack.bootstrap, t.snapshots_of(events), t.partitions)).values())
                   for events in (t.schedule_events, t.trigger_events))
    wait_until(snapshotted, 60, what="the schedule and trigger deciders' snapshots")


def replay(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIVE_KAFKA_BOOTSTRAP": stack.bootstrap, "HIVE_DATABASE_URL": stack.database_url,
           "HIVE_TOPIC_PREFIX": stack.topics.prefix, "HIVE_PARTITIONS": str(stack.topics.partitions),
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "hive_streams.cli", "replay", *args], env=env, capture_output=True,
                          text=True, timeout=900)


def summary(run: subprocess.CompletedProcess) -> tuple[int, float]:
    found = re.search(r"([\d,]+) events in [\d.]+s, ([\d,]+) events/s", run.stdout)
    assert found, run.stdout + run.stderr
    return int(found[1].replace(",", "")), float(found[2].replace(",", ""))


def test_a_recorded_run_replays_into_identical_read_models(stack, store, recorded):
    run = replay(stack)  # while the fabric runs on: heartbeats keep coming
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "identical" in run.stdout
    events, rate = summary(run)
    assert events >= 10_000
    print(f"\nreplay: {events} events, {rate:.0f} events/s")
    compared = run.stdout.split("compared", 1)[1]
    assert re.search(r"tasks (\d+)", compared) and int(re.search(r"tasks (\d+)", compared)[1]) >= TASKS
    assert "snapshots[" in compared  # decider snapshots were compared too
    # and the matcher's, key by key (taken after the tasks ended, it holds the agents and the figures)
    matcher = re.search(r"matcher\.snapshot (\d+)", compared)
    assert matcher and int(matcher[1]) >= 4, compared
    for table in ("accounts", "ledger_entries", "agents", "audit_log", "agent_outcomes"):
        assert f"{table} " in compared
    for family in ("schedule", "trigger"):  # every decider family's snapshots, not only the first three
        assert f"{stack.topics.prefix}.{family}.snapshots[" in compared, compared
    with store.connect() as conn:  # the newer topics' records are audit rows, compared like every other
        audited = set(conn.execute(text("select distinct topic from audit_log")).scalars())
    assert {stack.topics.schedule_events, stack.topics.trigger_events, stack.topics.callback_events} <= audited


def test_an_altered_live_row_is_named_by_its_key(stack, store, recorded):
    with store.begin() as conn:
        task_id = conn.execute(text("select task_id from tasks where status = 'completed' order by task_id limit 1")
                               ).scalar()
        conn.execute(text("update tasks set status = 'failed' where task_id = :t"), {"t": task_id})
        conn.execute(text("update accounts set available = available + 100 where account = 'earner-a'"))
    run = replay(stack)
    assert run.returncode == 1, run.stdout[-4000:] + run.stderr[-4000:]
    assert "2 differences" in run.stdout, run.stdout[-4000:]
    rows = [line for line in run.stdout.splitlines() if "│" in line]
    assert any(task_id in line and "status: 'failed' → 'completed'" in line for line in rows), run.stdout
    assert any("earner-a" in line and "accounts" in line and "available" in line for line in rows), run.stdout


def test_until_rebuilds_the_read_models_as_they_were_then(stack, store, recorded):
    with store.connect() as conn:
        deposit_at = conn.execute(text("select at from ledger_entries where event_type like '%FundsDeposited'")).scalar()
    until = datetime.fromtimestamp(deposit_at / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
    run = replay(stack, "--until", until)
    assert run.returncode == 0 and "rebuilt" in run.stdout, run.stdout[-4000:] + run.stderr[-4000:]
    schema = re.search(r"scratch schema kept: (\w+)", run.stdout)[1]
    try:
        with store.connect() as conn:
            balances = dict(conn.execute(text(f'select account, available from "{schema}".accounts')).all())
            released = conn.execute(text(f"select count(*) from \"{schema}\".ledger_entries "
                                         "where event_type like '%EscrowReleased'")).scalar()
        assert balances == {recorded: TASKS * 100, "external": -TASKS * 100} and released == 0
    finally:
        with store.begin() as conn:
            conn.execute(text(f'drop schema "{schema}" cascade'))
    assert replay(stack, "--until", "whenever").returncode == 2
