"""Input that cannot hurt the API, through the real stack: the cases of issue 11, then the whole API fuzzed
from its own OpenAPI document with tokens of each role, and the fabric still completing a task afterwards."""
from __future__ import annotations

import contextlib
import os
import time

import httpx
import pytest

from hive_streams.processes import wait_until

from . import fuzzing
from .stack import Stack

pytestmark = pytest.mark.stack
ROLES = ("admin", "developer", "viewer")
ECHO = {"name": "echo", "nodes": [{"id": "say", "kind": "echo", "value": "hi"}]}
CATCHUP_MAX = 30  # events a resumed feed may be behind here (100,000 by default)
FEEDS = 20
# generated cases per operation, each sent as every role: ~5,700 requests here, more with `make fuzz`
FUZZ_POSITIVE = int(os.environ.get("HIVE_FUZZ_CASES", "45"))
FUZZ_NEGATIVE = FUZZ_POSITIVE // 5
FUZZ_THREADS = 24  # most of a request's time is the API waiting for a task it does not know yet to appear


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("hostile-input"),
              HIVE_FEED_CATCHUP_MAX=str(CATCHUP_MAX), HIVE_FEEDS_PER_PRINCIPAL=str(FEEDS))
    s.start({"echo-a": ("echo", 4)})
    s.wait_for_agents(1)
    yield s
    s.stop()


def submit(stack: Stack, content: bytes, content_type: str = "application/json", role: str = "developer"):
    return httpx.post(f"{stack.base_url}/api/tasks", content=content, timeout=30,
                      headers={**stack.auth(role), "Content-Type": content_type})


def refused(response, status: int, field: str) -> None:
    assert (response.status_code, response.json()["field"]) == (status, field), response.text


def completes(stack: Stack, timeout: float = 120) -> None:
    response = stack.client.submit(ECHO)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    wait_until(lambda: (stack.client.task(task_id) or {}).get("status") == "completed", timeout, interval=0.5,
               what=f"task {task_id} to complete")


def test_twenty_thousand_nested_brackets_are_refused(stack):
    deep = b"[" * 20_000 + b"]" * 20_000
    refused(submit(stack, deep), 400, "$")
    refused(submit(stack, deep, "application/yaml"), 400, "$")
    just_over = submit(stack, b'{"name": "x", "nodes": ' + b"[" * 64 + b"]" * 64 + b"}")
    assert just_over.status_code == 400 and just_over.json()["field"].startswith("nodes[0]"), just_over.text


def test_a_priority_of_two_to_the_63_is_refused(stack):
    body = b'{"name": "big", "priority": 9223372036854775808, "nodes": [{"id": "a", "kind": "echo"}]}'
    refused(submit(stack, body), 422, "priority")


def test_a_deadline_of_infinity_is_refused(stack):
    body = b'{"name": "late", "deadline_seconds": Infinity, "nodes": [{"id": "a", "kind": "echo"}]}'
    refused(submit(stack, body), 422, "deadline_seconds")
    refused(submit(stack, b"name: late\ndeadline_seconds: .inf\nnodes: [{id: a, kind: echo}]\n", "application/yaml"),
            422, "deadline_seconds")


def test_a_budget_of_nan_is_refused_alone_and_in_a_batch(stack):
    body = b'{"name": "free", "budget": NaN, "nodes": [{"id": "a", "kind": "echo"}]}'
    refused(submit(stack, body), 422, "budget")
    batch = submit(stack, b'[{"name": "ok", "nodes": [{"id": "a", "kind": "echo"}]}, ' + body + b"]")
    refused(batch, 422, "$[1].budget")


def test_a_yaml_billion_laughs_is_refused_before_it_expands(stack):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    started = time.monotonic()
    refused(submit(stack, "\n".join(lines).encode(), "application/yaml"), 400, "$")
    assert time.monotonic() - started < 10  # answered, not expanded: 9^9 values would take far longer


def test_a_limit_of_superscript_two_is_refused(stack):
    response = httpx.get(f"{stack.base_url}/api/views/tasks?limit=%C2%B2", headers=stack.auth("viewer"), timeout=30)
    refused(response, 422, "limit")
    assert httpx.get(f"{stack.base_url}/api/views/tasks?limit=5", headers=stack.auth("viewer"), timeout=30).status_code == 200


