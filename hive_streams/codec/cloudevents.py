"""CloudEvents 1.0 Kafka binary-mode headers for our records."""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

from ..domain.agent import AgentState
from ..domain.callback import CallbackCommand, CallbackEvent, CallbackState
from ..domain.commands import AgentCommand, LedgerCommand, TaskCommand
from ..domain.events import AgentEvent, AlertEvent, LedgerEvent, TaskEvent
from ..domain.execution_records import ExecutionCommand, ExecutionEvent, ExecutionState
from ..domain.ledger import LedgerState
from ..domain.schedule import ScheduleCommand, ScheduleEvent, ScheduleState
from ..domain.task import TaskState
from ..domain.trigger import TriggerCommand, TriggerEvent, TriggerState

CONTENT_TYPE = b"application/avro"
TASK_FAMILY = (TaskEvent, TaskCommand, TaskState)
AGENT_FAMILY = (AgentEvent, AgentCommand, AgentState)
LEDGER_FAMILY = (LedgerEvent, LedgerCommand, LedgerState)
EXECUTION_FAMILY = (ExecutionEvent, ExecutionCommand, ExecutionState)
SCHEDULE_FAMILY = (ScheduleEvent, ScheduleCommand, ScheduleState)
TRIGGER_FAMILY = (TriggerEvent, TriggerCommand, TriggerState)
CALLBACK_FAMILY = (CallbackEvent, CallbackCommand, CallbackState)


def event_id(obj) -> str:
    if hasattr(obj, "seq"):
        return f"{aggregate_id(obj)}/{obj.seq}"
    return obj.command_id


ID_FIELDS = ((TASK_FAMILY, "task_id"), (AGENT_FAMILY, "agent_id"), (LEDGER_FAMILY, "ledger_id"), (AlertEvent, "alert_id"),
             (EXECUTION_FAMILY, "execution_id"), (SCHEDULE_FAMILY, "schedule_id"), (TRIGGER_FAMILY, "trigger_id"),
             (CALLBACK_FAMILY, "delivery_id"))
_id_field_of: dict[type, str] = {}  # each type's id field, found once


def aggregate_id(obj) -> str:
    kind = type(obj)
    field = _id_field_of.get(kind)
    if field is None:
        field = next((name for family, name in ID_FIELDS if issubclass(kind, family)), None)
        if field is None:
            raise TypeError(f"{kind.__name__} belongs to no aggregate")
        _id_field_of[kind] = field
    return getattr(obj, field)


@lru_cache(maxsize=1024)
def _ce_time(at_ms: int) -> bytes:
    """RFC 3339 in UTC to the millisecond; a batch's events share their time, so each is formatted once."""
    at = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
    return at.replace("+00:00", "Z").encode()


def headers(obj, type_name: str, source: str, correlation_id: str | None = None,
            causation_id: str | None = None, traceparent: str | None = None) -> list[tuple[str, bytes]]:
    subject = aggregate_id(obj)
    out = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id(obj).encode()),
        ("ce_type", type_name.encode()),
        ("ce_source", source.encode()),
        ("ce_time", _ce_time(obj.at)),
        ("ce_subject", subject.encode()),
        ("content-type", CONTENT_TYPE),
    ]
    if correlation_id:
        out.append(("ce_correlationid", correlation_id.encode()))
    if causation_id:
        out.append(("ce_causationid", causation_id.encode()))
    if traceparent:  # the distributed-tracing extension: the span that wrote the record
        out.append(("ce_traceparent", traceparent.encode()))
    return out


def header(headers_seq, name: str) -> str | None:
    for key, value in headers_seq or ():
        if key == name:
            return value.decode() if isinstance(value, (bytes, bytearray)) else value
    return None
