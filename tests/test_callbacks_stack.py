"""Signed callbacks on the real stack: a receiver verifies every signature, sees every status change of a task
(and a schedule) at least once and applies each delivery once; a callback signed with another secret is
rejected by the receiver, retried ten times and abandoned."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from functools import reduce
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hive_streams.domain import callback as cb
from hive_streams.domain import task as task_domain
from hive_streams.processes import wait_until

from .eventlog import events_of
from .stack import Stack, free_port

pytestmark = pytest.mark.stack
SECRET = "receiver-shared-secret"
TASK = {"name": "hooked", "nodes": [{"id": "a", "kind": "echo", "value": "hi"}]}


class Receiver:
    """Checks each signature with its secret; applies a delivery's effect once, and answers the first receipt of
    every delivery with 500 after applying it (a lost acknowledgement), so every delivery is sent again."""

    def __init__(self, secret: str):
        self.secret = secret
        self.lock = threading.Lock()
        self.receipts: list[tuple[str, str, bool]] = []  # delivery id, event, signature valid
        self.effects: dict[str, dict] = {}
        self.applied = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.receive(body, self.headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def receive(self, body: bytes, headers) -> int:
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expected, headers.get("X-Hive-Signature", ""))
        delivery, event = headers.get("X-Hive-Delivery", ""), headers.get("X-Hive-Event", "")
        with self.lock:
            first = delivery not in {d for d, _, ok in self.receipts if ok}
            self.receipts.append((delivery, event, valid))
            if not valid:
                return 401
            payload = json.loads(body)
            assert payload["delivery_id"] == delivery and payload["event"] == event
            if delivery not in self.effects:  # the effect: once per delivery id
                self.effects[delivery] = payload
                self.applied[delivery] += 1
            return 500 if first else 200

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def receiver():
    started = Receiver(SECRET)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory, receiver):
    started = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("callbacks"),
                    HIVE_CALLBACK_SECRET=SECRET, HIVE_CALLBACK_SECRETS="wrongco=not-the-receivers-secret",
                    HIVE_EGRESS_ALLOW=f"127.0.0.1:{receiver.port}", HIVE_CALLBACK_BACKOFF_MS="50",
                    HIVE_CALLBACK_BACKOFF_MAX_MS="200").start({"ex-1": ("echo", 2)})
    yield started
    started.stop()


def status_changes(stack: Stack, task_id: str) -> dict[str, str]:
    """delivery id -> event type, for each event of the task that changed its status (folded from the log)."""
    events = [r.event for r in events_of(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
              if getattr(r.event, "task_id", None) == task_id]
    out, state = {}, task_domain.TaskState(task_id)
    for event in sorted(events, key=lambda ev: ev.seq):
        after = task_domain.evolve(state, event)
        if after.status != state.status:
            out[f"{task_id}/{event.seq}"] = type(event).__name__
        state = after
    return out


def callback_log(stack: Stack) -> list:
    return [r.event for r in events_of(stack.bootstrap, stack.topics.callback_events, stack.topics.partitions)
            if r.event is not None]


def test_every_status_change_arrives_signed_and_applies_once(stack, receiver):
    stack.wait_for_agents(1)
    response = stack.client.submit({**TASK, "callback_url": receiver.url("/hooks/tasks")})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    wait_until(lambda: (stack.client.task(task_id) or {}).get("status") == "completed", 90, what="the task")
    changes = status_changes(stack, task_id)
    assert list(changes.values())[-1] == "TaskCompleted" and len(changes) >= 3
    delivered = wait_until(lambda: {ev.delivery_id for ev in callback_log(stack)
                                    if isinstance(ev, cb.CallbackDelivered)} >= set(changes) and callback_log(stack),
                           60, what="every status change delivered")
    attempts = Counter(ev.delivery_id for ev in delivered if isinstance(ev, cb.CallbackAttempted))
    assert all(attempts[d] == 2 for d in changes)  # each attempt an event: the lost one and the good one
    with receiver.lock:
        mine = [r for r in receiver.receipts if r[0].startswith(task_id + "/")]
        assert all(valid for _, _, valid in mine)
        assert {d: ev for d, ev, _ in mine} == changes  # each change, under its own delivery id and event type
        assert all(n >= 2 for n in Counter(d for d, _, _ in mine).values())  # the first answer was lost: resent
        assert all(receiver.applied[d] == 1 for d in changes)
        assert [receiver.effects[d]["status"] for d in changes][-1] == "completed"


def test_a_schedule_calls_back_too(stack, receiver):
    body = {"id": "hooked", "cron": "0 0 1 1 *", "target": {"task": TASK}, "callback_url": receiver.url("/s")}
    assert stack.client.http.post("/api/schedules", json=body).status_code == 202
    wait_until(lambda: stack.client.http.get("/api/schedules/hooked").status_code == 200, 30, what="the schedule")
    assert stack.client.http.delete("/api/schedules/hooked").status_code == 202
    wanted = {"tests:hooked/1": "ScheduleCreated", "tests:hooked/2": "ScheduleDeleted"}
    wait_until(lambda: set(wanted) <= set(receiver.effects), 60, what="the schedule's callbacks")
    assert {d: receiver.effects[d]["event"] for d in wanted} == wanted
    assert receiver.effects["tests:hooked/2"]["status"] == "deleted"


def test_a_callback_signed_with_another_secret_is_rejected_then_abandoned(stack, receiver):
    other = stack.client_as("admin", tenant="wrongco")
    response = other.submit({**TASK, "callback_url": receiver.url("/hooks/wrong")})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    first = f"{task_id}/1"
    abandoned = wait_until(lambda: [ev for ev in callback_log(stack) if isinstance(ev, cb.CallbackAbandoned)
                                    and ev.delivery_id == first], 90, what="the delivery abandoned")
    assert abandoned[0].attempts == cb.MAX_ATTEMPTS and abandoned[0].reason == "HTTP 401"
    attempts = [ev for ev in callback_log(stack) if isinstance(ev, cb.CallbackAttempted) and ev.delivery_id == first]
    assert [ev.attempt for ev in attempts] == list(range(1, cb.MAX_ATTEMPTS + 1))
    assert all(ev.status == 401 for ev in attempts)
    with receiver.lock:
        rejected = [r for r in receiver.receipts if r[0] == first]
        assert len(rejected) >= cb.MAX_ATTEMPTS and not any(valid for _, _, valid in rejected)
        assert first not in receiver.effects
    other.close()


def test_bad_callback_urls_are_refused(stack):
    response = stack.client.submit({**TASK, "callback_url": "ftp://example.com/x"})
    assert response.status_code == 422 and response.json()["field"] == "callback_url"
    body = {"cron": "0 0 1 1 *", "target": {"task": TASK}, "callback_url": "not a url"}
    response = stack.client.http.post("/api/schedules", json=body)
    assert response.status_code == 422 and response.json()["field"] == "callback_url"
