"""Read functions for the operator's views: agents with reputation, the cluster at a glance."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..domain.reputation import KINDS, Record
from ..codec.avro import from_record
from ..domain.agent import LOAD_FIELDS, AgentState
from ..domain.tenancy import task_tenant
from .models import AgentOutcomeRow, AgentRow, TaskRow
from .queries import of_tenant

QUEUED = ("queued", "blocked")
RUNNING = ("assigned", "running")


def _records(session: Session, agent_id: str | None = None) -> dict[str, Record]:
    query = select(AgentOutcomeRow.agent_id, AgentOutcomeRow.kind, func.count()).group_by(
        AgentOutcomeRow.agent_id, AgentOutcomeRow.kind)
    if agent_id is not None:
        query = query.where(AgentOutcomeRow.agent_id == agent_id)
    counts: dict[str, dict[str, int]] = {}
    for aid, kind, n in session.execute(query):
        counts.setdefault(aid, {})[kind] = n
    return {aid: Record(**c) for aid, c in counts.items()}


def agents_status(session: Session, now: int, timeout_ms: int) -> list[dict]:
    records = _records(session)
    out = []
    for row in session.scalars(select(AgentRow).order_by(AgentRow.agent_id)):
        state = row.state
        live = row.status == "online" and now - row.last_seen <= timeout_ms
        record = records.get(row.agent_id, Record())
        out.append({
            "agent_id": row.agent_id, "name": row.name, "status": row.status if live or row.status != "online" else "silent",
            "capabilities": row.capabilities, "hardware": state.get("hardware"), "price": state.get("price"),
            "model": state.get("model"), "endpoint": state.get("endpoint"), "slots": row.slots, "running": row.holding,
            "load": {k: state.get(k) for k in LOAD_FIELDS},
            "last_seen": row.last_seen, "reputation": round(record.score, 4),
            "outcomes": {k: getattr(record, k) for k in KINDS},
        })
    return out


def cluster_status(session: Session, now: int, timeout_ms: int, recent: int = 10, tenant: str | None = None) -> dict:
    """Queues, task counts and failures of `tenant` (None: every tenant); the agents are everyone's."""
    queues = {str(p): n for p, n in session.execute(of_tenant(
        select(TaskRow.priority, func.count()).where(TaskRow.status.in_(QUEUED)).group_by(TaskRow.priority)
        .order_by(TaskRow.priority.desc()), tenant))}
    statuses = dict(session.execute(of_tenant(select(TaskRow.status, func.count()).group_by(TaskRow.status),
                                              tenant)).all())
    agents = agents_status(session, now, timeout_ms)
    online = [a for a in agents if a["status"] == "online"]
    slots = sum(a["slots"] for a in online)
    failures = session.scalars(of_tenant(select(TaskRow).where(TaskRow.status == "failed")
                                         .order_by(TaskRow.updated_at.desc()).limit(recent), tenant))
    return {
        "queues": queues,
        "tasks": statuses,
        "running": sum(statuses.get(s, 0) for s in RUNNING),
        "agents": {"online": len(online), "busy": sum(a["running"] >= a["slots"] for a in online),
                   "offline": len(agents) - len(online)},
        "utilisation": round(sum(a["running"] for a in online) / slots, 4) if slots else 0.0,
        "recent_failures": [{"task_id": t.task_id, "name": t.name, "reason": t.reason, "agent_id": t.agent_id,
                             "at": t.updated_at} for t in failures],
    }


def agent_reputation(session: Session, agent_id: str, tenant: str | None = None) -> dict | None:
    """The score and its counts are public; the events behind them list only `tenant`'s tasks (None: all)."""
    if session.get(AgentRow, agent_id) is None:
        return None
    record = _records(session, agent_id).get(agent_id, Record())
    rows = session.scalars(select(AgentOutcomeRow).where(AgentOutcomeRow.agent_id == agent_id)
                           .order_by(AgentOutcomeRow.at, AgentOutcomeRow.event_id))
    return {"agent_id": agent_id, "score": round(record.score, 4),
            "formula": "(completed + 2) / (completed + failed + late + 2 * rejected + 3)",
            **{k: getattr(record, k) for k in KINDS},
            "events": [{"event_id": r.event_id, "task_id": r.task_id, "type": r.event_type.rsplit(".", 1)[-1],
                        "kind": r.kind, "at": r.at} for r in rows
                       if tenant is None or task_tenant(r.task_id) == tenant]}


def agent_offer(session: Session, agent_id: str) -> AgentState | None:
    """The agent's state as the read model has it (its offer: price, key, capabilities), or None."""
    row = session.get(AgentRow, agent_id)
    return None if row is None else from_record(AgentState, row.state)
