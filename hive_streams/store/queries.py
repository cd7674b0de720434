"""Read functions for the API: each returns JSON-ready dicts."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..codec.registry import NAMESPACE
from ..domain.events import TASK_EVENTS
from .models import AgentRow, AuditRow, TaskRow

TASK_EVENT_TYPES = tuple(f"{NAMESPACE}.{cls.__name__}" for cls in TASK_EVENTS)
SUMMARY = ("task_id", "status", "name", "requester", "priority", "agent_id", "attempt", "seq", "reason",
           "submitted_at", "updated_at")


def _summary(row: TaskRow) -> dict:
    return {name: getattr(row, name) for name in SUMMARY}


def get_task(session: Session, task_id: str) -> dict | None:
    row = session.get(TaskRow, task_id)
    if row is None:
        return None
    state = row.state
    status = state.get("node_status", {})
    nodes = [{"id": n["id"], "kind": n["kind"], "depends_on": list(n["depends_on"]),
              "status": status.get(n["id"], "pending")} for n in state.get("nodes", [])]
    return {**_summary(row), "deadline_at": state.get("deadline_at"), "budget": state.get("budget"),
            "nodes": nodes, "outputs": dict(state.get("outputs", {})),
            "first_partition": row.first_partition, "first_offset": row.first_offset}


def list_tasks(session: Session, limit: int = 100, status: str | None = None) -> list[dict]:
    query = select(TaskRow).order_by(TaskRow.updated_at.desc(), TaskRow.task_id).limit(limit)
    if status is not None:
        query = query.where(TaskRow.status == status)
    return [_summary(row) for row in session.scalars(query)]


def list_agents(session: Session) -> list[dict]:
    rows = session.scalars(select(AgentRow).order_by(AgentRow.agent_id))
    return [{"agent_id": r.agent_id, "name": r.name, "status": r.status, "capabilities": r.capabilities,
             "slots": r.slots, "holding": r.holding, "last_seen": r.last_seen, "seq": r.seq} for r in rows]


def task_audit(session: Session, task_id: str) -> list[dict]:
    query = (select(AuditRow)
             .where(AuditRow.aggregate_id == task_id, AuditRow.event_type.in_(TASK_EVENT_TYPES))
             .order_by(AuditRow.seq, AuditRow.id))
    return [{"event_id": r.event_id, "seq": r.seq, "event_type": r.event_type, "topic": r.topic,
             "partition": r.partition, "offset": r.offset, "occurred_at": r.occurred_at,
             "recorded_at": r.recorded_at, "payload": r.payload, "headers": r.headers}
            for r in session.scalars(query)]
