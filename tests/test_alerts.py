"""The alert rules without a broker: raise, cooldown, resolve after clear heartbeats, configuration."""
from __future__ import annotations

import pytest

from hive_streams.domain import events as e
from hive_streams.domain.alerts import Alerting, RuleError, parse_rules

S = 1000


class Run:
    """Feeds events to the rules and records what they propose, as the shell does."""

    def __init__(self, rules=None):
        self.alerting = Alerting(rules)
        self.seq = {}
        self.out: list = []

    def agent(self, cls, agent_id: str, at: int, **fields):
        self.seq[agent_id] = self.seq.get(agent_id, 0) + 1
        return self.feed(cls(agent_id, self.seq[agent_id], at, **fields))

    def beat(self, agent_id: str, at: int, cpu: float = 10.0, **fields):
        return self.agent(e.AgentHeartbeat, agent_id, at, cpu_percent=cpu, **fields)

    def feed(self, event):
        got = self.alerting.observe(event)
        for alert in got:
            self.alerting.record(alert)
        self.out += got
        return got

    def tick(self, now: int):
        got = self.alerting.tick(now)
        for alert in got:
            self.alerting.record(alert)
        self.out += got
        return got


def kinds(events) -> list[tuple[str, str]]:
    return [(type(ev).__name__, ev.alert_id) for ev in events]


def test_high_cpu_needs_three_consecutive_beats_and_resolves_after_three_clear():
    run = Run()
    run.agent(e.AgentRegistered, "a", 0, name="a", capabilities=())
    assert run.beat("a", 1 * S, 90) == [] and run.beat("a", 2 * S, 20) == []  # broken streak
    run.beat("a", 3 * S, 90), run.beat("a", 4 * S, 91)
    raised = run.beat("a", 5 * S, 95)
    assert kinds(raised) == [("AlertRaised", "high_cpu:a")]
    assert (raised[0].severity, raised[0].value, raised[0].seq, raised[0].at) == ("warning", 95, 1, 5 * S)
    assert run.beat("a", 6 * S, 99) == []  # open: not again
    assert run.beat("a", 7 * S, 10) == [] and run.beat("a", 8 * S, 10) == []
    resolved = run.beat("a", 9 * S, 10)
    assert kinds(resolved) == [("AlertResolved", "high_cpu:a")] and resolved[0].seq == 2


def test_a_hot_beat_restarts_the_clear_count():
    run = Run()
    for t in range(3):
        run.beat("a", t * S, 90)
    run.beat("a", 3 * S, 10), run.beat("a", 4 * S, 10)
    run.beat("a", 5 * S, 90)  # hot again: still open, clear count back to 0
    assert [run.beat("a", (6 + t) * S, 10) for t in range(2)] == [[], []]
    assert kinds(run.beat("a", 8 * S, 10)) == [("AlertResolved", "high_cpu:a")]


def test_cooldown_counts_from_the_last_raise():
    run = Run(parse_rules("high_cpu=cooldown:300"))
    at = 0
    for _ in range(3):
        at += S
        run.beat("a", at, 90)
    for _ in range(3):
        at += S
        run.beat("a", at, 10)
    assert kinds(run.out) == [("AlertRaised", "high_cpu:a"), ("AlertResolved", "high_cpu:a")]
    for _ in range(10):  # hot again within 300 s of the raise: nothing
        at += S
        assert run.beat("a", at, 90) == []
    at = 3 * S + 300 * S
    assert kinds(run.beat("a", at, 90)) == [("AlertRaised", "high_cpu:a")]


def test_agent_down_on_silence_not_on_deregistration_and_resolved_once_it_beats_again():
    run = Run()
    run.agent(e.AgentStatusChanged, "a", 1 * S, status="offline", reason="a new executor process took over")
    assert run.out == []
    down = run.agent(e.AgentStatusChanged, "a", 2 * S, status="offline", reason="no heartbeat for 10.2s")
    assert kinds(down) == [("AlertRaised", "agent_down:a")] and down[0].severity == "critical"
    assert run.tick(30 * S) == []  # open
    run.agent(e.AgentStatusChanged, "a", 31 * S, status="online")
    run.beat("a", 32 * S), run.beat("a", 33 * S)
    assert kinds(run.beat("a", 34 * S)) == [("AlertResolved", "agent_down:a")]
    # down again within 60 s of the raise: not raised, neither now nor by the clock until the cooldown ends
    assert run.agent(e.AgentStatusChanged, "a", 40 * S, status="offline", reason="no heartbeat for 3.1s") == []
    assert run.tick(61 * S) == []
    assert kinds(run.tick(62 * S)) == [("AlertRaised", "agent_down:a")]


def test_slow_response_on_the_mean_of_the_last_ten_runs():
    run = Run()

    def ran(i: int, seconds: int) -> None:
        run.feed(e.TaskAssigned(f"t{i}", 1, i * 1000 * S, "a", 1, ()))
        run.feed(e.TaskCompleted(f"t{i}", 2, i * 1000 * S + seconds * S, "a", ()))

    for i in range(10):
        ran(i, 90 if i < 5 else 40)  # mean 65 s
    raised = run.beat("a", 20_000 * S)
    assert kinds(raised) == [("AlertRaised", "slow_response:a")] and raised[0].value == 65
    for i in range(10, 13):
        ran(i, 1)  # the oldest 90 s runs leave the window: mean 38.1 s
    assert [run.beat("a", (20_001 + t) * S) for t in range(2)] == [[], []]
    assert kinds(run.beat("a", 20_003 * S)) == [("AlertResolved", "slow_response:a")]


