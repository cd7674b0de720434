"""The scheduler's shadow replay without a broker: recorded placements reproduced, other policies compared."""
from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hive_streams.domain import events as e
from hive_streams.domain.matching import DEFAULT_POLICY, Policy
from hive_streams.domain.model import Capability, NodeSpec
from hive_streams.domain.shadow import (Round, differences, in_reading_order, read_log as read_steps,
                                        recorded_placements, simulate, summarise)

from .marketplay import Agent, play

TIMEOUT_MS = 10_000
EXPENSIVE = Policy({"cheapness": -1.0}, "expensive")
FLEET = (Agent("cheap", 2, 0.5, 1.0, 1.0), Agent("dear", 1, 1.0, 0.6, 2.0), Agent("free", 1, 0.0, 0.8, 1.0))
SLOTS = sum(a.slots for a in FLEET)
BURSTS = st.lists(st.lists(st.tuples(st.sampled_from((0, 0, 1, 2)), st.integers(300, 900),  # (priority, run, deadline)
                                     st.sampled_from((None, 1500, 4000))), min_size=SLOTS + 1, max_size=2 * SLOTS),
                  min_size=2, max_size=5)  # bursts larger than the fleet's slots, 700 ms apart: tasks queue


def read_log(events):
    """A log written without round ids, each family on a partition of its own: a round after every event."""
    parts = {e.TaskEvent: 0, e.AgentEvent: 1, e.LedgerEvent: 2}
    return read_steps(in_reading_order([(next(p for cls, p in parts.items() if isinstance(ev, cls)), i, ev)
                                        for i, ev in enumerate(sorted(events, key=lambda ev: ev.at))]))


def recorded_run(rng: random.Random, bursts, restart_at):
    p = play(rng, FLEET, bursts, restart_at)
    return read_steps(in_reading_order(p.records()))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), BURSTS, st.sampled_from((None, 1200, 2600)))
def test_under_queueing_the_recorded_policy_makes_every_recorded_decision_again(rng, bursts, restart_at):
    log = recorded_run(rng, bursts, restart_at)
    recorded = recorded_placements(log)
    assert max(p.wait_ms for p in recorded.values()) >= 150  # queued behind a run (at least 300 ms at speed 2)
    assert simulate(log, DEFAULT_POLICY, TIMEOUT_MS) == recorded  # agents (every attempt), times, cost, misses


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), BURSTS, st.sampled_from((EXPENSIVE, Policy({"idleness": 1.0}, "idlest"))))
def test_under_queueing_another_policy_reports_differences_that_add_up(rng, bursts, policy):
    log = recorded_run(rng, bursts, None)
    base, shadow = simulate(log, DEFAULT_POLICY, TIMEOUT_MS), simulate(log, policy, TIMEOUT_MS)
    found, b, s = differences(base, shadow), summarise(base), summarise(shadow)
    assert len(found.same) + len(found.moved) == len(log.tasks) == s.tasks
    assert sum(s.per_agent.values()) + s.unplaced == s.tasks and s.unplaced == 0
    moved_to = {}
    for _, before, after in found.moved:
        moved_to[after] = moved_to.get(after, 0) + 1
        moved_to[before] = moved_to.get(before, 0) - 1
    assert all(s.per_agent.get(a, 0) - b.per_agent.get(a, 0) == moved_to.get(a, 0) for a in ("cheap", "dear", "free"))
    assert s.missed == b.missed + len(found.newly_missed) - len(found.no_longer_missed)
    assert found.waited_longer + found.waited_less <= s.tasks


def test_a_round_decides_over_exactly_what_it_had_read():
    submitted = [e.TaskSubmitted(f"acme:t{n}", 1, 100 + n, "t", "acme/ann", (), queued=True) for n in range(3)]
    answer = e.SlotReserved("a", 1, 130, "acme:t0", round_id="m/120/1,1,0")
    steps = in_reading_order([(0, 0, submitted[0]), (0, 1, submitted[2]), (1, 0, submitted[1]), (2, 0, answer)])
    assert steps == [submitted[0], submitted[1], Round("m/120/1,1,0", "m", 120, (1, 1, 0)), submitted[2], answer]


def agents(until: int) -> list:
    out = []
    for agent_id, proficiency, slots, price in (("a", 1.0, 2, 0.5), ("b", 0.6, 1, 1.0)):
        out += [e.AgentRegistered(agent_id, 1, 0, agent_id, (Capability("sleep", proficiency),), slots, price=price,
                                  public_key="k"),
                e.AgentStatusChanged(agent_id, 2, 0, "online")]
        out += [e.AgentHeartbeat(agent_id, 3 + i, t) for i, t in enumerate(range(1000, until, 1000))]
    return out


