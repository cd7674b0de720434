"""Performance over a recent window (5m, 1h, 24h): tasks, throughput, waits and run times, overall and per agent.

Pure: feed it the task events from one window before the window's start (so attempts and waits that end
inside it are placed), in log order; it counts what happens inside [start, end].
"""
from __future__ import annotations

from collections.abc import Iterable

from ..domain import events as e
from .performance import Performance, Tally, percentile

WINDOWS = {"5m": 5 * 60_000, "1h": 3_600_000, "24h": 24 * 3_600_000}


def _spread(values: list[int]) -> dict:
    return {f"p{q}": (None if (v := percentile(values, q)) is None else v / 1000) for q in (50, 95, 99)}


def _figures(t: Tally, minutes: float) -> dict:
    ended = t.completed + t.failed
    return {"completed": t.completed, "failed": t.failed,
            "throughput_per_minute": round(t.completed / minutes, 3),
            "success_rate": round(t.completed / ended, 4) if ended else None,
            "error_rate": round(t.failed / ended, 4) if ended else None,
            "queue_wait_seconds": _spread(t.wait_ms), "run_seconds": _spread(t.run_ms)}


def summarize(events: Iterable, window: str, end: int) -> dict:
    span = WINDOWS[window]
    start = end - span
    model = Performance(since=start)
    tasks = {"submitted": 0, "completed": 0, "failed": 0, "cancelled": 0}
    seen: dict[str, int] = {}
    for event in events:
        model.apply(event)
        if not isinstance(event, e.TaskEvent) or not start <= event.at <= end:
            continue
        if event.seq <= seen.get(event.task_id, 0):
            continue
        seen[event.task_id] = event.seq
        for cls, name in ((e.TaskSubmitted, "submitted"), (e.TaskCompleted, "completed"), (e.TaskFailed, "failed"),
                          (e.TaskCancelled, "cancelled")):
            if isinstance(event, cls):
                tasks[name] += 1
    minutes = span / 60_000
    overall = Tally()
    for t in model.by_agent.values():
        overall.completed += t.completed
        overall.failed += t.failed
        overall.run_ms += t.run_ms
        overall.wait_ms += t.wait_ms
    ended = tasks["completed"] + tasks["failed"]
    return {
        "window": window, "from": start, "to": end,
        "tasks": {**tasks, "throughput_per_minute": round(tasks["completed"] / minutes, 3),
                  "success_rate": round(tasks["completed"] / ended, 4) if ended else None,
                  "error_rate": round(tasks["failed"] / ended, 4) if ended else None},
        "attempts": _figures(overall, minutes),
        "agents": {name: _figures(t, minutes) for name, t in sorted(model.by_agent.items())
                   if t.completed or t.failed or t.wait_ms},
    }
