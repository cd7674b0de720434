"""Fabric-wide figures folded from the task events: ended tasks by status and how long they took. Pure.

A task's completion time runs from its submission to its ending event. Events repeated in the log
(same task and seq) are counted once while the task lives; an ended task is forgotten (its partition has
nothing after the end, and the log has one history per task).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..domain import events as e

ENDINGS = {e.TaskCompleted: "completed", e.TaskFailed: "failed", e.TaskCancelled: "cancelled",
           e.TaskRejected: "rejected"}
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)  # seconds


@dataclass
class Histogram:
    bounds: tuple[float, ...] = BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: int = 0
    sum: float = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (upper bound, observations at or below it), ending with +Inf."""
        return [(str(b), n) for b, n in zip(self.bounds, self.counts)] + [("+Inf", self.total)]


@dataclass
class FabricStats:
    ended: dict[str, int] = field(default_factory=dict)  # status -> tasks
    completion: Histogram = field(default_factory=Histogram)
    submitted_at: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)

    def observe(self, event) -> None:
        if not isinstance(event, e.TaskEvent) or event.seq <= self.seen.get(event.task_id, 0):
            return
        self.seen[event.task_id] = event.seq
        if isinstance(event, e.TaskSubmitted):
            self.submitted_at[event.task_id] = event.at
            return
        status = ENDINGS.get(type(event))
        if status is None:
            return
        del self.seen[event.task_id]  # nothing follows an ending in its partition: memory grows with live tasks
        self.ended[status] = self.ended.get(status, 0) + 1
        since = self.submitted_at.pop(event.task_id, None)
        if status == "completed" and since is not None:
            self.completion.observe(max(0, event.at - since) / 1000)

    @property
    def success_rate(self) -> float | None:
        """Completed over completed and failed; None before any ended either way."""
        done, failed = self.ended.get("completed", 0), self.ended.get("failed", 0)
        return done / (done + failed) if done + failed else None


def utilisation_percent(agents, now: int, timeout_ms: int) -> float:
    """Slots held over slots offered by the live agents, in percent; 0 with none."""
    live = [a for a in agents if a.live(now, timeout_ms)]
    slots = sum(a.slots for a in live)
    return 100.0 * sum(min(len(a.holding), a.slots) for a in live) / slots if slots else 0.0


def queue_by_priority(waiting) -> dict[int, int]:
    out: dict[int, int] = {}
    for w in waiting:
        out[w.need.priority] = out.get(w.need.priority, 0) + 1
    return out