def task(n: int, at: int, placed: int, agent_id: str, run_ms: int, deadline: int | None = None) -> list:
    task_id = f"acme:t{n}"
    return [e.TaskSubmitted(task_id, 1, at, "t", "acme/ann", (NodeSpec("s", "sleep"),), deadline_at=deadline,
                            budget=2.0, queued=True),
            e.TaskAssigned(task_id, 2, placed, agent_id, 1, ()),
            e.TaskCompleted(task_id, 3, placed + run_ms, agent_id, ()),
            e.EscrowReleased("main", n, placed + run_ms, f"{task_id}:x", task_id, agent_id, 50 if agent_id == "a" else 100,
                             0, ())]


def one_at_a_time() -> list:
    """Tasks that each find every agent free: the recorded policy puts every one on `a`."""
    return agents(20_000) + [ev for n in range(6) for ev in task(n, 1000 + 2000 * n, 1005 + 2000 * n, "a", 300 + n)]


def test_a_log_without_round_ids_is_simulated_from_its_submissions():
    log = read_log(one_at_a_time())
    recorded, shadow = recorded_placements(log), simulate(log, DEFAULT_POLICY, TIMEOUT_MS)
    assert {t: p.agent_id for t, p in shadow.items()} == {t: p.agent_id for t, p in recorded.items()}
    assert all(p.ended_at - p.placed_at == log.tasks[t].run_ms for t, p in shadow.items())


def test_another_policy_moves_placements_and_the_counts_add_up():
    log = read_log(one_at_a_time())
    base, shadow = simulate(log, DEFAULT_POLICY, TIMEOUT_MS), simulate(log, EXPENSIVE, TIMEOUT_MS)
    found = differences(base, shadow)
    assert len(found.same) + len(found.moved) == len(log.tasks) == 6
    assert {(b, s) for _, b, s in found.moved} == {("a", "b")}
    assert summarise(shadow).per_agent == {"b": 6} and summarise(shadow).cost == 6 * 100
    assert summarise(base).cost == 6 * 50


def test_under_contention_waits_and_deadline_misses_follow_the_policy():
    burst = agents(20_000) + [ev for n in range(4) for ev in task(n, 1000, 1000, "a", 500, deadline=1600)]
    log = read_log(burst)
    base, shadow = simulate(log, DEFAULT_POLICY, TIMEOUT_MS), simulate(log, EXPENSIVE, TIMEOUT_MS)
    assert summarise(base).per_agent == {"a": 3, "b": 1}  # two on a, one on b, the fourth after a's first ends
    assert summarise(base).missed == 1 and summarise(base).p95_wait_ms == 500
    found = differences(base, shadow)
    assert len(found.same) + len(found.moved) == 4
    missed = summarise(shadow).missed
    assert missed == summarise(base).missed + len(found.newly_missed) - len(found.no_longer_missed)
    assert found.waited_longer + found.waited_less <= 4


def test_an_agent_that_goes_silent_gets_nothing():
    events = agents(3000) + [ev for n in range(2) for ev in task(n, 20_000 + n, 20_005, "a", 100)]
    shadow = simulate(read_log(events), DEFAULT_POLICY, TIMEOUT_MS)
    assert {p.agent_id for p in shadow.values()} == {None}


def test_policies_load_by_name_weights_or_module():
    import pytest
    from hive_streams.exceptions import ConfigError
    from hive_streams.replay.shadow import FunctionPolicy, load_policy
    assert load_policy("recorded") is DEFAULT_POLICY
    assert load_policy("weights:cheapness=0.8,idleness=0.2").weights == {"cheapness": 0.8, "idleness": 0.2}
    module = load_policy("tests.shadow_policy")
    assert isinstance(module, FunctionPolicy) and module.score(None, agents(0)[0], 0.5, 1) == 0.5
    for bad in ("weights:speed=1", "weights:cheapness=lots", "no.such.module", "tests.shadow_policy:missing"):
        with pytest.raises(ConfigError):
            load_policy(bad)


def test_a_pin_places_a_task_no_policy_would():
    from hive_streams.domain.model import Requirement
    submitted, assigned, completed, released = task(9, 1000, 1500, "a", 100)
    events = agents(20_000) + [replace(submitted, requires=(Requirement("gpu", 0.5),)),
                               e.TaskPinned("acme:t9", 2, 1400, "a"), replace(assigned, seq=3),
                               replace(completed, seq=4), released]
    for policy in (DEFAULT_POLICY, EXPENSIVE):
        placed = simulate(read_log(events), policy, TIMEOUT_MS)["acme:t9"]
        assert (placed.agent_id, placed.placed_at, placed.wait_ms) == ("a", 1400, 400)
    assert simulate(read_log([ev for ev in events if not isinstance(ev, e.TaskPinned)]), DEFAULT_POLICY,
                    TIMEOUT_MS)["acme:t9"].agent_id is None
