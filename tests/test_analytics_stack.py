"""Analytics and dead letters on the real stack: tail into jq, an Avro export read by fastavro alone,
and a poison command re-driven after the fix taking effect exactly once."""
from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import uuid

import fastavro
import pytest
from aiokafka import AIOKafkaProducer

from hive_streams.codec import default_codec
from hive_streams.domain.commands import SubmitTask
from hive_streams.domain.definition import parse_task
from hive_streams.kafka.clock import now_ms
from hive_streams.kafka.principal import principal_header
from hive_streams.processes import wait_until
from hive_streams.topics import partition_for

from .eventlog import committed_offsets, events_of
from .roles import as_role, producer_sealer
from .stack import TENANT, Stack

pytestmark = pytest.mark.stack

ECHO = {"name": "echo", "nodes": [{"id": "a", "kind": "echo", "value": "hi"}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("analytics"))
    s.start({"ex-a": ("echo", 2)})
    s.wait_for_agents(1)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def completed_task(stack) -> str:
    response = stack.client.submit(ECHO)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    assert list(stack.client.follow(task_id, timeout=60))[-1].event == "TaskCompleted"
    return task_id


def cli(stack: Stack, *args: str, pipe: str = "", check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIVE_KAFKA_BOOTSTRAP": stack.bootstrap, "HIVE_TOPIC_PREFIX": stack.topics.prefix,
           "HIVE_PARTITIONS": str(stack.topics.partitions)}
    command = [sys.executable, "-m", "hive_streams.cli", "--loglevel", "warning", *args]
    if pipe:
        shell = shlex.join(command) + " | " + pipe
        done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], env=env, capture_output=True, text=True, timeout=120)
    else:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_tail_piped_into_jq(stack, completed_task):
    done = cli(stack, "tail", "--type", "TaskSubmitted,TaskCompleted", "--tenant", TENANT,
               pipe='jq -r \'select(.key == "%s") | [.type, .tenant, .event.task_id] | @tsv\'' % completed_task)
    assert done.stdout.splitlines() == [f"TaskSubmitted\t{TENANT}\t{completed_task}",
                                        f"TaskCompleted\t{TENANT}\t{completed_task}"]
    other = cli(stack, "tail", "--tenant", "nobody", "--topic", "task", pipe="jq -c .")
    assert other.stdout == ""
    followed = cli(stack, "tail", "--follow", "--limit", "1", "--key", completed_task, "--type", "TaskCompleted",
                   pipe="jq -r .type")
    assert followed.stdout.strip() == "TaskCompleted"


def test_export_is_read_by_fastavro_alone(stack, completed_task, tmp_path):
    cli(stack, "export", "--out", str(tmp_path), "--topic", "task")
    with open(tmp_path / "TaskCompleted.avro", "rb") as fo:
        reader = fastavro.reader(fo)  # the file's own schema: nothing of hive_streams
        records = list(reader)
        assert reader.writer_schema["name"] == "hive.v1.TaskCompleted"
    assert completed_task in {r["task_id"] for r in records}
    with open(tmp_path / "TaskSubmitted.avro", "rb") as fo:
        submitted = [r for r in fastavro.reader(fo) if r["task_id"] == completed_task]
    assert [n["kind"] for n in submitted[0]["nodes"]] == ["echo"]
    assert not (tmp_path / "AgentHeartbeat.avro").exists()  # --topic task


def test_tail_and_export_read_every_event_topic(stack, tmp_path):
    """Without --topic both read `Topics.event_topics`: a schedule's and a trigger's events too."""
    for path, body in (("/api/schedules", {"id": "tailed", "cron": "0 0 1 1 *", "target": {"task": ECHO}}),
                       ("/api/triggers", {"id": "tailed", "on": {"type": "TaskFailed"}, "target": {"task": ECHO}})):
        assert stack.client.http.post(path, json=body).status_code == 202, path
    key = f"{TENANT}:tailed"
    wanted = ["ScheduleCreated", "TriggerCreated"]
    wait_until(lambda: sorted(cli(stack, "tail", "--key", key, pipe="jq -r .type").stdout.split()) == wanted, 60,
               what="the schedule's and trigger's events in the tail")
    schedules = cli(stack, "tail", "--topic", "schedule", pipe="jq -r .event.schedule_id")
    assert schedules.stdout.split() == [key]
    cli(stack, "export", "--out", str(tmp_path))
    with open(tmp_path / "TriggerCreated.avro", "rb") as fo:
        assert [r["trigger_id"] for r in fastavro.reader(fo)] == [key]


def test_stats_name_the_agent_and_its_capability(stack, completed_task):
    stats = json.loads(cli(stack, "stats", "--json").stdout)
    agent = {r["name"]: r for r in stats["agents"]}["ex-a"]
    assert agent["completed"] >= 1 and agent["success_rate"] == 1.0 and agent["run_p50_ms"] is not None
    assert "echo" in {r["name"] for r in stats["capabilities"]}


