"""The whole fabric through real processes, a real Kafka broker and a real PostgreSQL."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from hive_streams.processes import wait_until

from .eventlog import events_of
from .roles import as_role
from .stack import ALL_KINDS, Stack

pytestmark = pytest.mark.stack

THREE_NODES = {
    "name": "three-node",
    "nodes": [
        {"id": "fetch", "kind": "echo", "value": "data"},
        {"id": "shout", "kind": "shell", "command": "echo {{ nodes.fetch.output }} | tr a-z A-Z", "depends_on": ["fetch"]},
        {"id": "store", "kind": "python", "function": "hive_streams.demo.steps:combine", "depends_on": ["shout"]},
    ],
}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("fabric"), HIVE_OTLP_ENDPOINT="")  # spans not exported
    s.start({"ex-a": (ALL_KINDS, 3), "ex-b": (ALL_KINDS, 3)})
    s.wait_for_agents(2)
    yield s
    s.stop()


def submit(stack: Stack, definition) -> str:
    response = stack.client.submit(definition)
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def audit_rows(sql, task_id: str) -> list[tuple]:
    with sql.connect() as conn:
        return conn.execute(text("select event_id, event_type, seq from audit_log where aggregate_id = :t order by seq"),
                            {"t": task_id}).all()


def test_three_node_dag_over_http_sse_and_audit(stack, sql):
    task_id = submit(stack, THREE_NODES)
    frames = list(stack.client.follow(task_id, timeout=60))
    kinds = [f.event for f in frames]
    assert kinds[:2] == ["TaskSubmitted", "TaskAssigned"] and frames[0].data["queued"], stack.logs()
    assert kinds[-1] == "TaskCompleted" and "TaskStarted" not in kinds
    # reports within the executor's linger travel as one; those that do appear keep the DAG's order
    node_events = [(f.event, f.data["node_id"]) for f in frames if f.event.startswith("Node")]
    dag_order = [("NodeStarted", "fetch"), ("NodeCompleted", "fetch"), ("NodeStarted", "shout"),
                 ("NodeCompleted", "shout"), ("NodeStarted", "store"), ("NodeCompleted", "store")]
    assert node_events == [step for step in dag_order if step in node_events], node_events
    assert [f.data["seq"] for f in frames] == list(range(1, len(frames) + 1))
    outputs = {o["node_id"]: json.loads(o["output_json"]) for o in frames[-1].data["outputs"]}
    assert outputs["shout"]["stdout"] == "DATA\n"
    assert outputs["store"] == {"lines": 1, "inputs": ["shout"]}

    expected = [(f"{task_id}/{f.data['seq']}", f"hive.v1.{f.event}", f.data["seq"]) for f in frames]
    wait_until(lambda: len(audit_rows(sql, task_id)) >= len(expected), 30, what="audit rows")
    assert [tuple(r) for r in audit_rows(sql, task_id)] == expected
    assert stack.client.task(task_id)["status"] == "completed"


def test_feed_resumes_after_last_event_id(stack):
    task_id = submit(stack, THREE_NODES)
    frames = list(stack.client.follow(task_id, timeout=60))
    assert len(frames) >= 3, [f.event for f in frames]
    resumed = list(stack.client.follow(task_id, last_event_id=frames[1].id, timeout=60))
    assert [f.id for f in resumed] == [f.id for f in frames[2:]]


@pytest.mark.parametrize("body, content_type, status, field", [
    (b"name: [unclosed", "application/yaml", 400, "$"),
    (b"{not json", "application/json", 400, "$"),
    (json.dumps({"nodes": [{"id": "a", "kind": "echo"}]}).encode(), "application/json", 422, "name"),
    (b"name: c\nnodes:\n- {id: a, kind: echo, depends_on: [b]}\n- {id: b, kind: echo, depends_on: [a]}\n",
     "application/yaml", 422, "nodes"),
    (b"name: k\nnodes:\n- {id: a, kind: shell}\n", "application/yaml", 422, "nodes[0].command"),
    (b"x" * (10 * 1024 * 1024), "application/yaml", 413, "$"),
])
def test_malformed_definitions_get_a_clear_4xx(stack, body, content_type, status, field):
    response = stack.client.submit(body, content_type)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert response.json()["error"]


def test_cycle_error_names_the_cycle(stack):
    response = stack.client.submit(b"name: c\nnodes:\n- {id: a, kind: echo, depends_on: [b]}\n- {id: b, kind: echo, depends_on: [a]}\n")
    assert "cycle: a -> b -> a" in response.json()["error"]


def test_garbage_record_goes_to_the_deadletter_topic_and_work_continues(stack):
    async def produce_garbage():
        producer = AIOKafkaProducer(**as_role("producer").options())  # anyone who may write task commands
        await producer.start()
        try:
            await producer.send_and_wait(stack.topics.task_commands, b"\x00garbage\xff" * 3, key=b"junk")
            await producer.send_and_wait(stack.topics.task_commands, b"\xc3\x01" + b"\x01" * 8 + b"body", key=b"junk2")
        finally:
            await producer.stop()

    asyncio.run(produce_garbage())
    task_id = submit(stack, THREE_NODES)
    assert list(stack.client.follow(task_id, timeout=60))[-1].event == "TaskCompleted"
    dead = wait_until(lambda: [r for r in events_of(stack.bootstrap, stack.topics.deadletter, 1)
                               if r.key in (b"junk", b"junk2")] or None, 30, what="dead letters")
    reasons = {r.key: dict(r.headers)["dlq_reason"].decode() for r in dead}
    assert reasons[b"junk"].startswith("undecodable: not Avro single-object encoding")
    assert "unknown schema fingerprint" in reasons[b"junk2"]
    assert dict(dead[0].headers)["dlq_topic"] == stack.topics.task_commands.encode()
    assert stack.worker.alive


def test_an_assignment_is_decided_in_the_transaction_that_reserves_its_slot(stack):
    """One worker decides every partition: the slot's `AssignTask` follow-up is decided where it is written, and
    read back later without effect. The log still holds the command, and one `TaskAssigned` caused by it."""
    task_id = submit(stack, {"name": "one", "nodes": [{"id": "a", "kind": "echo", "value": "x"}]})
    assert [f.event for f in stack.client.follow(task_id, timeout=60)][-1] == "TaskCompleted"
    partitions = stack.topics.partitions
    events = [r for r in events_of(stack.bootstrap, stack.topics.task_events, partitions) if r.key == task_id.encode()]
    assert [r.event.seq for r in events] == list(range(1, len(events) + 1))
    assigned = [r for r in events if type(r.event).__name__ == "TaskAssigned"]
    assert len(assigned) == 1 and assigned[0].header("hive_command_offset") is None, assigned
    commands = [r for r in events_of(stack.bootstrap, stack.topics.task_commands, partitions)
                if r.key == task_id.encode() and type(r.event).__name__ == "AssignTask"]
    assert [r.event.command_id for r in commands] == [assigned[0].header("ce_causationid")]
    read = [r for r in events if r is not assigned[0]]  # the rest came from commands read at an offset
    assert read and all(r.header("hive_command_offset") is not None for r in read)


def test_without_an_exporter_only_a_client_trace_travels(stack):
    """No HIVE_OTLP_ENDPOINT here: a request without a traceparent starts no trace (no `traceresponse`, no
    `ce_traceparent` on the task's records); a client's own trace still runs from the request to TaskCompleted."""
    definition = {"name": "traces", "nodes": [{"id": "a", "kind": "echo", "value": "x"}]}
    plain = stack.client.http.post("/api/tasks", json=definition)
    trace = "5bf92f3577b34da6a3ce929d0e0e4736"
    traced = stack.client.http.post("/api/tasks", json=definition,
                                    headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    assert plain.status_code == traced.status_code == 202, (plain.text, traced.text)
    assert "traceresponse" not in plain.headers and "x-request-id" in plain.headers
    assert traced.headers["traceresponse"].split("-")[1] == trace
    plain_id, traced_id = plain.json()["task_id"], traced.json()["task_id"]
    for task_id in (plain_id, traced_id):
        assert [f.event for f in stack.client.follow(task_id, timeout=60)][-1] == "TaskCompleted"
    partitions = stack.topics.partitions
    keys = (plain_id.encode(), traced_id.encode())
    records = [r for topic in (stack.topics.task_commands, stack.topics.task_events)
               for r in events_of(stack.bootstrap, topic, partitions) if r.key in keys]
    plain_records = [r for r in records if r.key == plain_id.encode()]
    traced_records = [r for r in records if r.key == traced_id.encode()]
    assert len(plain_records) >= 6 and all(r.header("ce_traceparent") is None for r in plain_records)
    assert any(type(r.event).__name__ == "TaskCompleted" for r in traced_records)
    untraced = [type(r.event).__name__ for r in traced_records
                if (r.header("ce_traceparent") or "").split("-")[1:2] != [trace]]
    assert not untraced, untraced
