"""Per-agent and per-capability performance, folded from the task and ledger events. Pure: no IO, no clock.

An *attempt* runs from `TaskAssigned` to the first of `TaskCompleted` (a success), `TaskRetryScheduled`
or `TaskFailed` naming the agent (a failure); a cancellation or a declined assignment ends it uncounted.
Queue wait runs from the moment a task became runnable (submitted, or unblocked, or its retry's
`not_before`) to its assignment. Run time is that of successful attempts. Earnings are the escrow
released to the agent, less the platform fee, in cents. A task's capabilities are the ones it requires
and its nodes' kinds. Events repeated in the log (same aggregate and seq) are counted once.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..domain import events as e


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


@dataclass
class Tally:
    completed: int = 0
    failed: int = 0
    run_ms: list[int] = field(default_factory=list)
    wait_ms: list[int] = field(default_factory=list)
    earnings: int = 0
    first_at: int | None = None
    last_at: int | None = None

    def saw(self, at: int) -> None:
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        self.last_at = at if self.last_at is None else max(self.last_at, at)


@dataclass(frozen=True)
class Row:
    name: str
    completed: int
    failed: int
    success_rate: float | None
    per_hour: float | None  # completions per hour between the first and last event seen for it
    run_p50_ms: float | None
    run_p95_ms: float | None
    wait_p50_ms: float | None
    wait_p95_ms: float | None
    earnings: int  # cents


def row(name: str, t: Tally) -> Row:
    ended = t.completed + t.failed
    span_h = ((t.last_at or 0) - (t.first_at or 0)) / 3_600_000
    return Row(name, t.completed, t.failed, t.completed / ended if ended else None,
               t.completed / span_h if span_h > 0 else None,
               percentile(t.run_ms, 50), percentile(t.run_ms, 95), percentile(t.wait_ms, 50), percentile(t.wait_ms, 95),
               t.earnings)


@dataclass
class Attempt:
    agent_id: str
    assigned_at: int


class Performance:
    """The read model: feed it events in log order (per aggregate), read `agents()` and `capabilities()`.

    With `since`, only what happens from then on is counted (assignments' waits, attempts' ends): earlier
    events still place the attempts and queue waits that end inside the window."""

    def __init__(self, since: int = 0):
        self.since = since
        self.by_agent: dict[str, Tally] = {}
        self.by_capability: dict[str, Tally] = {}
        self.task_capabilities: dict[str, tuple[str, ...]] = {}  # task -> capabilities
        self.runnable_since: dict[str, int] = {}
        self.attempts: dict[str, Attempt] = {}
        self.seen: dict[str, int] = {}  # aggregate -> highest seq counted

    def apply(self, event) -> None:
        aggregate = getattr(event, "task_id", None) if isinstance(event, e.TaskEvent) else getattr(
            event, "ledger_id", None)
        if aggregate is None or not hasattr(event, "seq"):
            return
        key = f"{type(event).__mro__[1].__name__}:{aggregate}"
        if event.seq <= self.seen.get(key, 0):
            return
        self.seen[key] = event.seq
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler:
            handler(event)

    def _tallies(self, task_id: str, agent_id: str) -> list[Tally]:
        out = [self.by_agent.setdefault(agent_id, Tally())] if agent_id else []
        return out + [self.by_capability.setdefault(c, Tally()) for c in self.task_capabilities.get(task_id, ())]

    def _on_TaskSubmitted(self, ev: e.TaskSubmitted) -> None:
        self.task_capabilities[ev.task_id] = tuple(sorted({r.name for r in ev.requires} | {n.kind for n in ev.nodes}))
        if not ev.after:
            self.runnable_since[ev.task_id] = ev.at

    def _on_TaskValidated(self, ev: e.TaskValidated) -> None:
        self.runnable_since.setdefault(ev.task_id, ev.at)

    def _on_TaskAssigned(self, ev: e.TaskAssigned) -> None:
        since = self.runnable_since.pop(ev.task_id, None)
        if ev.at >= self.since:
            for t in self._tallies(ev.task_id, ev.agent_id):
                t.saw(ev.at)
                if since is not None:
                    t.wait_ms.append(max(0, ev.at - since))
        self.attempts[ev.task_id] = Attempt(ev.agent_id, ev.at)

    def _end(self, task_id: str, at: int, success: bool | None) -> None:
        attempt = self.attempts.pop(task_id, None)
        if attempt is None or success is None or at < self.since:
            return
        for t in self._tallies(task_id, attempt.agent_id):
            t.saw(at)
            if success:
                t.completed += 1
                t.run_ms.append(max(0, at - attempt.assigned_at))
            else:
                t.failed += 1

    def _on_TaskCompleted(self, ev: e.TaskCompleted) -> None:
        self._end(ev.task_id, ev.at, True)

    def _on_TaskRetryScheduled(self, ev: e.TaskRetryScheduled) -> None:
        self._end(ev.task_id, ev.at, False)
        self.runnable_since[ev.task_id] = max(ev.at, ev.not_before)

    def _on_TaskFailed(self, ev: e.TaskFailed) -> None:
        self._end(ev.task_id, ev.at, False)
        self.runnable_since.pop(ev.task_id, None)

    def _on_TaskCancelled(self, ev: e.TaskCancelled) -> None:
        self._end(ev.task_id, ev.at, None)
        self.runnable_since.pop(ev.task_id, None)

    def _on_EscrowReleased(self, ev: e.EscrowReleased) -> None:
        if ev.at < self.since:
            return
        for t in self._tallies(ev.task_id, ev.agent_id):
            t.earnings += ev.amount - ev.fee

    def agents(self) -> list[Row]:
        return [row(name, t) for name, t in sorted(self.by_agent.items())]

    def capabilities_rows(self) -> list[Row]:
        return [row(name, t) for name, t in sorted(self.by_capability.items())]


def fold(events: Iterable) -> Performance:
    model = Performance()
    for event in events:
        model.apply(event)
    return model
