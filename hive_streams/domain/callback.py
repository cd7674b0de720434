"""The callback delivery aggregate: one status change POSTed to a callback URL, with its attempts. Pure.

A delivery's id is the id of the event it reports (`<aggregate id>/<seq>`): the receiver dedupes on it
(`X-Hive-Delivery`). The worker that owns the delivery's partition makes each attempt and reports it;
the aggregate records every attempt, schedules the next one with exponential backoff, and gives up
after MAX_ATTEMPTS (or at once when the egress policy denies the URL) with CallbackAbandoned.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import singledispatch

from .evolving import Handlers, copy_with, quick_init

MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class CallbackCommand:
    delivery_id: str
    command_id: str
    at: int


@dataclass(frozen=True)
class RequestCallback(CallbackCommand):
    url: str
    event_type: str
    body_json: str  # the exact body POSTed and signed
    tenant: str = ""


@dataclass(frozen=True)
class RecordCallbackAttempt(CallbackCommand):
    attempt: int
    status: int = 0  # the receiver's HTTP status, 0 when there was no answer
    error: str = ""
    retry: bool = True  # False: trying again cannot help (the egress policy denies the URL)


@dataclass(frozen=True)
class CallbackEvent:
    delivery_id: str
    seq: int
    at: int


@dataclass(frozen=True)
class CallbackRequested(CallbackEvent):
    url: str
    event_type: str
    body_json: str
    tenant: str = ""


@dataclass(frozen=True)
class CallbackAttempted(CallbackEvent):
    attempt: int
    status: int = 0
    error: str = ""
    next_at: int = 0  # when the next attempt is due; 0 when there is none


@dataclass(frozen=True)
class CallbackDelivered(CallbackEvent):
    attempts: int


@dataclass(frozen=True)
class CallbackAbandoned(CallbackEvent):
    attempts: int
    reason: str


CALLBACK_COMMANDS = (RequestCallback, RecordCallbackAttempt)
CALLBACK_EVENTS = (CallbackRequested, CallbackAttempted, CallbackDelivered, CallbackAbandoned)


@quick_init
@dataclass(frozen=True)
class CallbackState:
    delivery_id: str
    seq: int = 0
    status: str = "new"  # pending, delivered, abandoned
    url: str = ""
    event_type: str = ""
    body_json: str = ""
    tenant: str = ""
    attempts: int = 0
    next_at: int = 0
    last_error: str = ""

    @property
    def pending(self) -> bool:
        return self.status == "pending"


def backoff_ms(attempt: int, base_ms: int, cap_ms: int) -> int:
    """Wait after the `attempt`-th failure: base, 2x base, 4x base... at most cap."""
    return min(cap_ms, base_ms * 2 ** (attempt - 1))


def delivery_body(delivery_id: str, event, kind: str, aggregate_id: str, status: str, previous: str,
                  **extra) -> str:
    """The JSON a receiver gets: what changed, to what, when. Canonical, so every attempt sends the same bytes."""
    body = {"delivery_id": delivery_id, "event": type(event).__name__, kind: aggregate_id, "status": status,
            "previous_status": previous, "at": event.at, **extra}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


# decide ---------------------------------------------------------------------------------

def decide(command: CallbackCommand, state: CallbackState, now: int, base_ms: int = 1000,
           cap_ms: int = 600_000) -> list[CallbackEvent]:
    drafts = _decide(command, state, base_ms, cap_ms)
    return [replace(ev, seq=state.seq + i + 1) for i, ev in enumerate(drafts)]


def _base(state: CallbackState, cmd: CallbackCommand) -> dict:
    return {"delivery_id": state.delivery_id, "seq": 0, "at": cmd.at}


@singledispatch
def _decide(command, state: CallbackState, base_ms: int, cap_ms: int) -> list[CallbackEvent]:
    raise TypeError(f"unknown callback command {type(command).__name__}")


@_decide.register
def _(cmd: RequestCallback, state: CallbackState, base_ms: int, cap_ms: int):
    if state.status != "new":
        return []
    return [CallbackRequested(**_base(state, cmd), url=cmd.url, event_type=cmd.event_type, body_json=cmd.body_json,
                              tenant=cmd.tenant)]


@_decide.register
def _(cmd: RecordCallbackAttempt, state: CallbackState, base_ms: int, cap_ms: int):
    if not state.pending or cmd.attempt != state.attempts + 1:
        return []  # a report of an attempt already recorded, or of one never due
    ok = 200 <= cmd.status < 300
    last = not ok and (cmd.attempt >= MAX_ATTEMPTS or not cmd.retry)
    next_at = 0 if ok or last else cmd.at + backoff_ms(cmd.attempt, base_ms, cap_ms)
    attempted = CallbackAttempted(**_base(state, cmd), attempt=cmd.attempt, status=cmd.status, error=cmd.error,
                                  next_at=next_at)
    if ok:
        return [attempted, CallbackDelivered(**_base(state, cmd), attempts=cmd.attempt)]
    if last:
        reason = cmd.error or f"HTTP {cmd.status}"
        return [attempted, CallbackAbandoned(**_base(state, cmd), attempts=cmd.attempt, reason=reason)]
    return [attempted]


# evolve ---------------------------------------------------------------------------------

def evolve(state: CallbackState, event: CallbackEvent) -> CallbackState:
    if event.seq <= state.seq:
        return state
    return copy_with(state, _on(event, state), seq=event.seq)


_on = Handlers("callback")


@_on.on(CallbackRequested)
def _(ev: CallbackRequested, state: CallbackState):
    return {"status": "pending", "url": ev.url, "event_type": ev.event_type, "body_json": ev.body_json,
            "tenant": ev.tenant, "next_at": ev.at}


@_on.on(CallbackAttempted)
def _(ev: CallbackAttempted, state: CallbackState):
    return {"attempts": ev.attempt, "next_at": ev.next_at, "last_error": ev.error or (f"HTTP {ev.status}"
                                                                                      if ev.status >= 300 else "")}


@_on.on(CallbackDelivered)
def _(ev: CallbackDelivered, state: CallbackState):
    return {"status": "delivered"}


@_on.on(CallbackAbandoned)
def _(ev: CallbackAbandoned, state: CallbackState):
    return {"status": "abandoned", "last_error": ev.reason}
