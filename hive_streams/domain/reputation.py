"""An agent's reputation, derived from task events only, and explainable by them.

score = (completed + 2) / (completed + failed + late + 2 * rejected + 3)

A new agent starts at 2/3. Failed attempts (a node failed, the agent vanished), late ones
(the deadline passed while the agent held the task) and rejected results lower it; every
completion raises it. The prior keeps one bad event from sinking a new agent.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from . import events as e
from .task import DEADLINE_EXCEEDED

KINDS = ("completed", "failed", "late", "rejected")


@dataclass(frozen=True)
class Record:
    completed: int = 0
    failed: int = 0
    late: int = 0
    rejected: int = 0

    @property
    def score(self) -> float:
        return (self.completed + 2) / (self.completed + self.failed + self.late + 2 * self.rejected + 3)

    def add(self, kind: str) -> "Record":
        return replace(self, **{kind: getattr(self, kind) + 1})


def outcome(event) -> tuple[str, str] | None:
    """(agent_id, kind) when a task event says something about the agent that held the task."""
    if isinstance(event, e.TaskCompleted):
        return event.agent_id, "completed"
    if isinstance(event, e.ResultRejected):
        return event.agent_id, "rejected"
    if isinstance(event, e.TaskRetryScheduled) and event.agent_id:
        return None if event.reason.startswith("result rejected") else (event.agent_id, "failed")
    if isinstance(event, e.TaskFailed) and event.agent_id:
        if event.reason.startswith("result rejected"):
            return None  # counted by its ResultRejected
        return event.agent_id, "late" if event.reason == DEADLINE_EXCEEDED else "failed"
    return None


def explain(events) -> dict[str, dict]:
    """agent -> score, counts and the events behind them, from any sequence of task events."""
    out: dict[str, dict] = {}
    records: dict[str, Record] = {}
    for event in events:
        found = outcome(event)
        if found is None:
            continue
        agent_id, kind = found
        records[agent_id] = records.get(agent_id, Record()).add(kind)
        entry = out.setdefault(agent_id, {"events": []})
        entry["events"].append({"event_id": f"{event.task_id}/{event.seq}", "type": type(event).__name__,
                                "kind": kind, "at": event.at})
    for agent_id, record in records.items():
        out[agent_id].update(score=round(record.score, 4), **{k: getattr(record, k) for k in KINDS})
    return out
