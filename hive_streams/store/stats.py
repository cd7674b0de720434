"""The task events of a time range, read back from the audit log for the performance view."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..codec.avro import from_record
from ..codec.registry import NAMESPACE
from ..domain import events as e
from .models import AuditRow

COUNTED = (e.TaskSubmitted, e.TaskValidated, e.TaskAssigned, e.TaskAssignmentDeclined, e.TaskRetryScheduled,
           e.TaskCompleted, e.TaskFailed, e.TaskCancelled)
BY_TYPE = {f"{NAMESPACE}.{cls.__name__}": cls for cls in COUNTED}


def task_events_since(session: Session, topic: str, since: int, tenant: str | None = None) -> list:
    """The counted task events on `topic` that happened at or after `since`, in log order (duplicates left out)."""
    query = (select(AuditRow.event_type, AuditRow.payload)
             .where(AuditRow.topic == topic, AuditRow.occurred_at >= since, AuditRow.duplicate.is_(False),
                    AuditRow.event_type.in_(list(BY_TYPE)))
             .order_by(AuditRow.partition, AuditRow.offset))
    if tenant is not None:
        query = query.where(AuditRow.aggregate_id.startswith(f"{tenant}:", autoescape=True))
    return [from_record(BY_TYPE[kind], payload) for kind, payload in session.execute(query) if payload is not None]