def test_a_last_event_id_of_all_zeros_answers_410_with_the_export_tools(stack):
    """The log here has more than CATCHUP_MAX events once these tasks are in it; a position from now is served."""
    batch = [{**ECHO, "name": f"fill-{i}"} for i in range(CATCHUP_MAX)]
    assert stack.client.http.post("/api/tasks", json=batch).status_code == 202
    zeros = "t=" + ",".join(["0"] * 4) + ";a=" + ",".join(["0"] * 4)
    headers = {**stack.auth("viewer"), "Last-Event-ID": zeros}

    def gone():
        with httpx.stream("GET", f"{stack.base_url}/api/events", headers=headers, timeout=30) as response:
            if response.status_code == 200:
                return None
            response.read()
            return response
    response = wait_until(gone, 60, interval=0.5, what="the log to hold more than the catch-up limit")
    assert response.status_code == 410 and "hive-streams export" in response.json()["error"], response.text

    def served():  # a position from the read model, once it has caught up with the log
        now = stack.client.http.get("/api/views/snapshot").json()["position"]
        with httpx.stream("GET", f"{stack.base_url}/api/events", timeout=30,
                          headers={**stack.auth("viewer"), "Last-Event-ID": now}) as response:
            return response.status_code == 200
    wait_until(served, 60, interval=0.5, what="a recent position to be served")


def test_the_21st_concurrent_feed_of_a_principal_answers_429(stack):
    url, headers = f"{stack.base_url}/api/events", stack.auth("viewer", "watcher")
    with httpx.Client(timeout=30) as client, contextlib.ExitStack() as open_feeds:
        feeds = [open_feeds.enter_context(client.stream("GET", url, headers=headers)) for _ in range(FEEDS)]
        assert [f.status_code for f in feeds] == [200] * FEEDS
        extra = client.get(url, headers=headers)
        assert extra.status_code == 429 and extra.headers["retry-after"], extra.text
        other = client.get(f"{stack.base_url}/api/views/agents", headers=headers)
        assert other.status_code == 200  # the limit is on feeds, not on the principal's other requests
        with client.stream("GET", url, headers=stack.auth("viewer", "someone-else")) as elsewhere:
            assert elsewhere.status_code == 200  # another principal has feeds of its own
        feeds[0].close()

        def freed():
            with client.stream("GET", url, headers=headers) as again:
                return again.status_code == 200
        wait_until(freed, 30, interval=0.5, what="a closed feed to give its slot back")


def test_text_that_postgresql_cannot_hold_is_refused_in_paths_queries_and_bodies(stack):
    """Found by the fuzzing below: a NUL in a tenant, a task id or a task's name was a 500 from the store."""
    get = lambda path: httpx.get(f"{stack.base_url}{path}", headers=stack.auth("developer"), timeout=30)
    refused(get("/api/status/cluster?tenant=%00"), 422, "tenant")
    refused(get("/api/tasks/a%00b"), 422, "task_id")
    refused(get("/api/tasks/a%00b/payments"), 422, "task_id")
    refused(submit(stack, b'{"name": "a\\u0000b", "nodes": [{"id": "a", "kind": "echo"}]}'), 422, "name")
    refused(submit(stack, b'{"name": "\\ud800", "nodes": [{"id": "a", "kind": "echo"}]}'), 422, "name")


def test_the_fabric_still_completes_a_task_after_the_hostile_cases(stack):
    completes(stack)
    stack.fabric.check_alive()


@pytest.mark.timeout(900)
def test_fuzzing_the_whole_api_from_its_openapi_document_finds_no_5xx(stack):
    document = httpx.get(f"{stack.base_url}/openapi.json", timeout=30).json()
    assert stack.client_as("developer").submit({**ECHO, "id": "fuzz-known"}).status_code == 202
    known = {"task_id": "fuzz-known", "agent_id": "echo-a", "account_id": stack.account("developer"),
             "path": "index.html"}
    sender = fuzzing.Sender(stack.base_url, fuzzing.streams(document))
    tokens = [stack.token(role) for role in ROLES]
    started = time.monotonic()
    outcome = fuzzing.fuzz(fuzzing.load(stack.base_url), sender, tokens, known, FUZZ_POSITIVE, FUZZ_NEGATIVE,
                           FUZZ_THREADS)
    took = time.monotonic() - started
    print(f"fuzzing: {outcome.sent} requests in {took:.0f} s; statuses {sorted(outcome.statuses.items())}; "
          f"{len(outcome.unsent)} the client would not send")
    assert not outcome.server_errors, "\n".join(outcome.server_errors[:10])
    assert not outcome.dropped, "\n".join(outcome.dropped[:10])
    assert outcome.sent >= 5000
    assert len(outcome.unsent) < outcome.sent // 100, [u[:300] for u in outcome.unsent[:10]]
    api_log = next(p for p in stack.fabric.processes if p.name == "api").log_path.read_text(errors="replace")
    assert "Exception in ASGI application" not in api_log
    stack.fabric.check_alive()
    completes(stack)
