"""Alerts from heartbeats and task events: which rule holds for which agent, when to raise and resolve. Pure.

Rules (configurable, `parse_rules`):
- `high_cpu`: an agent's heartbeat CPU above `threshold` % for `count` consecutive heartbeats.
- `agent_down`: the agent went offline because it fell silent (a clean deregistration is not an alert).
- `slow_response`: the mean run time of the agent's last `count` completed tasks above `threshold` seconds.
- `performance_target`: what the agent reports misses a target of its offer (`min_tokens_per_second`:
  heartbeat tokens/s below it; `max_response_seconds`: the heartbeat's response time above it) for
  `count` consecutive heartbeats.

A rule raises for a key (an agent id) when its condition holds, the alert is not open, and its cooldown
has passed since the last raise of the same rule and key. An open alert resolves once its condition has
been clear for CLEAR_BEATS heartbeats of the agent. `Alerting` only proposes: the shell applies an event
with `record` once it is written, and also folds the alerts already in the log with it, so replaying the
inputs never raises twice.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

from . import events as e
from .agent import SILENT

CLEAR_BEATS = 3
TARGETS = ("min_tokens_per_second", "max_response_seconds")  # the offer's targets the rules compare


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    cooldown_ms: int
    threshold: float = 0.0
    count: int = 1


DEFAULT_RULES = {r.name: r for r in (
    Rule("high_cpu", "warning", 300_000, 85.0, 3),
    Rule("agent_down", "critical", 60_000),
    Rule("slow_response", "warning", 180_000, 60.0, 10),
    Rule("performance_target", "warning", 300_000, 0.0, 1),
)}
KNOBS = {"threshold": float, "count": int, "cooldown": float, "severity": str}


class RuleError(ValueError):
    pass


def parse_rules(text: str) -> dict[str, Rule]:
    """`high_cpu=threshold:90,count:5;agent_down=cooldown:30` over the defaults (cooldown in seconds)."""
    rules = dict(DEFAULT_RULES)
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, knobs = part.partition("=")
        name = name.strip()
        if name not in rules:
            raise RuleError(f"unknown alert rule {name!r} (known: {', '.join(sorted(rules))})")
        for knob in filter(None, (k.strip() for k in knobs.split(","))):
            key, _, raw = knob.partition(":")
            if key not in KNOBS:
                raise RuleError(f"{name}: unknown setting {key!r} (known: {', '.join(KNOBS)})")
            try:
                value = KNOBS[key](raw)
            except ValueError:
                raise RuleError(f"{name}: {key} must be a {KNOBS[key].__name__}, not {raw!r}") from None
            if key in ("count", "cooldown", "threshold") and value < (1 if key == "count" else 0):
                raise RuleError(f"{name}: {key} must be {'at least 1' if key == 'count' else 'positive'}")
            rule = rules[name]
            rules[name] = (replace(rule, cooldown_ms=int(value * 1000)) if key == "cooldown"
                           else replace(rule, **{key: value}))
    return rules


@dataclass
class Watch:
    """What the rules know of one agent."""
    seq: int = 0
    cpu_streak: int = 0
    miss_streak: int = 0
    miss: str = ""
    silent: bool = False
    targets: dict[str, float] = field(default_factory=dict)
    # (completed at, task, seconds) of its last completed tasks, in completion order: the same whichever task
    # partition was read first
    runs: list = field(default_factory=list)


def alert_id(rule: str, key: str) -> str:
    return f"{rule}:{key}"


class Alerting:
    def __init__(self, rules: dict[str, Rule] | None = None, clear_beats: int = CLEAR_BEATS):
        self.rules = rules or dict(DEFAULT_RULES)
        self.clear_beats = clear_beats
        self.agents: dict[str, Watch] = {}
        self.assigned: dict[str, tuple[str, int]] = {}  # task -> (agent, assigned at)
        self.task_seq: dict[str, int] = {}
        self.open: dict[str, e.AlertRaised] = {}
        self.last_raised: dict[str, int] = {}
        self.seq: dict[str, int] = {}
        self.clear: dict[str, int] = {}

    # the alerts log ---------------------------------------------------------------------------

    def record(self, event: e.AlertEvent) -> None:
        """Applies an alert event that is in the log (written now, or read back at start)."""
        if event.seq <= self.seq.get(event.alert_id, 0):
            return
        self.seq[event.alert_id] = event.seq
        if isinstance(event, e.AlertRaised):
            self.open[event.alert_id] = event
            self.last_raised[event.alert_id] = event.at
            self.clear[event.alert_id] = 0
        else:
            self.open.pop(event.alert_id, None)

    # inputs -----------------------------------------------------------------------------------

    def observe(self, event) -> list[e.AlertEvent]:
        """The alert events an input event calls for (proposals: nothing changes until `record`)."""
        if isinstance(event, e.AgentEvent):
            watch = self.agents.setdefault(event.agent_id, Watch())
            if event.seq <= watch.seq:
                return []
            watch.seq = event.seq
            return self._agent_event(watch, event)
        if isinstance(event, e.TaskEvent) and event.seq > self.task_seq.get(event.task_id, 0):
            self.task_seq[event.task_id] = event.seq
            self._task_event(event)
            if isinstance(event, e.TERMINAL_TASK_EVENTS):
                del self.task_seq[event.task_id]  # nothing follows its end: memory grows with live tasks
        return []

    def tick(self, now: int) -> list[e.AlertEvent]:
        """What time alone calls for: a silent agent whose cooldown has run out while it stays down."""
        return [ev for agent, w in sorted(self.agents.items()) if w.silent
                for ev in self._raise("agent_down", agent, now, "agent is offline: no heartbeat", None)]

    def _agent_event(self, watch: Watch, event) -> list[e.AlertEvent]:
        agent = event.agent_id
        if isinstance(event, e.AgentRegistered):
            watch.targets = dict(event.targets)
            watch.silent = False
            return []
        if isinstance(event, e.AgentStatusChanged):
            watch.silent = event.status != "online" and event.reason.startswith(SILENT)
            if watch.silent:
                return self._raise("agent_down", agent, event.at, f"agent is offline: {event.reason}", None)
            return []
        if isinstance(event, e.AgentHeartbeat):
            watch.silent = False
            return self._beat(watch, event)
        return []

    def _task_event(self, event) -> None:
        if isinstance(event, e.TaskAssigned):
            self.assigned[event.task_id] = (event.agent_id, event.at)
        elif isinstance(event, e.TaskCompleted):
            agent, since = self.assigned.pop(event.task_id, (None, 0))
            if agent:
                runs = self.agents.setdefault(agent, Watch()).runs
                bisect.insort(runs, (event.at, event.task_id, max(0, event.at - since) / 1000))
                del runs[:max(0, len(runs) - self.rules["slow_response"].count)]
        elif isinstance(event, e.TERMINAL_TASK_EVENTS + (e.TaskRetryScheduled,)):  # a decline ends no attempt
            self.assigned.pop(event.task_id, None)

    def _beat(self, watch: Watch, beat: e.AgentHeartbeat) -> list[e.AlertEvent]:
        rules = self.rules
        watch.cpu_streak = watch.cpu_streak + 1 if beat.cpu_percent > rules["high_cpu"].threshold else 0
        watch.miss = target_miss(watch.targets, beat)
        watch.miss_streak = watch.miss_streak + 1 if watch.miss else 0
        mean = sum(seconds for _, _, seconds in watch.runs) / len(watch.runs) if watch.runs else None
        hot, slow = watch.cpu_streak > 0, mean is not None and mean > rules["slow_response"].threshold
        # rule -> (raise now, still not clear, message, value): one hot beat keeps high_cpu from clearing
        holds = {
            "high_cpu": (watch.cpu_streak >= rules["high_cpu"].count, hot,
                         f"CPU above {rules['high_cpu'].threshold:g}% for {watch.cpu_streak} heartbeats",
                         beat.cpu_percent),
            "slow_response": (slow, slow, f"mean run time of the last {len(watch.runs)} tasks is {mean or 0:.1f}s",
                              mean),
            "performance_target": (watch.miss_streak >= rules["performance_target"].count, bool(watch.miss),
                                   watch.miss, None),
            "agent_down": (False, False, "", None),
        }
        out: list[e.AlertEvent] = []
        for rule, (held, uncleared, message, value) in holds.items():
            aid = alert_id(rule, beat.agent_id)
            if held:
                out += self._raise(rule, beat.agent_id, beat.at, message, value)
            if uncleared:
                self.clear[aid] = 0
            elif aid in self.open:
                self.clear[aid] = self.clear.get(aid, 0) + 1
                if self.clear[aid] >= self.clear_beats:
                    out.append(e.AlertResolved(aid, self.seq.get(aid, 0) + 1, beat.at, rule, beat.agent_id,
                                               f"clear for {self.clear[aid]} heartbeats"))
        return out

    def _raise(self, rule: str, key: str, at: int, message: str, value: float | None) -> list[e.AlertEvent]:
        aid = alert_id(rule, key)
        last = self.last_raised.get(aid)
        if aid in self.open or (last is not None and at - last < self.rules[rule].cooldown_ms):
            return []
        return [e.AlertRaised(aid, self.seq.get(aid, 0) + 1, at, rule, key, self.rules[rule].severity, message,
                              value)]


def target_miss(targets: dict[str, float], beat: e.AgentHeartbeat) -> str:
    """Which offered target the heartbeat's report misses, or empty; a figure not reported misses nothing."""
    low = targets.get("min_tokens_per_second")
    if low is not None and beat.tokens_per_second is not None and beat.tokens_per_second < low:
        return f"tokens/s {beat.tokens_per_second:g} below the offered minimum {low:g}"
    high = targets.get("max_response_seconds")
    response = beat.response_seconds
    if high is not None and response is not None and response > high:
        return f"response time {response:g}s above the offered maximum {high:g}s"
    return ""
