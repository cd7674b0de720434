"""The scheduler's shadow replay without a broker: recorded placements reproduced, other policies compared."""
from __future__ import annotations

from dataclasses import replace

from hive_streams.domain import events as e
from hive_streams.domain.matching import DEFAULT_POLICY, Policy
from hive_streams.domain.model import Capability, NodeSpec
from hive_streams.domain.shadow import differences, read_log, recorded_placements, simulate, summarise

TIMEOUT_MS = 10_000
EXPENSIVE = Policy({"cheapness": -1.0}, "expensive")


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


def test_the_recorded_policy_reproduces_the_recorded_placements():
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