def test_a_declined_offer_does_not_drop_the_run_it_arrives_during():
    run = Run()
    for i in range(10):
        run.feed(e.TaskAssigned(f"t{i}", 1, i * 1000 * S, "a", 1, ()))
        run.feed(e.TaskAssignmentDeclined(f"t{i}", 2, i * 1000 * S + S, "", "already runs on a", "x"))
        run.feed(e.TaskCompleted(f"t{i}", 3, i * 1000 * S + 90 * S, "a", ()))
    assert kinds(run.beat("a", 20_000 * S)) == [("AlertRaised", "slow_response:a")]


def test_the_runs_an_agent_is_judged_on_do_not_depend_on_which_task_partition_was_read_first():
    done = [(e.TaskAssigned(f"t{i}", 1, i * S, "a", 1, ()), e.TaskCompleted(f"t{i}", 2, i * S + (i % 7) * S, "a", ()))
            for i in range(14)]
    orders = [[ev for pair in done for ev in pair],  # completions read in the order they happened
              [ev for pair in reversed(done) for ev in pair],  # a partition of later tasks read first
              [ev for pair in done[1::2] + done[::2] for ev in pair]]  # two partitions, one after the other
    runs = []
    for order in orders:
        run = Run()
        for event in order:
            run.feed(event)
        runs.append(run.alerting.agents["a"].runs)
    assert runs[0] == runs[1] == runs[2] and len(runs[0]) == 10  # the ten latest completions, by time
    latest = sorted(done, key=lambda pair: (pair[1].at, pair[1].task_id))[-10:]
    assert [task for _, task, _ in runs[0]] == [completed.task_id for _, completed in latest]


def test_performance_targets_missed_raise_and_resolve():
    run = Run()
    run.agent(e.AgentRegistered, "g", 0, name="g", capabilities=(),
              targets={"min_tokens_per_second": 50.0, "max_response_seconds": 5.0})
    assert run.beat("g", 1 * S, tokens_per_second=80.0, response_seconds=1.0) == []
    assert run.beat("g", 2 * S, tokens_per_second=None) == []  # not reported: no miss
    missed = run.beat("g", 3 * S, tokens_per_second=20.0)
    assert kinds(missed) == [("AlertRaised", "performance_target:g")]
    assert "below the offered minimum 50" in missed[0].message
    for t in (4, 5):
        run.beat("g", t * S, tokens_per_second=60.0)
    assert kinds(run.beat("g", 6 * S, tokens_per_second=60.0)) == [("AlertResolved", "performance_target:g")]


def test_a_slow_response_time_misses_its_target():
    run = Run()
    run.agent(e.AgentRegistered, "g", 0, name="g", capabilities=(), targets={"max_response_seconds": 5.0})
    assert "above the offered maximum 5s" in run.beat("g", 1 * S, response_seconds=7.5)[0].message


def test_replayed_and_repeated_inputs_propose_nothing_new():
    run = Run()
    beat = e.AgentHeartbeat("a", 1, 1 * S, cpu_percent=90)
    for _ in range(5):
        run.feed(beat)  # the same event redelivered is one beat
    assert run.out == []


def test_alerts_read_back_restore_open_alerts_and_cooldowns():
    first = Run()
    for t in range(3):
        first.beat("a", t * S, 90)
    restored = Alerting()
    for alert in first.out:
        restored.record(alert)
    restored.record(first.out[0])  # read twice: folded once
    assert set(restored.open) == {"high_cpu:a"} and restored.seq == {"high_cpu:a": 1}


def test_rules_are_configurable_and_bad_settings_are_named():
    rules = parse_rules("high_cpu=threshold:95,count:5,cooldown:10; agent_down=severity:page")
    assert (rules["high_cpu"].threshold, rules["high_cpu"].count, rules["high_cpu"].cooldown_ms) == (95, 5, 10_000)
    assert rules["agent_down"].severity == "page" and rules["slow_response"].cooldown_ms == 180_000
    for bad, named in (("hot=count:1", "unknown alert rule 'hot'"), ("high_cpu=speed:1", "unknown setting 'speed'"),
                       ("high_cpu=count:x", "count must be a int"), ("high_cpu=count:0", "count must be at least 1")):
        with pytest.raises(RuleError, match=named):
            parse_rules(bad)


def test_a_bad_rule_setting_stops_the_worker_naming_it(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HIVE_ALERT_RULES": "high_cpu=threshold:hot", "HIVE_HOME": str(tmp_path),
           "HIVE_KAFKA_BOOTSTRAP": "127.0.0.1:1", "HIVE_TOPIC_PREFIX": "never", "HIVE_KAFKA_USER": "nobody",
           "HIVE_KAFKA_PASSWORD": "unused"}  # refused before any connection
    run = subprocess.run([sys.executable, "-m", "hive_streams.cli", "worker"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "HIVE_ALERT_RULES: high_cpu: threshold must be a float, not 'hot'" in run.stderr


def test_an_unknown_performance_target_is_refused_by_the_executor_cli():
    import argparse

    from hive_streams.cli import parse_target

    assert parse_target("max_response_seconds=2.5") == ("max_response_seconds", 2.5)
    for bad, named in (("speed=3", "unknown target 'speed'"), ("min_tokens_per_second=fast", "is not a number")):
        with pytest.raises(argparse.ArgumentTypeError, match=named):
            parse_target(bad)
