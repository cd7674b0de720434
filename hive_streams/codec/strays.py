"""Records on an events topic that are not events of it: garbage, keyless, oversized, another family's.

Only the deciders write event topics, but anyone with the broker's admin rights can write anything.
Such strays carry no valid aggregate and seq, so they are left out of every fold (no history gets a
gap); the audit connector dead-letters each one with its reason, and audits its bytes like any record.
"""
from __future__ import annotations

from .cloudevents import aggregate_id
from ..domain.callback import CallbackEvent
from ..domain.events import AgentEvent, AlertEvent, LedgerEvent, TaskEvent
from ..domain.execution_records import ExecutionEvent
from ..domain.schedule import ScheduleEvent
from ..domain.trigger import TriggerEvent
from ..exceptions import CodecError
from ..topics import Topics


# family -> the event type of its `<prefix>.<family>.events` topic
EVENT_TYPES = {"task": TaskEvent, "agent": AgentEvent, "ledger": LedgerEvent, "execution": ExecutionEvent,
               "schedule": ScheduleEvent, "trigger": TriggerEvent, "callback": CallbackEvent}


def families(topics: Topics) -> dict[str, type]:
    """events topic -> the event type its records must have, for every one of `topics.event_topics`."""
    return {**{f"{topics.prefix}.{family}.events": kind for family, kind in EVENT_TYPES.items()},
            topics.alerts: AlertEvent}


def event_types(topics: Topics) -> tuple[type, ...]:
    return tuple(families(topics).values())


def oversized(value: bytes | None, limit: int) -> str:
    size = len(value or b"")
    return f"oversized: {size} bytes, over the limit of {limit}" if size > limit else ""


def stray_reason(codec, family: type, key: bytes | None, value: bytes | None, limit: int,
                 event: object = None) -> str:
    """Why a record of an events topic is not an event of `family`, or "" when it is one.
    `event` is the record's decoded event when the caller has it already."""
    too_big = oversized(value, limit)
    if too_big:
        return too_big
    if event is None:
        try:
            if value is None:
                raise CodecError("no value (a tombstone)")
            event = codec.decode(value)
        except CodecError as exc:
            return f"undecodable: {exc}"
    if not isinstance(event, family):
        return f"not an event of this topic: {type(event).__name__}"
    if not key:
        return "keyless: an event's key is its aggregate id"
    try:
        expected = aggregate_id(event).encode()
    except (TypeError, AttributeError, UnicodeError) as exc:
        return f"no aggregate id: {exc!r}"
    if key != expected:
        return f"key {key[:80]!r} is not the aggregate id {expected[:80]!r}"
    return ""
