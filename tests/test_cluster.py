"""The fabric on a three-broker KRaft cluster, through the crash of one broker.

The cluster is the test's own (`hive-streams kafka up --brokers 3` in HIVE_CLUSTER_HOME, ports from
HIVE_CLUSTER_PORT), never the shared broker; it is stopped at the end of the module. While tasks
arrive, the broker leading the first task-events partition is SIGKILLed and, some seconds later,
started again; nobody touches the fabric meanwhile. The whole raw log is then checked: every
task ended exactly once, nothing undecodable, no gap or clash in any aggregate's seqs.
HIVE_CLUSTER_TASKS sets the size (500 by default).
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from sqlalchemy import create_engine, text

from hive_streams import settings as settings_mod
from hive_streams.infra import kafka
from hive_streams.kafka.admin import ensure_topics
from hive_streams.kafka.clients import admin as admin_client, producer
from hive_streams.processes import wait_until
from hive_streams.settings import REPO_ROOT
from hive_streams.topics import Topics

from .chaos import new_key, post_until_accepted
from .eventlog import whole_log
from .logcheck import endings, history, last_problems, log_problems
from .roles import as_role, grant, revoke
from .stack import Stack

pytestmark = pytest.mark.stack
TASKS = int(os.environ.get("HIVE_CLUSTER_TASKS", "500"))
BATCH = 25
SPREAD_SECONDS = 30  # submissions keep arriving before, during and after the crash
EXECUTORS = {"exec-a": ("echo", 8), "exec-b": ("echo", 8)}


@pytest.fixture(scope="module")
def cluster(pg_url):
    """Three brokers of the test's own; the environment points roles, ACLs and readers at them meanwhile."""
    saved = dict(os.environ)
    os.environ.update({"HIVE_HOME": os.environ.get("HIVE_CLUSTER_HOME", str(REPO_ROOT / ".hive-cluster")),
                       "HIVE_KAFKA_PORT": os.environ.get("HIVE_CLUSTER_PORT", "29092")})
    os.environ.pop("HIVE_KAFKA_BROKERS", None)  # the home's count from here on
    s = settings_mod.load()
    assert s.home != saved.get("HIVE_HOME") and s.kafka_port != 9092, "the cluster needs a home and ports of its own"
    os.environ["HIVE_KAFKA_CREDENTIALS"] = str(kafka.credentials_file(s))
    kafka.down(s)  # a cluster left by an earlier run: fresh storage each run keeps a restart's log recovery short
    shutil.rmtree(Path(s.home) / "kafka", ignore_errors=True)
    try:
        up = subprocess.run([sys.executable, "-m", "hive_streams.cli", "kafka", "up", "--brokers", "3"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
        assert up.returncode == 0, up.stderr[-3000:]
        assert kafka.status(s)["brokers"] == 3
        yield s, up.stdout.strip().splitlines()[-1]
    finally:
        kafka.down(s)
        os.environ.clear()
        os.environ.update(saved)


async def test_the_cluster_has_the_users_and_acls_of_one_broker(cluster):
    s, bootstrap = cluster
    topics = Topics(f"t{uuid.uuid4().hex[:10]}", 1)
    await ensure_topics(as_role("admin"), topics)
    await asyncio.to_thread(grant, topics, topics.prefix)
    try:
        partitions, min_isr = await describe(bootstrap, topics)
        assert {len(p["replicas"]) for p in partitions.values()} == {3} and set(min_isr.values()) == {"2"}
        writer = producer(as_role("producer"))  # acks=all, idempotent
        await writer.start()
        try:
            await writer.send_and_wait(topics.task_commands, b"x", key=b"k")  # the producer role may submit
        finally:
            await writer.stop()
        analyst = AIOKafkaProducer(**as_role("analyst").options())
        await analyst.start()
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                await analyst.send_and_wait(topics.task_commands, b"x")
        finally:
            await analyst.stop()
        wrong = admin_client(dataclasses.replace(as_role("worker"), password="not-the-password"),
                             request_timeout_ms=5000)
        with pytest.raises(KafkaError):
            try:
                await asyncio.wait_for(wrong.start(), 20)
            finally:
                await wrong.close()
    finally:
        await asyncio.to_thread(revoke, topics, topics.prefix)


def definition(i: int) -> dict:
    return {"id": f"cluster-{i}", "name": f"cluster-{i}", "priority": i % 3,
            "nodes": [{"id": "a", "kind": "echo", "value": i}]}


async def describe(bootstrap: str, topics, configs: bool = True) -> tuple[dict[tuple[str, int], dict], dict[str, str]]:
    """(topic, partition) -> its leader, replicas and in-sync replicas; topic -> min.insync.replicas."""
    admin = admin_client(dataclasses.replace(as_role("admin"), bootstrap=bootstrap))
    await admin.start()
    try:
        names = list(topics.layout())
        partitions = {(t["topic"], p["partition"]): p for t in await admin.describe_topics(names)
                      for p in t["partitions"]}
        if not configs:
            return partitions, {}
        answers = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
        min_isr = {name: value for answer in answers for _, _, _, name, configs in answer.resources
                   for key, value, *_ in configs if key == "min.insync.replicas"}
        return partitions, min_isr
    finally:
        await admin.close()


def partitions_now(bootstrap: str, topics) -> dict[tuple[str, int], dict] | None:
    """The partitions as the cluster describes them, or None while a broker it asks is unreachable."""
    try:
        return asyncio.run(describe(bootstrap, topics, configs=False))[0]
    except (KafkaError, TimeoutError, OSError):
        return None


def leader_moved(bootstrap: str, topics, away_from: int) -> bool:
    partitions = partitions_now(bootstrap, topics)
    return partitions is not None and partitions[(topics.task_events, 0)]["leader"] not in (away_from, -1)


def in_sync(bootstrap: str, topics) -> bool:
    partitions = partitions_now(bootstrap, topics)
    return partitions is not None and all(len(p["isr"]) == 3 for p in partitions.values())


def terminal_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("select count(*) from tasks where task_id like 'tests:cluster-%' and status in "
                                 "('completed', 'failed', 'cancelled', 'rejected')")).scalar()


@pytest.mark.timeout(1200)
def test_tasks_end_exactly_once_through_a_broker_crash(cluster, pg_url, tmp_path):
    s, bootstrap = cluster
    stack = Stack(bootstrap, pg_url, tmp_path, partitions=4).start(EXECUTORS, workers=2)
    engine = create_engine(stack.database_url)
    try:
        partitions, min_isr = asyncio.run(describe(bootstrap, stack.topics))
        assert {len(p["replicas"]) for p in partitions.values()} == {3}
        assert set(min_isr.values()) == {"2"} and set(min_isr) == set(stack.topics.layout())
        victim = partitions[(stack.topics.task_events, 0)]["leader"]
        stack.wait_for_agents(len(EXECUTORS))
        deadline = time.monotonic() + 600
        batches = list(range(0, TASKS, BATCH))
        crash_at, back_at = batches[len(batches) // 4], batches[3 * len(batches) // 4]
        accepted_while_down = 0
        for start in batches:
            if start == crash_at:
                kafka.kill(s, victim)
                wait_until(lambda: leader_moved(bootstrap, stack.topics, victim), 60, interval=0.5,
                           what=f"the cluster to notice broker {victim} gone")
            if start == back_at:
                kafka.up(s, timeout=300)  # the same node, same data: it recovers its logs and catches up
            batch = [definition(i) for i in range(start, min(TASKS, start + BATCH))]
            post_until_accepted(stack.base_url, "/api/tasks", batch, new_key("batch"), deadline, headers=stack.auth())
            accepted_while_down += len(batch) if crash_at <= start < back_at else 0
            time.sleep(SPREAD_SECONDS / len(batches))
        assert accepted_while_down > 0

        wait_until(lambda: terminal_count(engine) == TASKS, 300, interval=1, what=f"{TASKS} tasks to end")
        stack.fabric.check_alive()  # no process died: nobody had to act
        assert last_problems(lambda: log_problems(whole_log(bootstrap, stack.topics)), 60) == []
        ends = endings(history(whole_log(bootstrap, stack.topics)))
        assert len(ends) == TASKS and all(sum(c.values()) == 1 for c in ends.values())
        # the crashed broker is back in every in-sync set
        wait_until(lambda: in_sync(bootstrap, stack.topics), 120, interval=2, what="the restarted broker back in sync")
    finally:
        stack.stop()
        engine.dispose()
