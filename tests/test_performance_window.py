"""The performance view's fold over a window, without a broker."""
from __future__ import annotations

from hive_streams.analytics.window import summarize
from hive_streams.domain import events as e

MIN = 60_000
END = 100 * MIN


def run(task: str, agent: str, submitted: int, assigned: int, ended: int, ok: bool = True) -> list:
    end = e.TaskCompleted(task, 3, ended, agent, ()) if ok else e.TaskFailed(task, 3, ended, "boom", agent)
    return [e.TaskSubmitted(task, 1, submitted, task, "tests/admin", (), queued=True),
            e.TaskAssigned(task, 2, assigned, agent, 1, ()), end]


def test_a_five_minute_window_counts_what_ended_inside_it():
    events = (run("old", "a", 0, 1 * MIN, 2 * MIN)  # long before the window
              + run("edge", "a", END - 7 * MIN, END - 6 * MIN, END - 4 * MIN)  # assigned before, ended inside
              + run("t1", "a", END - 3 * MIN, END - 3 * MIN + 2000, END - 2 * MIN)
              + run("t2", "b", END - 2 * MIN, END - 2 * MIN + 4000, END - 1 * MIN, ok=False))
    events.append(e.TaskCompleted("t1", 3, END - 2 * MIN, "a", ()))  # a duplicate in the log
    out = summarize(events, "5m", END)
    assert out["tasks"] == {"submitted": 2, "completed": 2, "failed": 1, "cancelled": 0,
                            "throughput_per_minute": 0.4, "success_rate": 0.6667, "error_rate": 0.3333}
    a, b = out["agents"]["a"], out["agents"]["b"]
    assert (a["completed"], a["failed"], b["completed"], b["failed"]) == (2, 0, 0, 1)
    assert a["run_seconds"] == {"p50": 58.0, "p95": 120.0, "p99": 120.0}
    assert a["queue_wait_seconds"] == {"p50": 2.0, "p95": 2.0, "p99": 2.0}  # the edge task waited before the window
    assert (b["success_rate"], b["error_rate"], b["run_seconds"]["p50"]) == (0.0, 1.0, None)
    assert out["attempts"]["completed"] == 2 and out["attempts"]["failed"] == 1
    assert "old" not in str(out["agents"])


def test_an_empty_window_has_no_rates():
    out = summarize([], "24h", END)
    assert out["tasks"]["success_rate"] is None and out["agents"] == {} and out["to"] - out["from"] == 24 * 60 * MIN
