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
    return {**task_view(row.state), "first_partition": row.first_partition, "first_offset": row.first_offset}


def task_view(state: dict) -> dict:
    """What a caller sees of a task, from its whole state (`codec.avro.to_record` of a TaskState)."""
    status = state.get("node_status", {})
    nodes = [{"id": n["id"], "kind": n["kind"], "depends_on": list(n["depends_on"]),
              "status": status.get(n["id"], "pending")} for n in state.get("nodes", [])]
    extra = {k: state.get(k) for k in ("deadline_at", "budget", "waiting_reason", "failures", "max_retries",
                                       "pinned_to", "not_before", "waiting_on", "after", "tried")}
    return {**{name: state.get(name) for name in SUMMARY}, **extra, "nodes": nodes,
            "outputs": dict(state.get("outputs", {}))}


def task_start(session: Session, task_id: str) -> tuple[int, int] | None:
    """(partition, offset) of the task's first event, once the read model has it."""
    row = session.execute(select(TaskRow.first_partition, TaskRow.first_offset)
                          .where(TaskRow.task_id == task_id)).first()
    return None if row is None else (row.first_partition, row.first_offset)


def get_agent(session: Session, agent_id: str) -> dict | None:
    row = session.get(AgentRow, agent_id)
    return None if row is None else agent_view(row.state)


def agent_view(state: dict) -> dict:
    """An agent's offer, status and load; how many slots it holds, not for whose tasks."""
    return {**state, "holding": len(state.get("holding") or ())}


def task_requester(session: Session, task_id: str) -> str | None:
    """Who submitted the task (its account), or None before its first event is recorded."""
    return session.scalar(select(TaskRow.requester).where(TaskRow.task_id == task_id))


def task_digests(session: Session, task_ids: list[str]) -> dict[str, str]:
    """The digest of the definition each task was submitted with, for those whose first event is recorded."""
    rows = session.execute(select(TaskRow.task_id, TaskRow.state).where(TaskRow.task_id.in_(task_ids))) if task_ids else []
    return {task_id: state.get("definition_digest", "") for task_id, state in rows}


def of_tenant(query, tenant: str | None):
    """Only the tasks of `tenant`; None: every tenant's."""
    return query if tenant is None else query.where(TaskRow.tenant == tenant)


def list_tasks(session: Session, limit: int = 100, status: str | None = None, tenant: str | None = None) -> list[dict]:
    query = of_tenant(select(TaskRow).order_by(TaskRow.updated_at.desc(), TaskRow.task_id).limit(limit), tenant)
    if status is not None:
        query = query.where(TaskRow.status == status)
    return [_summary(row) for row in session.scalars(query)]


def list_agents(session: Session) -> list[dict]:
    rows = session.scalars(select(AgentRow).order_by(AgentRow.agent_id))
    return [{"agent_id": r.agent_id, "name": r.name, "status": r.status, "capabilities": r.capabilities,
             "slots": r.slots, "holding": r.holding, "last_seen": r.last_seen, "seq": r.seq} for r in rows]


def task_audit(session: Session, task_id: str) -> list[dict]:
    query = (select(AuditRow)
             .where(AuditRow.aggregate_id == task_id, AuditRow.event_type.in_(TASK_EVENT_TYPES),
                    AuditRow.duplicate.is_(False))
             .order_by(AuditRow.seq, AuditRow.id))
    return [{"event_id": r.event_id, "seq": r.seq, "event_type": r.event_type, "topic": r.topic,
             "partition": r.partition, "offset": r.offset, "occurred_at": r.occurred_at,
             "recorded_at": r.recorded_at, "payload": r.payload, "headers": r.headers, "principal": r.principal,
             "correlation_id": r.correlation_id}
            for r in session.scalars(query)]


# Live views: a snapshot of the read models with the log position it reflects ---------------

from .models import ConsumerOffset  # noqa: E402

AUDIT_CONSUMER = "audit"  # the audit connector's key in consumer_offsets
OPEN_STATUSES = ("submitted", "blocked", "queued", "assigned", "running")
FAILED_STATUSES = ("failed", "rejected", "cancelled")


def log_offsets(session: Session, topics: list[str], consumer: str = AUDIT_CONSUMER) -> dict[tuple[str, int], int]:
    """The next offset per (topic, partition) that the read models have not applied yet."""
    query = select(ConsumerOffset).where(ConsumerOffset.consumer == consumer, ConsumerOffset.topic.in_(topics))
    return {(r.topic, r.partition): r.next_offset for r in session.scalars(query)}


def first_offset(session: Session, task_id: str, topic: str, partition: int) -> int:
    """Where a task's events begin, or a lower bound when the read model has not seen the task yet.

    The offsets are read first: rows and offsets commit together, so a task missing from the
    rows read afterwards has its first event at or after the stored offset.
    """
    stored = log_offsets(session, [topic]).get((topic, partition), 0)
    first = session.scalar(select(TaskRow.first_offset).where(TaskRow.task_id == task_id))
    return first if first is not None else stored


def aggregate_offset(session: Session, aggregate_id: str, topic: str, partition: int) -> int:
    """Where an aggregate's events begin in its partition, from the audit log, or a lower bound when the audit
    log has not reached it yet (offsets read first, as in `first_offset`)."""
    stored = log_offsets(session, [topic]).get((topic, partition), 0)
    first = session.scalar(select(AuditRow.offset).where(AuditRow.aggregate_id == aggregate_id,
                                                         AuditRow.topic == topic, AuditRow.partition == partition)
                           .order_by(AuditRow.offset).limit(1))
    return first if first is not None else stored


def live_snapshot(session: Session, topics: list[str], recent: int = 100, open_limit: int = 2000,
                  tenant: str | None = None) -> dict:
    """Tasks (recent and open) and recent failures of `tenant` (None: every tenant), agents, plus the offsets
    they reflect.

    Rows may be newer than the offsets (read first); a reader applying events from the offsets
    skips those whose seq a row already has.
    """
    offsets = log_offsets(session, topics)
    tasks = {t["task_id"]: t for t in list_tasks(session, recent, tenant=tenant)}
    open_rows = session.scalars(of_tenant(select(TaskRow).where(TaskRow.status.in_(OPEN_STATUSES))
                                          .order_by(TaskRow.submitted_at).limit(open_limit), tenant))
    tasks.update((row.task_id, _summary(row)) for row in open_rows)
    failed = session.scalars(of_tenant(select(TaskRow).where(TaskRow.status.in_(FAILED_STATUSES))
                                       .order_by(TaskRow.updated_at.desc()).limit(20), tenant))
    agents = list_agents(session)
    reputations = {r.agent_id: r.state.get("reputation") for r in session.scalars(select(AgentRow))}
    for a in agents:
        if isinstance(reputations.get(a["agent_id"]), (int, float)):
            a["reputation"] = reputations[a["agent_id"]]
    return {"offsets": offsets, "tasks": list(tasks.values()), "agents": agents,
            "failures": [_summary(row) for row in failed]}
