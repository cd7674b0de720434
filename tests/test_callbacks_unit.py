"""Callbacks without a broker: which changes call back, the signature, attempts, backoff and giving up."""
import hashlib
import hmac
import json
from functools import reduce

from hive_streams.domain import callback as cb
from hive_streams.domain import events as e
from hive_streams.domain.task import TaskState
from hive_streams.streams.callbacks import parse_secrets, signature, task_callbacks

URL = "https://example.com/hook"


def requested(delivery="acme:t/2"):
    state = cb.CallbackState(delivery)
    command = cb.RequestCallback(delivery, "c", 10, URL, "TaskCompleted", '{"a":1}', "acme")
    return reduce(cb.evolve, cb.decide(command, state, 0), state)


def attempt(state, n, status=500, at=100, retry=True):
    events = cb.decide(cb.RecordCallbackAttempt(state.delivery_id, f"a{n}", at, n, status, "", retry), state, 0,
                       base_ms=100, cap_ms=1_000)
    return reduce(cb.evolve, events, state), events


def test_a_status_change_of_a_task_with_a_callback_url_calls_back_once_per_event():
    before = TaskState("acme:t", seq=1, status="queued", callback_url=URL)
    after = TaskState("acme:t", seq=2, status="assigned", callback_url=URL)
    [request] = task_callbacks(e.TaskAssigned("acme:t", 2, 50, "ag", 1, ()), before, after)
    assert request.delivery_id == "acme:t/2" and request.tenant == "acme" and request.url == URL
    body = json.loads(request.body_json)
    assert body == {"delivery_id": "acme:t/2", "event": "TaskAssigned", "task_id": "acme:t", "status": "assigned",
                    "previous_status": "queued", "at": 50, "reason": ""}
    progress = e.NodeProgress("acme:t", 3, 60, "a", 0.5)
    assert task_callbacks(progress, after, after) == []  # no status change
    assert task_callbacks(e.TaskAssigned("acme:t", 2, 50, "ag", 1, ()), TaskState("acme:t"), TaskState("acme:t")) == []


def test_signature_is_an_hmac_of_the_exact_body():
    body = b'{"delivery_id":"x"}'
    assert signature("s3cret", body) == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature("wrong", body) != signature("s3cret", body)
    assert parse_secrets("acme=a1, globex=g2,") == {"acme": "a1", "globex": "g2"}


def test_a_delivered_attempt_ends_the_delivery():
    state, events = attempt(requested(), 1, status=204)
    assert [type(ev).__name__ for ev in events] == ["CallbackAttempted", "CallbackDelivered"]
    assert state.status == "delivered"
    assert attempt(state, 2, status=200)[1] == []


def test_failures_back_off_exponentially_up_to_the_cap():
    state, waits = requested(), []
    for n in range(1, 6):
        state, events = attempt(state, n, at=1_000 * n)
        waits.append(events[0].next_at - 1_000 * n)
    assert waits == [100, 200, 400, 800, 1_000] and state.pending


def test_ten_failed_attempts_abandon_the_delivery_each_recorded():
    state, recorded = requested(), []
    for n in range(1, cb.MAX_ATTEMPTS + 1):
        state, events = attempt(state, n, status=401)
        recorded += events
    assert sum(isinstance(ev, cb.CallbackAttempted) for ev in recorded) == cb.MAX_ATTEMPTS
    assert isinstance(recorded[-1], cb.CallbackAbandoned) and recorded[-1].reason == "HTTP 401"
    assert state.status == "abandoned" and attempt(state, 11)[1] == []


def test_a_repeated_or_out_of_turn_report_records_nothing():
    state, _ = attempt(requested(), 1)
    assert attempt(state, 1)[1] == [] and attempt(state, 3)[1] == []


def test_a_denied_url_is_abandoned_at_once():
    state, events = attempt(requested(), 1, status=0, retry=False)
    assert state.status == "abandoned" and isinstance(events[-1], cb.CallbackAbandoned)
