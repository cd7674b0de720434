"""SSE feeds on the real stack: exact resume after forced disconnects and API restarts, replay, dedup."""
from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from hive_streams.processes import wait_until

from .eventlog import events_of
from .roles import as_role
from .feedhelp import layered_sleeps, of_task, read_with_disconnects, start_api, stop_api, task_ended
from .stack import ALL_KINDS, Stack

pytestmark = pytest.mark.stack
TERMINAL = {"TaskCompleted", "TaskFailed", "TaskCancelled", "TaskRejected"}
FEED_TYPES = "NodeStarted,NodeProgress,NodeCompleted,TaskCompleted"


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("feeds"))
    s.start({"feed-a": (ALL_KINDS, 4), "feed-b": (ALL_KINDS, 4)})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def forgetful(stack):
    """A second API process that holds only 20 events, so resumes go through Kafka catch-up."""
    client = start_api(stack, "api-forgetful", HIVE_FEED_MEMORY="20")
    yield client
    client.close()


def submit(client, definition) -> str:
    response = client.submit(definition)
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def position(client) -> str:
    return client.get_json("/api/views/snapshot")["position"]


def assert_exact(frames, reference):
    assert [f.id for f in frames] == [f.id for f in reference]
    assert [f.data["seq"] for f in frames] == list(range(1, len(reference) + 1))


@pytest.mark.parametrize("api", ["main", "forgetful"])
def test_task_feed_resumes_exactly_after_random_disconnects(stack, forgetful, api):
    client = stack.client if api == "main" else forgetful
    task_id = f"many-{api}"
    submit(client, layered_sleeps(task_id))
    rng = random.Random(5)
    frames, connections = read_with_disconnects(client, f"/api/tasks/{task_id}/events",
                                                lambda fs: bool(fs) and fs[-1].event in TERMINAL, rng)
    reference = list(client.follow(task_id))
    assert len(reference) >= 500, [f.event for f in reference[:10]]
    assert reference[-1].event == "TaskCompleted", stack.logs()
    assert connections > 20
    assert_exact(frames, reference)


@pytest.mark.parametrize("api", ["main", "forgetful"])
def test_cluster_feed_resumes_exactly_after_random_disconnects(stack, forgetful, api):
    client = stack.client if api == "main" else forgetful
    task_id = f"cluster-{api}"
    start = position(client)
    submit(client, layered_sleeps(task_id))
    frames, connections = read_with_disconnects(client, "/api/events", task_ended(task_id), random.Random(7),
                                                last_id=start, params={"types": FEED_TYPES})
    reference = [f for f in client.follow(task_id) if f.event in FEED_TYPES.split(",")]
    mine = of_task(frames, task_id)
    assert connections > 10
    assert [(f.event, f.data["seq"]) for f in mine] == [(f.event, f.data["seq"]) for f in reference]
    assert len({f.id for f in frames}) == len(frames)
    assert {f.event for f in frames} <= set(FEED_TYPES.split(","))


def test_feeds_resume_on_a_restarted_api_process(stack):
    first = start_api(stack, "api-before")
    task_id = "restart-1"
    start = position(first)
    submit(first, layered_sleeps(task_id, layers=4))
    task_part = [f for _, f in zip(range(30), first.follow(task_id))]
    cluster_part = [f for _, f in zip(range(30), first.stream("/api/events", start))]
    stop_api(stack, "api-before")
    first.close()

    second = start_api(stack, "api-after")
    task_rest = list(second.follow(task_id, last_event_id=task_part[-1].id))
    cluster_rest = []
    for frame in second.stream("/api/events", cluster_part[-1].id):
        cluster_rest.append(frame)
        if task_ended(task_id)(cluster_rest):
            break
    reference = list(second.follow(task_id))
    assert_exact(task_part + task_rest, reference)
    cluster = of_task(cluster_part + cluster_rest, task_id)
    assert [f.data["seq"] for f in cluster] == [f.data["seq"] for f in reference]
    second.close()


