"""Tamper-evident audit on the real fabric: rows altered, deleted and inserted with SQL are named by
`audit verify`, a chain recomputed by the attacker is caught by the published heads, a request's
correlation id and principal are on its command, its events and their audit rows, and the schedule, trigger,
callback and alert topics are audited and verified like the others."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid

import httpx
import pytest
from sqlalchemy import bindparam, create_engine, text

from hive_streams import settings as settings_mod
from hive_streams.audit.chain import GENESIS, link
from hive_streams.audit.verify import Report, verify
from hive_streams.codec import default_codec
from hive_streams.kafka import access_for
from hive_streams.processes import wait_until
from hive_streams.settings import REPO_ROOT
from hive_streams.store.models import audit_log

from .eventlog import events_of
from .stack import ALL_KINDS, Stack

pytestmark = pytest.mark.stack

STEPS = {
    "name": "audited",
    "nodes": [
        {"id": "first", "kind": "echo", "value": "a"},
        {"id": "wait", "kind": "sleep", "seconds": 0.3, "depends_on": ["first"]},
        {"id": "last", "kind": "echo", "value": "b", "depends_on": ["wait"]},
    ],
}
REQUEST_ID = f"req-{uuid.uuid4().hex[:12]}"
LATER_ID = f"req-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("audit"),
              HIVE_AUDIT_CHECKPOINT_ROWS="1", HIVE_AUDIT_CHECKPOINT_SECONDS="0.5",
              HIVE_ALERT_RULES="high_cpu=threshold:0,count:1")  # the first heartbeat on a loaded host raises it
    s.start({"ex-audit": (ALL_KINDS, 2)})
    s.wait_for_agents(1)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def task_id(stack, sql):
    """A task submitted with a request id, completed, with every one of its events audited."""
    response = httpx.post(f"{stack.base_url}/api/tasks", json=STEPS,
                          headers={**stack.auth(), "X-Request-Id": REQUEST_ID}, timeout=30)
    assert response.status_code == 202, response.text
    assert response.headers["X-Request-Id"] == REQUEST_ID
    task = response.json()["task_id"]
    wait_until(lambda: (stack.client.task(task) or {}).get("status") == "completed", 60, what="task completed")
    wait_until(lambda: "hive.v1.TaskCompleted" in [r.event_type for r in rows_of(sql, task)], 30,
               what="the completion audited")
    return task


def rows_of(sql, task_id: str) -> list:
    with sql.connect() as conn:
        return conn.execute(text('select * from audit_log where aggregate_id = :t order by "offset"'),
                            {"t": task_id}).all()


def settings_of(stack: Stack):
    return dataclasses.replace(settings_mod.load(), kafka_bootstrap=stack.bootstrap,
                               database_url=stack.database_url, topic_prefix=stack.topics.prefix,
                               partitions=stack.topics.partitions)


def audit_verify(stack: Stack) -> Report:
    s = settings_of(stack)
    engine = create_engine(stack.database_url)
    try:
        return asyncio.run(verify(access_for(s, "analyst"), engine, default_codec(), stack.topics))
    finally:
        engine.dispose()


def audit_verify_cli(stack: Stack) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIVE_KAFKA_BOOTSTRAP": stack.bootstrap, "HIVE_DATABASE_URL": stack.database_url,
           "HIVE_TOPIC_PREFIX": stack.topics.prefix, "HIVE_PARTITIONS": str(stack.topics.partitions),
           "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "hive_streams.cli", "--loglevel", "warning", "audit", "verify"],
                          env=env, capture_output=True, text=True, timeout=120)


def named(report: Report) -> set[tuple[str, int, str]]:
    return {(f.kind, f.offset, f.topic) for f in report.findings}


def test_a_clean_log_verifies(stack, task_id):
    done = audit_verify_cli(stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit log verified" in done.stdout
    report = audit_verify(stack)
    assert report.ok and report.checked > 0 and report.heads > 0, report.findings


def test_correlation_id_and_principal_are_on_command_events_and_rows(stack, sql, task_id):
    commands = [r for r in events_of(stack.bootstrap, stack.topics.task_commands, stack.topics.partitions)
                if r.key == task_id.encode()]
    submit = next(r for r in commands if type(r.event).__name__ == "SubmitTask")
    assert submit.header("ce_correlationid") == REQUEST_ID
    assert submit.header("hive_principal") == stack.account("admin")
    events = [r for r in events_of(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
              if r.key == task_id.encode()]
    assert len(events) >= 4 and {r.header("ce_correlationid") for r in events} == {REQUEST_ID}
    rows = rows_of(sql, task_id)
    assert len(rows) == len(events)
    assert {r.correlation_id for r in rows} == {REQUEST_ID}
    assert all(r.principal for r in rows)
    by_type = {r.event_type: r for r in rows}
    assert by_type["hive.v1.TaskSubmitted"].principal == stack.account("admin")
    assert by_type["hive.v1.TaskCompleted"].principal == "agent:ex-audit"  # the executor's signed report
    assert by_type["hive.v1.TaskAssigned"].principal.startswith("system:")  # a follow-up of the slot reserved
    with sql.connect() as conn:  # the money and the slot the task moved carry the request too
        others = conn.execute(text("select event_type, correlation_id from audit_log where topic <> :t "
                                   "and payload::text like :task"),
                              {"t": stack.topics.task_events, "task": f"%{task_id}%"}).all()
    assert others and {c for _, c in others} == {REQUEST_ID}, others


def test_altered_deleted_inserted_and_missing_rows_are_named(stack, sql, task_id):
    rows = rows_of(sql, task_id)
    topic, partition = rows[0].topic, rows[0].partition
    altered, deleted, tail = rows[0], rows[1], rows[-1]
    assert tail.offset == max_offset(sql, topic, partition)  # the task's partition holds only this task
    inserted_at = tail.offset + 1000
    with sql.begin() as conn:
        conn.execute(text("update audit_log set principal = 'mallory' where id = :id"), {"id": altered.id})
        conn.execute(text("delete from audit_log where id in (:a, :b)"), {"a": deleted.id, "b": tail.id})
        conn.execute(text('insert into audit_log (event_id, aggregate_id, seq, event_type, topic, partition, "offset", '
                          "occurred_at, recorded_at, payload, headers, principal, correlation_id, duplicate, "
                          "record_key, record_headers, record_value, hash) "
                          "select event_id, aggregate_id, seq, event_type, topic, partition, :o, occurred_at, "
                          "recorded_at, payload, headers, principal, correlation_id, duplicate, record_key, "
                          "record_headers, record_value, hash from audit_log where id = :id"),
                     {"o": inserted_at, "id": rows[2].id})
    try:
        report = audit_verify(stack)
        found = named(report)
        assert ("modified", altered.offset, topic) in found
        assert ("deleted", deleted.offset, topic) in found
        assert ("missing", tail.offset, topic) in found
        assert ("inserted", inserted_at, topic) in found
        assert {f.kind for f in report.findings} <= {"modified", "deleted", "missing", "inserted", "checkpoint"}
        detail = next(f.detail for f in report.findings if f.kind == "modified")
        assert "principal" in detail
        done = audit_verify_cli(stack)
        assert done.returncode == 1
        for kind in ("modified", "deleted", "missing", "inserted"):
            assert kind in done.stdout, done.stdout
    finally:
        restore(sql, [altered, deleted, tail], inserted_at, topic, partition)
    assert audit_verify(stack).ok


def test_a_chain_recomputed_by_the_attacker_is_caught_by_the_published_heads(stack, sql, task_id):
    rows = rows_of(sql, task_id)
    topic, partition = rows[0].topic, rows[0].partition
    target = rows[1]
    forged_value = bytes(target.record_value).replace(b"echo", b"ohce")
    assert forged_value != bytes(target.record_value)
    with sql.begin() as conn:
        chain = conn.execute(text('select id, "offset", record_key, record_headers, record_value, hash '
                                  'from audit_log where topic = :t and partition = :p order by "offset"'),
                             {"t": topic, "p": partition}).all()
        prev = GENESIS
        for row in chain:  # the attacker rewrites the row and every hash from it on
            value = forged_value if row.id == target.id else row.record_value
            digest = link(prev, row.offset, row.record_key, bytes(row.record_headers), value and bytes(value))
            if row.offset >= target.offset:
                conn.execute(text("update audit_log set record_value = :v, hash = :h where id = :id"),
                             {"v": value, "h": digest, "id": row.id})
            prev = digest
    try:
        # the table's own chain is consistent again: only the anchor outside it can tell
        assert table_chain_consistent(sql, topic, partition)
        report = audit_verify(stack)
        heads = [f for f in report.findings if f.kind == "checkpoint" and (f.topic, f.partition) == (topic, partition)]
        assert heads, report.findings
        assert ("modified", target.offset, topic) in named(report)
        done = audit_verify_cli(stack)
        assert done.returncode == 1 and "checkpoint" in done.stdout
    finally:
        with sql.begin() as conn:
            for row in chain:
                conn.execute(text("update audit_log set record_value = :v, hash = :h where id = :id"),
                             {"v": row.record_value, "h": row.hash, "id": row.id})
    assert audit_verify(stack).ok


def newer_family_rows(sql, wanted: dict[str, str]) -> dict[str, object] | None:
    """topic -> its first audit row of the wanted event type, once every topic has one."""
    with sql.connect() as conn:
        found = {topic: conn.execute(text('select * from audit_log where topic = :t and event_type = :e '
                                          'order by "offset" limit 1'), {"t": topic, "e": kind}).first()
                 for topic, kind in wanted.items()}
    return found if all(found.values()) else None


def test_schedule_trigger_callback_and_alert_records_are_audited_chained_and_verified(stack, sql, task_id):
    headers = {**stack.auth(), "X-Request-Id": LATER_ID}
    schedule = {"id": "audited", "cron": "0 0 1 1 *", "target": {"task": STEPS},
                "callback_url": "http://127.0.0.1:9/audited"}  # never sent (no callback secret): requested only
    trigger = {"id": "audited", "on": {"type": "TaskFailed"}, "target": {"task": STEPS}}
    for path, body in (("/api/schedules", schedule), ("/api/triggers", trigger)):
        response = httpx.post(f"{stack.base_url}{path}", json=body, headers=headers, timeout=30)
        assert response.status_code == 202, response.text
    t = stack.topics
    wanted = {t.schedule_events: "hive.v1.ScheduleCreated", t.trigger_events: "hive.v1.TriggerCreated",
              t.callback_events: "hive.v1.CallbackRequested", t.alerts: "hive.v1.AlertRaised"}
    rows = wait_until(lambda: newer_family_rows(sql, wanted), 90, what="a row of each newer topic")
    for topic, row in rows.items():  # who, what, when, and the request: what the record carries, nothing invented
        assert row.occurred_at and row.event_id == f"{row.aggregate_id}/{row.seq}" and row.payload, topic
        assert table_chain_consistent(sql, topic, row.partition), topic
    admin = stack.account("admin")
    assert rows[t.schedule_events].principal == rows[t.trigger_events].principal == admin
    assert rows[t.schedule_events].aggregate_id == rows[t.trigger_events].aggregate_id == "tests:audited"
    assert rows[t.callback_events].principal.startswith("system:")  # the schedule decider's follow-up
    assert {rows[n].correlation_id for n in (t.schedule_events, t.trigger_events, t.callback_events)} == {LATER_ID}
    alert = rows[t.alerts]
    assert alert.aggregate_id == "high_cpu:ex-audit" and alert.principal is None and alert.correlation_id is None
    assert audit_verify(stack).ok

    with sql.begin() as conn:
        conn.execute(text("update audit_log set principal = 'mallory' where id in :ids").bindparams(
            bindparam("ids", expanding=True)), {"ids": [row.id for row in rows.values()]})
    try:
        report = audit_verify(stack)
        for topic, row in rows.items():
            assert ("modified", row.offset, topic) in named(report), (topic, report.findings)
        done = audit_verify_cli(stack)
        assert done.returncode == 1 and "modified" in done.stdout, done.stdout
    finally:
        with sql.begin() as conn:
            for row in rows.values():
                conn.execute(text("update audit_log set principal = :p where id = :id"),
                             {"p": row.principal, "id": row.id})
    assert audit_verify(stack).ok


def max_offset(sql, topic: str, partition: int) -> int:
    with sql.connect() as conn:
        return conn.execute(text('select max("offset") from audit_log where topic = :t and partition = :p'),
                            {"t": topic, "p": partition}).scalar()


def table_chain_consistent(sql, topic: str, partition: int) -> bool:
    with sql.connect() as conn:
        chain = conn.execute(text('select "offset", record_key, record_headers, record_value, hash from audit_log '
                                  'where topic = :t and partition = :p order by "offset"'),
                             {"t": topic, "p": partition}).all()
    prev = GENESIS
    for row in chain:
        key = row.record_key and bytes(row.record_key)
        if link(prev, row.offset, key, bytes(row.record_headers), row.record_value and bytes(row.record_value)) != row.hash:
            return False
        prev = row.hash
    return True


def restore(sql, originals: list, inserted_at: int, topic: str, partition: int) -> None:
    with sql.begin() as conn:
        conn.execute(text('delete from audit_log where topic = :t and partition = :p and "offset" = :o'),
                     {"t": topic, "p": partition, "o": inserted_at})
        conn.execute(audit_log.delete().where(audit_log.c.id.in_([row.id for row in originals])))
        conn.execute(audit_log.insert(), [dict(row._mapping) for row in originals])
