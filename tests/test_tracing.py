"""One trace from POST /api/tasks to TaskCompleted, across the API, the worker and the executor.

The stack exports its spans to an OTLP/HTTP receiver the test runs, and logs JSON lines. The trace
is followed twice: on the raw records (every command and event of the task carries it in
`ce_traceparent`) and on the exported spans (from TaskCompleted's span, parent by parent, back to
the client's span, through every process).
"""
from __future__ import annotations

import json
import secrets
import uuid

import pytest

from hive_streams import tracing
from hive_streams.domain import events as e
from hive_streams.processes import wait_until

from .eventlog import events_of
from .otlp import Receiver
from .stack import Stack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def traced(kafka_bootstrap, pg_url, tmp_path_factory):
    with Receiver() as receiver:
        stack = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("tracing"),
                      HIVE_OTLP_ENDPOINT=receiver.endpoint, HIVE_LOG_FORMAT="json")
        stack.start({"trace-a": ("echo", 2)})
        try:
            stack.wait_for_agents(1)
            yield stack, receiver
        finally:
            stack.stop()


def submit(stack: Stack, headers: dict) -> tuple[str, str]:
    """(task id, the traceparent the API answered with)."""
    name = f"traced-{uuid.uuid4().hex[:8]}"
    response = stack.client.http.post("/api/tasks", headers=headers,
                                      json={"id": name, "name": name, "nodes": [{"id": "say", "kind": "echo", "value": 1}]})
    assert response.status_code == 202, response.text
    return response.json()["task_id"], response.headers["traceresponse"]


def records_of(stack: Stack, task_id: str, topic: str) -> list:
    return [r for r in events_of(stack.bootstrap, topic, stack.topics.partitions)
            if getattr(r.event, "task_id", None) == task_id]


def completed(stack: Stack, task_id: str):
    return next((r for r in records_of(stack, task_id, stack.topics.task_events)
                 if isinstance(r.event, e.TaskCompleted)), None)


def trace_of(record) -> str:
    return tracing.parse(record.header("ce_traceparent")).trace_id.to_bytes(16, "big").hex()


def json_lines(stack: Stack, name: str) -> list[dict]:
    process = next(p for p in stack.fabric.processes if p.name == name)
    return [json.loads(line) for line in process.log_path.read_text().splitlines() if line.startswith("{")]


def test_one_trace_runs_from_the_request_to_task_completed(traced):
    stack, receiver = traced
    trace, client_span = secrets.token_hex(16), secrets.token_hex(8)
    task_id, answered = submit(stack, {"traceparent": f"00-{trace}-{client_span}-01", "X-Request-Id": "trace-req-1"})
    assert tracing.parse(answered).trace_id == int(trace, 16)
    done = wait_until(lambda: completed(stack, task_id), 60, interval=0.5, what="TaskCompleted")

    # the raw records: every command and event of the task, from the API, the matcher, both deciders and the executor
    commands = records_of(stack, task_id, stack.topics.task_commands)
    events = records_of(stack, task_id, stack.topics.task_events)
    slots = records_of(stack, task_id, stack.topics.agent_commands)
    sources = {r.header("ce_source") for r in commands + events + slots}
    assert {"/hive-streams/api", "/hive-streams/executor/trace-a"} <= sources and len(sources) >= 4, sources
    assert {type(r.event).__name__ for r in commands} >= {"SubmitTask", "AssignTask", "ReportTaskResult"}
    assert all(trace_of(r) == trace for r in commands + events + slots)
    assert all(r.header("ce_correlationid") == "trace-req-1" for r in commands + events)

    # the spans: TaskCompleted's, parent by parent, back to the client's, each hop a child of the one before
    def chain():
        spans = {s.span_id: s for s in receiver.of_trace(trace)}
        span_id, hops = f"{tracing.parse(done.header('ce_traceparent')).span_id:016x}", []
        while span_id in spans:
            hops.append(spans[span_id])
            span_id = spans[span_id].parent_span_id
        return hops if span_id == client_span else None
    hops = wait_until(chain, 30, interval=0.5, what="the exported spans from TaskCompleted back to the request")
    assert [s.service for s in hops][-1] == "hive-api" and hops[-1].name == "POST /api/tasks"
    assert {"hive-api", "hive-worker", "hive-executor"} == {s.service for s in hops}
    assert [s.name for s in hops] == ["decide hive.v1.ReportTaskResult", "execute task", "decide hive.v1.AssignTask",
                                      "decide hive.v1.ReserveSlot", "match ReserveSlot", "decide hive.v1.SubmitTask",
                                      "POST /api/tasks"]
    assert all(s.attributes.get("hive.correlation_id") == "trace-req-1" for s in hops)

    # JSON log lines of the API and the executor name the trace and the correlation id
    for name in ("api", "trace-a"):
        assert any(line.get("trace_id") == trace and line.get("correlation_id") == "trace-req-1"
                   for line in json_lines(stack, name)), name


def test_a_request_without_a_traceparent_starts_a_trace(traced):
    stack, _ = traced
    task_id, answered = submit(stack, {})
    done = wait_until(lambda: completed(stack, task_id), 60, interval=0.5, what="TaskCompleted")
    started = tracing.parse(answered).trace_id.to_bytes(16, "big").hex()
    assert trace_of(done) == started
    assert all(trace_of(r) == started for r in records_of(stack, task_id, stack.topics.task_events))