async def _send_on_wrong_partition(stack: Stack, task_id: str) -> SubmitTask:
    codec = default_codec()
    command = SubmitTask.of(task_id, uuid.uuid4().hex, now_ms(), f"{TENANT}/poisoner", parse_task(dict(ECHO), now_ms()))
    key, value, headers = codec.message(command, "/tests/poison")
    wrong = (partition_for(key, stack.topics.partitions) + 1) % stack.topics.partitions
    producer = AIOKafkaProducer(**as_role("producer").options())
    await producer.start()
    try:
        headers.append(principal_header(f"{TENANT}/poisoner"))
        headers.append(producer_sealer(f"{TENANT}/poisoner").header(value, headers))  # sent as its producer would
        await producer.send_and_wait(stack.topics.task_commands, value, key=key, partition=wrong, headers=headers)
    finally:
        await producer.stop()
    return command


def _letters(stack: Stack, *args: str) -> list[dict]:
    return [json.loads(line) for line in cli(stack, "dlq", "list", "--json", *args).stdout.splitlines()]


def _task_events(stack: Stack, task_id: str):
    return [r for r in events_of(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
            if r.key == task_id.encode()]


def test_poison_command_redriven_takes_effect_once(stack):
    task_id = f"{TENANT}:poison-{uuid.uuid4().hex[:8]}"  # a task of the requester's tenant
    command = asyncio.run(_send_on_wrong_partition(stack, task_id))
    letters = wait_until(lambda: [x for x in _letters(stack, "--reason", "default partitioner", "--topic", "task")
                                  if x["key"] == task_id] or None, 60, what="the dead letter")
    (letter,) = letters
    assert letter["type"] == "SubmitTask" and letter["id"] == command.command_id and letter["redriven_to"] == []
    assert _task_events(stack, task_id) == []

    done = cli(stack, "dlq", "redrive", str(letter["offset"]))
    assert "re-driven to" in done.stderr
    assert list(stack.client.follow(task_id, timeout=60))[-1].event == "TaskCompleted"
    (listed,) = [x for x in _letters(stack) if x["offset"] == letter["offset"]]
    assert len(listed["redriven_to"]) == 1
    assert [x["offset"] for x in _letters(stack, "--reason", "default partitioner")].count(letter["offset"]) == 1
    before = [(r.partition, r.offset, type(r.event).__name__) for r in _task_events(stack, task_id)]

    refused = cli(stack, "dlq", "redrive", str(letter["offset"]), check=False)
    assert refused.returncode == 1 and "re-driven already" in refused.stderr
    again = cli(stack, "dlq", "redrive", str(letter["offset"]), "--again").stderr
    where = again.split("re-driven to ")[1].split()[0]  # topic[partition]@offset
    partition, offset = int(where.split("[")[1].split("]")[0]), int(where.split("@")[1])
    wait_until(lambda: asyncio.run(committed_offsets(stack.bootstrap, stack.worker_id, stack.topics.task_commands,
                                                     stack.topics.partitions)).get(partition, 0) > offset, 60,
               what="the worker deciding the second re-drive")
    after = [(r.partition, r.offset, type(r.event).__name__) for r in _task_events(stack, task_id)]
    assert after == before
    assert [t for *_, t in after].count("TaskSubmitted") == 1 and [t for *_, t in after].count("TaskCompleted") == 1
    (listed,) = [x for x in _letters(stack) if x["offset"] == letter["offset"]]
    assert len(listed["redriven_to"]) == 2


def test_dlq_show_prints_the_command_and_its_headers(stack):
    letters = _letters(stack)
    assert letters, "the poison test leaves a dead letter"
    done = cli(stack, "dlq", "show", str(letters[0]["offset"]))
    shown = json.loads(done.stdout)
    assert shown["command"]["task_id"] and shown["headers"]["dlq_topic"] == stack.topics.task_commands


def test_daily_costs_connector_reads_as_analyst_with_its_own_group(stack, completed_task, tmp_path):
    out = tmp_path / "daily-costs.json"
    env = {**os.environ, "HIVE_KAFKA_BOOTSTRAP": stack.bootstrap, "HIVE_TOPIC_PREFIX": stack.topics.prefix,
           "HIVE_PARTITIONS": str(stack.topics.partitions)}
    done = subprocess.run([sys.executable, "-m", "connectors.daily_costs", "--once", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    tenants = {tenant: row for day in summary["summary"]["days"].values() for tenant, row in day.items()}
    assert tenants[TENANT]["submitted"] >= 1 and tenants[TENANT]["completed"] >= 1
    group = f"{stack.topics.prefix}.analyst.daily-costs"
    committed = asyncio.run(committed_offsets(stack.bootstrap, group, stack.topics.task_events, stack.topics.partitions))
    assert sum(committed.values()) == sum(int(v) for k, v in summary["offsets"].items()
                                          if k.startswith(stack.topics.task_events))