def test_finished_task_feed_replays_history_and_closes(stack, forgetful):
    task_id = submit(stack.client, {"name": "short", "nodes": [{"id": "a", "kind": "echo", "value": 1}]})
    live = list(stack.client.follow(task_id))
    assert live[-1].event == "TaskCompleted"
    for client in (stack.client, forgetful):
        replay = list(client.follow(task_id, timeout=60))  # returns only because the server closes the feed
        assert [f.id for f in replay] == [f.id for f in live]
        assert [f.data for f in replay] == [f.data for f in live]


def test_agent_feed_has_the_agents_events_and_the_tasks_it_ran(stack):
    start = position(stack.client)
    task_id = submit(stack.client, {"name": "for-agent", "nodes": [{"id": "a", "kind": "echo", "value": 1}]})
    agent_id = next(f.data["agent_id"] for f in stack.client.follow(task_id) if f.event == "TaskAssigned")
    frames = []
    seen = lambda event: any(f.event == event and f.data.get("task_id") == task_id for f in frames)
    for frame in stack.client.stream(f"/api/agents/{agent_id}/events", start):
        frames.append(frame)
        if seen("TaskCompleted") and seen("SlotReleased"):  # the feed merges partitions: no order across them
            break
    assert all(f.data["agent_id"] == agent_id for f in frames)
    kinds = [f.event for f in frames if f.data.get("task_id") == task_id and not f.event.startswith("Node")]
    assert sorted(kinds) == ["SlotReleased", "SlotReserved", "TaskAssigned", "TaskCompleted"], kinds
    # within one partition the feed keeps the log's order
    assert kinds.index("SlotReserved") < kinds.index("SlotReleased")
    assert kinds.index("TaskAssigned") < kinds.index("TaskCompleted")


def test_a_duplicated_event_is_shown_once(stack):
    start = position(stack.client)
    task_id = submit(stack.client, {"name": "dup", "nodes": [{"id": "a", "kind": "sleep", "seconds": 2}]})
    next(f for f in stack.client.follow(task_id) if f.event == "NodeStarted")
    records = [r for r in events_of(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
               if r.key == task_id.encode()]
    assigned = next(r for r in records if dict(r.headers)["ce_type"] == b"hive.v1.TaskAssigned")
    asyncio.run(_produce_again(stack, assigned))  # the same record again, byte for byte
    frames = list(stack.client.follow(task_id))
    assert [f.data["seq"] for f in frames] == list(range(1, len(frames) + 1))
    cluster = []
    for frame in stack.client.stream("/api/events", start):
        cluster.append(frame)
        if task_ended(task_id)(cluster):
            break
    assert [f.data["seq"] for f in of_task(cluster, task_id)] == [f.data["seq"] for f in frames]
    copies = [r for r in events_of(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
              if r.key == task_id.encode() and r.value == assigned.value]
    assert len(copies) == 2


async def _produce_again(stack, record) -> None:
    producer = AIOKafkaProducer(**as_role("worker").options())  # a worker writing an event again
    await producer.start()
    try:
        await producer.send_and_wait(record.topic, record.value, key=record.key, headers=list(record.headers),
                                     partition=record.partition)
    finally:
        await producer.stop()


def test_bad_positions_and_types_get_a_clear_4xx(stack):
    http = stack.client.http
    assert http.get("/api/events", params={"types": "NoSuchEvent"}).json()["field"] == "types"
    assert http.get("/api/events", headers={"last-event-id": "garbage"}).status_code == 400
    response = http.get("/api/tasks/x/events", headers={"last-event-id": "1:2"})
    assert response.status_code == 400 and response.json()["field"] == "last_event_id"


def test_idle_feed_sends_keep_alive_comments(stack):
    with stack.client.http.stream("GET", "/api/agents/nobody/events", timeout=httpx.Timeout(60)) as response:
        for line in response.iter_lines():
            if line.startswith(":"):
                break
    assert line.startswith(": ping")
    wait_until(lambda: stack.client.get_json("/api/events/stats")["subscribers"] == 0, 30, what="unsubscribe")
