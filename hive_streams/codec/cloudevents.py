"""CloudEvents 1.0 Kafka binary-mode headers for our records."""
from __future__ import annotations

from datetime import datetime, timezone

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


def aggregate_id(obj) -> str:
    if isinstance(obj, TASK_FAMILY):
        return obj.task_id
    if isinstance(obj, AGENT_FAMILY):
        return obj.agent_id
    if isinstance(obj, LEDGER_FAMILY):
        return obj.ledger_id
    if isinstance(obj, AlertEvent):
        return obj.alert_id
    if isinstance(obj, EXECUTION_FAMILY):
        return obj.execution_id
    if isinstance(obj, SCHEDULE_FAMILY):
        return obj.schedule_id
    if isinstance(obj, TRIGGER_FAMILY):
        return obj.trigger_id
    if isinstance(obj, CALLBACK_FAMILY):
        return obj.delivery_id
    raise TypeError(f"{type(obj).__name__} belongs to no aggregate")


def headers(obj, type_name: str, source: str, correlation_id: str | None = None,
            causation_id: str | None = None, traceparent: str | None = None) -> list[tuple[str, bytes]]:
    at = datetime.fromtimestamp(obj.at / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
    out = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id(obj).encode()),
        ("ce_type", type_name.encode()),
        ("ce_source", source.encode()),
        ("ce_time", at.replace("+00:00", "Z").encode()),
        ("ce_subject", aggregate_id(obj).encode()),
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
