from hypothesis import given, settings, strategies as st

from hive_streams.domain import agent
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.matching import Market
from hive_streams.domain.model import Capability, Requirement

TIMEOUT = 10_000


def apply(state, cmd, now):
    events = agent.decide(cmd, state, now, TIMEOUT)
    for ev in events:
        state = agent.evolve(state, ev)
    return state, events


def registered(slots=1, caps=("echo",), now=0):
    state, _ = apply(agent.AgentState("a1"), c.RegisterAgent("a1", "r", now, "A", tuple(Capability(x) for x in caps), slots), now)
    return state


def test_slots_are_never_overbooked():
    state = registered(slots=1)
    state, ev1 = apply(state, c.ReserveSlot("a1", "1", 1, "t1"), 1)
    state, ev2 = apply(state, c.ReserveSlot("a1", "2", 2, "t2"), 2)
    assert type(ev1[0]) is e.SlotReserved
    assert type(ev2[0]) is e.SlotRefused and ev2[0].reason == "no free slot"
    state, _ = apply(state, c.ReleaseSlot("a1", "3", 3, "t1"), 3)
    state, ev4 = apply(state, c.ReserveSlot("a1", "4", 4, "t2"), 4)
    assert type(ev4[0]) is e.SlotReserved and state.holding == {"t2"}


def test_silent_agent_is_refused():
    state = registered()
    _, events = apply(state, c.ReserveSlot("a1", "1", TIMEOUT + 1, "t1"), TIMEOUT + 1)
    assert events[0].reason == "not online"


def _market_with(agents):
    m = Market()
    for agent_id, slots, caps in agents:
        m.observe(e.AgentRegistered(agent_id, 1, 0, agent_id, tuple(Capability(n, p) for n, p in caps), slots))
        m.observe(e.AgentStatusChanged(agent_id, 2, 0, "online"))
    return m


def test_priority_then_fifo_and_capabilities():
    m = _market_with([("cpu", 1, [("echo", 1.0)]), ("gpu", 1, [("echo", 1.0), ("gpu", 0.9)])])
    m.observe(e.TaskValidated("low", 2, 1, (Requirement("echo"),), priority=1))
    m.observe(e.TaskValidated("high", 2, 2, (Requirement("echo"),), priority=9))
    m.observe(e.TaskValidated("needs-gpu", 2, 3, (Requirement("gpu", 0.95),), priority=5))
    proposals = m.proposals(now=5, timeout_ms=TIMEOUT, retry_ms=1000)
    assert [(p.task_id, p.agent_id) for p in proposals] == [("high", "cpu"), ("low", "gpu")]
    assert m.proposals(now=6, timeout_ms=TIMEOUT, retry_ms=1000) == []  # everything proposed or unplaceable


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["echo", "gpu"])), min_size=1, max_size=6),
       st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["echo", "gpu"])), max_size=25))
def test_proposals_respect_free_slots_and_are_deterministic(agents, tasks):
    def build():
        m = _market_with([(f"a{i}", slots, [("echo", 1.0)] + ([("gpu", 1.0)] if cap == "gpu" else []))
                          for i, (slots, cap) in enumerate(agents)])
        for i, (prio, need) in enumerate(tasks):
            m.observe(e.TaskValidated(f"t{i}", 2, i, (Requirement(need),), priority=prio))
        return m
    first = build().proposals(100, TIMEOUT, 1000)
    assert first == build().proposals(100, TIMEOUT, 1000)
    per_agent = {}
    for p in first:
        per_agent[p.agent_id] = per_agent.get(p.agent_id, 0) + 1
    for i, (slots, cap) in enumerate(agents):
        assert per_agent.get(f"a{i}", 0) <= slots
    gpu_agents = {f"a{i}" for i, (_, cap) in enumerate(agents) if cap == "gpu"}
    for p in first:
        if tasks[int(p.task_id[1:])][1] == "gpu":
            assert p.agent_id in gpu_agents
