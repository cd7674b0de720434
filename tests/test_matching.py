from hypothesis import given, settings, strategies as st

from hive_streams.domain import agent
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.matching import BUSY, Market, Need, ineligible, score
from hive_streams.domain.model import Capability, Hardware, Requirement

TIMEOUT = 10_000


def market(agents):
    m = Market()
    for agent_id, slots, caps, extra in agents:
        m.observe(e.AgentRegistered(agent_id, 1, 0, agent_id, tuple(Capability(n, p) for n, p in caps), slots, **extra))
        m.observe(e.AgentStatusChanged(agent_id, 2, 0, "online"))
    return m


def validated(task_id, at, priority=0, requires=("echo",), **need):
    return e.TaskValidated(task_id, 2, at, tuple(Requirement(*r) if isinstance(r, tuple) else Requirement(r) for r in requires),
                           priority, **need)


def reserved(proposals):
    return [(p.task_id, p.agent_id) for p in proposals if isinstance(p, c.ReserveSlot)]


def test_priority_then_fifo_capabilities_and_waiting_reasons():
    m = market([("cpu", 1, [("echo", 1.0)], {}), ("gpu", 1, [("echo", 1.0), ("gpu", 0.9)], {})])
    m.observe(validated("low", 1, priority=1))
    m.observe(validated("high", 2, priority=9))
    m.observe(validated("needs-gpu", 3, priority=5, requires=("echo", ("gpu", 0.95))))
    m.observe(validated("late", 4, priority=1))
    proposals = m.proposals(now=5, timeout_ms=TIMEOUT, retry_ms=1000)
    assert reserved(proposals) == [("high", "cpu"), ("low", "gpu")]  # equal scores: agent id breaks the tie
    notes = {p.task_id: p.reason for p in proposals if isinstance(p, c.NoteWaiting)}
    assert "capability 'gpu' at 0.90 < 0.95" in notes["needs-gpu"]
    assert "late" not in notes  # a queue behind busy agents is no news: no event for it
    assert m.proposals(now=6, timeout_ms=TIMEOUT, retry_ms=1000) == []  # reasons are noted once
    m.observe(e.AgentRegistered("gpu2", 1, 7, "gpu2", (Capability("echo"), Capability("gpu", 0.96)), 1))
    m.observe(e.AgentStatusChanged("gpu2", 2, 7, "online"))
    m.observe(e.SlotReserved("gpu2", 3, 7, "other"))  # an agent that could serve needs-gpu, but busy
    again = {p.task_id: p.reason for p in m.proposals(now=8, timeout_ms=TIMEOUT, retry_ms=1000)
             if isinstance(p, c.NoteWaiting)}
    assert again == {"needs-gpu": BUSY}  # a noted reason that is no longer true is replaced


def test_hardware_price_and_liveness_decide_eligibility():
    big = agent.AgentState("big", status="online", capabilities=(Capability("echo"),), slots=1, price=2.0,
                           hardware=Hardware("a100", 80, 32, 256), last_seen=0, public_key="k")
    need = Need((Requirement("echo"),), Hardware("a100", 40), budget=5.0)
    assert ineligible(need, big, 0, TIMEOUT) == ""
    assert "vram_gb" in ineligible(Need(hardware=Hardware(vram_gb=96)), big, 0, TIMEOUT)
    assert "gpu 'h100'" in ineligible(Need(hardware=Hardware("h100")), big, 0, TIMEOUT)
    assert "over budget" in ineligible(Need(budget=1.0), big, 0, TIMEOUT)
    assert ineligible(need, big, TIMEOUT + 1, TIMEOUT) == "no live agent"


def test_score_prefers_proficient_reputable_cheap_idle_agents():
    need = Need((Requirement("echo"),), budget=10.0)
    base = dict(status="online", slots=2, last_seen=0)
    good = agent.AgentState("a", capabilities=(Capability("echo", 0.9),), price=1.0, **base)
    weak = agent.AgentState("b", capabilities=(Capability("echo", 0.5),), price=1.0, **base)
    pricey = agent.AgentState("c", capabilities=(Capability("echo", 0.9),), price=9.0, **base)
    assert score(need, good, 0.7, 2) > score(need, weak, 0.7, 2)
    assert score(need, good, 0.7, 2) > score(need, pricey, 0.7, 2)
    assert score(need, good, 0.9, 2) > score(need, good, 0.5, 2)
    assert score(need, good, 0.7, 2) > score(need, good, 0.7, 1)


def test_retry_goes_to_a_different_agent_when_one_exists_and_not_before_its_time():
    m = market([("a", 1, [("echo", 1.0)], {}), ("b", 1, [("echo", 0.5)], {})])
    m.observe(validated("t", 1))
    assert reserved(m.proposals(2, TIMEOUT, 1000)) == [("t", "a")]
    m.observe(e.TaskAssigned("t", 3, 3, "a", 1, ()))
    m.observe(e.TaskRetryScheduled("t", 4, 4, "a", 1, "node x failed", not_before=100))
    assert reserved(m.proposals(50, TIMEOUT, 1000)) == []
    assert reserved(m.proposals(100, TIMEOUT, 1000)) == [("t", "b")]


def test_pinned_task_waits_for_its_agent():
    m = market([("a", 1, [("echo", 1.0)], {}), ("b", 1, [("echo", 1.0)], {})])
    m.observe(validated("t", 1))
    m.observe(e.TaskPinned("t", 3, 2, "b"))
    assert reserved(m.proposals(3, TIMEOUT, 1000)) == [("t", "b")]


def test_reputation_comes_from_task_events():
    m = market([("a", 1, [("echo", 1.0)], {})])
    before = m.reputation("a")
    m.observe(e.TaskCompleted("t1", 5, 1, "a", ()))
    assert m.reputation("a") > before
    m.observe(e.TaskFailed("t2", 5, 1, "deadline_exceeded", "a"))
    m.observe(e.TaskRetryScheduled("t3", 5, 1, "a", 1, "node n failed: x", 0))
    assert m.records["a"].late == 1 and m.records["a"].failed == 1


@settings(max_examples=80, deadline=None)
@given(agents=st.lists(st.tuples(st.integers(1, 3), st.booleans()), min_size=1, max_size=5),
       tasks=st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=30),
       finish=st.lists(st.integers(0, 29), max_size=15))
def test_capacity_is_never_exceeded_priorities_hold_and_results_are_deterministic(agents, tasks, finish):
    """Simulates matcher proposals through the agent aggregate's slot protocol over several rounds."""
    def run():
        m = market([(f"a{i}", slots, [("echo", 1.0)] + ([("gpu", 1.0)] if gpu else []), {})
                    for i, (slots, gpu) in enumerate(agents)])
        states = {f"a{i}": m.agents[f"a{i}"] for i in range(len(agents))}
        for i, (prio, gpu) in enumerate(tasks):
            m.observe(validated(f"t{i}", i, prio, requires=("echo", "gpu") if gpu else ("echo",)))
        log, now = [], 100
        for round_ in range(4):
            proposals = m.proposals(now, TIMEOUT, retry_ms=1)
            placed = reserved(proposals)
            placed_ids = {t for t, _ in placed}
            for t, _ in placed:  # nothing of higher priority with the same needs was left waiting
                mine = tasks[int(t[1:])]
                assert not any(tasks[int(w.task_id[1:])] [1] == mine[1] and tasks[int(w.task_id[1:])][0] > mine[0]
                               and w.task_id not in placed_ids for w in m.queued() if not w.proposed_to)
            for p in proposals:
                if isinstance(p, c.ReserveSlot):
                    events = agent.decide(p, states[p.agent_id], now, TIMEOUT)
                    for ev in events:
                        states[p.agent_id] = agent.evolve(states[p.agent_id], ev)
                        m.observe(ev)
                    assert len(states[p.agent_id].holding) <= states[p.agent_id].slots
                    if events and isinstance(events[0], e.SlotReserved):
                        need_gpu = tasks[int(p.task_id[1:])][1]
                        assert not need_gpu or agents[int(p.agent_id[1:])][1]
                        m.observe(e.TaskAssigned(p.task_id, 3, now, p.agent_id, 1, ()))
                        log.append((p.task_id, p.agent_id))
            for k in finish[round_::4]:  # some tasks end and free their slots
                for aid, st_ in states.items():
                    if f"t{k}" in st_.holding:
                        ev = agent.decide(c.ReleaseSlot(aid, "r", now, f"t{k}"), st_, now, TIMEOUT)[0]
                        states[aid] = agent.evolve(st_, ev)
                        m.observe(ev)
                        m.observe(e.TaskCompleted(f"t{k}", 9, now, aid, ()))
            now += 10
        return log
    assert run() == run()


def test_a_pin_overrides_capabilities_but_not_liveness():
    m = market([("plain", 1, [("echo", 1.0)], {})])
    m.observe(validated("t", 1, requires=("special",)))
    assert reserved(m.proposals(2, TIMEOUT, 1000)) == []
    m.observe(e.TaskPinned("t", 3, 3, "plain"))
    assert reserved(m.proposals(4, TIMEOUT, 1000)) == [("t", "plain")]
    m.observe(e.TaskPinned("t2", 3, 3, "plain"))  # unknown task: ignored
    assert reserved(m.proposals(TIMEOUT + 10, TIMEOUT, 1000)) == []


def test_a_keyless_agent_is_never_offered_priced_work():
    m = market([("keyless", 1, [("echo", 1.0)], {"price": 1.0}), ("free", 1, [("echo", 0.5)], {}),
                ("keyed", 1, [("echo", 0.5)], {"price": 1.0, "public_key": "k"})])
    assert "no key" in ineligible(Need(), m.agents["keyless"], 0, TIMEOUT)
    assert ineligible(Need(), m.agents["free"], 0, TIMEOUT) == ""
    m.observe(validated("t1", 1, requester="r"))
    m.observe(validated("t2", 2, requester="r"))
    m.observe(validated("t3", 3, requester="r"))
    offers = [p for p in m.proposals(4, TIMEOUT, 1000) if isinstance(p, (c.ReserveSlot, c.HoldEscrow))]
    assert sorted(p.agent_id for p in offers) == ["free", "keyed"]


def test_a_pin_does_not_override_the_key_priced_work_needs():
    m = market([("keyless", 1, [("echo", 1.0)], {"price": 1.0})])
    m.observe(validated("t", 1))
    m.observe(e.TaskPinned("t", 3, 2, "keyless"))
    proposals = m.proposals(3, TIMEOUT, 1000)
    assert [p.reason for p in proposals if isinstance(p, c.NoteWaiting)] == ["no eligible agent: keyless: no key for priced work"]


def test_a_slot_is_offered_again_once_its_release_is_committed_not_when_it_lands():
    m = market([("solo", 1, [("echo", 1.0)], {})])
    m.observe(e.SlotReserved("solo", 3, 1, "t1"))
    m.observe(validated("t1", 1))
    m.observe(e.TaskAssigned("t1", 3, 2, "solo", 1, ()))
    m.observe(validated("t2", 3))
    assert reserved(m.proposals(now=4, timeout_ms=TIMEOUT, retry_ms=1000)) == []  # the one slot is taken
    # the completion's ReleaseSlot was written with it, so an offer sent now reaches the agent after it
    m.observe(e.TaskCompleted("t1", 4, 5, "solo", ()))
    assert reserved(m.proposals(now=6, timeout_ms=TIMEOUT, retry_ms=1000)) == [("t2", "solo")]
    m.observe(e.SlotReleased("solo", 4, 7, "t1"))
    m.observe(e.SlotReserved("solo", 5, 8, "t2"))
    assert m.releasing("solo") == set() and m._free(9, TIMEOUT) == {"solo": 0}  # counted once, not twice


@given(st.permutations(range(2)))
def test_an_assignment_read_before_its_slot_still_takes_the_slot(order):
    """One worker writes `SlotReserved` and `TaskAssigned` in one transaction: the matcher may read the task's
    partition first. The assigned task is no longer waiting, yet its slot must not be offered to another."""
    m = market([("solo", 1, [("echo", 1.0)], {})])
    m.observe(validated("t1", 1))
    assert reserved(m.proposals(now=2, timeout_ms=TIMEOUT, retry_ms=1000)) == [("t1", "solo")]
    m.observe(validated("t2", 3))
    first, second = [[e.TaskAssigned("t1", 3, 4, "solo", 1, ()), e.SlotReserved("solo", 3, 4, "t1")][i] for i in order]
    m.observe(first)
    assert reserved(m.proposals(now=5, timeout_ms=TIMEOUT, retry_ms=1000)) == [] and m._free(5, TIMEOUT) == {"solo": 0}
    m.observe(second)
    assert reserved(m.proposals(now=6, timeout_ms=TIMEOUT, retry_ms=1000)) == [] and m._free(6, TIMEOUT) == {"solo": 0}
    m.observe(e.TaskCompleted("t1", 4, 7, "solo", ()))
    m.observe(e.SlotReleased("solo", 4, 8, "t1"))
    assert reserved(m.proposals(now=9, timeout_ms=TIMEOUT, retry_ms=1000)) == [("t2", "solo")]


def test_once_a_round_has_offered_the_last_free_slot_the_tasks_noted_busy_behind_it_are_not_weighed_again():
    class Counting(Market):
        weighed = 0

        def weigh(self, w, free, now, timeout_ms):
            self.weighed += 1
            return super().weigh(w, free, now, timeout_ms)

    m = Counting()
    m.observe(e.AgentRegistered("solo", 1, 0, "solo", (Capability("echo", 1.0),), 1))
    m.observe(e.AgentStatusChanged("solo", 2, 0, "online"))
    for n in range(1, 51):
        m.observe(validated(f"t{n}", n))
    assert reserved(m.proposals(now=60, timeout_ms=TIMEOUT, retry_ms=1000)) == [("t1", "solo")]
    assert m.weighed == 50 and all(m.waiting[f"t{n}"].noted.startswith(BUSY) for n in range(2, 51))
    m.observe(e.SlotReserved("solo", 3, 61, "t1"))
    m.observe(e.TaskAssigned("t1", 3, 62, "solo", 1, ()))
    m.observe(e.TaskCompleted("t1", 4, 63, "solo", ()))  # its slot can be offered again
    m.weighed = 0
    assert reserved(m.proposals(now=64, timeout_ms=TIMEOUT, retry_ms=1000)) == [("t2", "solo")]
    assert m.weighed == 1  # t2 took the slot; t3..t50 are still busy, and nothing free could change that


def test_an_ending_seen_after_its_slot_came_back_frees_nothing_more():
    m = market([("solo", 1, [("echo", 1.0)], {})])
    m.observe(e.SlotReserved("solo", 3, 1, "t1"))
    m.observe(e.SlotReleased("solo", 4, 2, "t1"))  # the agent partition was read ahead of the task partition
    m.observe(validated("t1", 1))
    m.observe(e.TaskCompleted("t1", 3, 5, "solo", ()))
    assert m._free(6, TIMEOUT) == {"solo": 1}


def test_a_pin_never_holds_more_than_the_budget():
    m = market([("priced", 1, [("echo", 1.0)], {"price": 2.0, "public_key": "k"}),
                ("free", 1, [("echo", 1.0)], {})])
    m.observe(validated("no-budget", 1, requester="acme/dev"))
    m.observe(validated("small", 2, requester="acme/dev", budget=1.0))
    m.observe(validated("enough", 3, requester="acme/dev", budget=2.0))
    for seq, task_id in enumerate(("no-budget", "small", "enough"), start=3):
        m.observe(e.TaskPinned(task_id, seq, 4, "priced"))
    proposals = m.proposals(5, TIMEOUT, 1000)
    notes = {p.task_id: p.reason for p in proposals if isinstance(p, c.NoteWaiting)}
    assert notes == {"no-budget": "no eligible agent: priced: price 2.0 and the task has no budget",
                     "small": "no eligible agent: priced: price 2.0 over budget 1.0"}
    holds = [p for p in proposals if isinstance(p, c.HoldEscrow)]
    assert [(h.task_id, h.amount) for h in holds] == [("enough", 200)]  # the escrow is within the budget
    m.observe(e.TaskPinned("no-budget", 9, 6, "free"))  # a free agent may take a task without a budget
    assert reserved(m.proposals(7, TIMEOUT, 1000)) == [("no-budget", "free")]


def test_the_matcher_forgets_a_tasks_correlation_when_the_task_ends():
    from types import SimpleNamespace
    from hive_streams.codec import default_codec
    from hive_streams.settings import Settings
    from hive_streams.streams.matcher import Matcher
    from hive_streams.topics import Topics
    codec = default_codec()
    matcher = Matcher(codec, Topics("m"), Settings(), 10_000)

    def observe(event, correlation):
        matcher.observe(SimpleNamespace(topic="m.task-events", partition=0, offset=0, value=codec.encode(event),
                                         headers=[("ce_correlationid", correlation)]))
    observe(validated("acme:t", 1), b"req-1")
    assert matcher.correlations == {"acme:t": "req-1"}
    observe(e.TaskCompleted("acme:t", 3, 2, agent_id="a", outputs=()), b"req-1")
    assert matcher.correlations == {}
    # the agent's answer to the task, read after its end from another partition, brings nothing back
    matcher.observe(SimpleNamespace(topic="m.agent-events", partition=0, offset=0, headers=[
        ("ce_correlationid", b"req-1"), ("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")],
        value=codec.encode(e.SlotReleased("a", 4, 3, task_id="acme:t"))))
    assert matcher.correlations == {} and matcher.traces == {}
def test_an_offer_with_impossible_values_recorded_earlier_never_breaks_a_round():
    m = market([("nan", 1, [("echo", 1.0)], {"price": float("nan"), "public_key": "k"}),
                ("huge", 1, [("echo", 1.0)], {"price": 1e300, "public_key": "k"}),
                ("fine", 1, [("echo", 0.5)], {})])
    m.observe(validated("t1", 1, requester="r", budget=10.0))
    assert reserved(m.proposals(2, TIMEOUT, 1000)) == [("t1", "fine")]
    assert m.agents["nan"].price == 0.0 and m.agents["huge"].capabilities == ()  # their offers were never taken


def read_in(order, events):
    """A market that read `events` in the given order of their indexes."""
    m = market([("solo", 1, [("echo", 1.0)], {}), ("spare", 1, [("echo", 0.5)], {})])
    for i in order:
        m.observe(events[i])
    return m


def decision(m, now=20):
    return reserved(m.proposals(now=now, timeout_ms=TIMEOUT, retry_ms=1000)), m._free(now, TIMEOUT)


@given(st.permutations(range(6)))
def test_what_a_round_decides_does_not_depend_on_which_partition_was_read_first(order):
    # task partition: t1's two attempts on solo, the first failing; agent partition: solo's slots and a refusal
    task_events = [validated("t1", 1), e.TaskAssigned("t1", 3, 3, "solo", 1, ()),
                   e.TaskRetryScheduled("t1", 4, 5, "solo", 1, "boom", 6), e.TaskAssigned("t1", 5, 8, "solo", 2, ()),
                   e.TaskCompleted("t1", 6, 9, "solo", ())]
    agent_events = [e.SlotReserved("solo", 3, 2, "t1"), e.SlotReleased("solo", 4, 6, "t1"),
                    e.SlotReserved("solo", 5, 7, "t1")]
    others = [validated("t2", 10), validated("t0", 10), e.SlotRefused("spare", 3, 11, "t2", "no free slot")]
    groups = [task_events, agent_events, others[:1], others[1:2], others[2:], []]
    merged = [ev for i in order for ev in groups[i]]
    straight = [ev for group in groups for ev in group]
    assert decision(read_in(range(len(merged)), merged)) == decision(read_in(range(len(straight)), straight))


def test_the_queue_is_ordered_by_priority_then_queue_time_then_task_id_not_by_reading_order():
    for first, second in ((validated("b", 5), validated("a", 5)), (validated("a", 5), validated("b", 5))):
        m = market([("solo", 1, [("echo", 1.0)], {})])
        m.observe(second)
        m.observe(first)
        m.observe(validated("z", 4))
        assert [w.task_id for w in m.queued()] == ["z", "a", "b"]


@given(st.permutations(range(3)))
def test_a_finished_tasks_slot_counts_are_forgotten_whichever_partition_was_read_last(order):
    # a first attempt declined at solo, a second completed at duo: every count goes once the task is over
    task_events = [validated("t1", 1), e.TaskAssignmentDeclined("t1", 3, 3, "solo", "busy"),
                   e.TaskAssigned("t1", 4, 5, "duo", 1, ()), e.TaskCompleted("t1", 5, 6, "duo", ())]
    solo = [e.SlotReserved("solo", 3, 2, "t1"), e.SlotReleased("solo", 4, 4, "t1")]
    duo = [e.SlotReserved("duo", 3, 4, "t1"), e.SlotReleased("duo", 4, 7, "t1")]
    m = market([("solo", 1, [("echo", 1.0)], {}), ("duo", 2, [("echo", 1.0)], {})])
    for i in order:
        for event in (task_events, solo, duo)[i]:
            m.observe(event)
    assert (m.reserves, m.ends, m.assigns, m.slot_agents) == ({}, {}, {}, {})
    assert m._free(8, TIMEOUT) == {"solo": 1, "duo": 2}
    assert (m.task_seq, m.needs, m.waiting, m.tried, m.refused) == ({}, {}, {}, {}, {})  # nothing of it is kept


@given(st.lists(st.sampled_from(range(3)), min_size=14, max_size=14))
def test_slot_counts_follow_any_interleaving_of_the_partitions_and_end_empty(picks):
    # two attempts of one task at one agent (the first retried): the task's and the agent's partition read in
    # any interleaving that keeps each partition's order, and a third partition with another agent's beats
    partitions = [[validated("t1", 1), e.TaskAssigned("t1", 3, 3, "solo", 1, ()),
                   e.TaskRetryScheduled("t1", 4, 5, "solo", 1, "boom", 6), e.TaskAssigned("t1", 5, 8, "solo", 2, ()),
                   e.TaskCompleted("t1", 6, 9, "solo", ())],
                  [e.SlotReserved("solo", 3, 2, "t1"), e.SlotReleased("solo", 4, 6, "t1"),
                   e.SlotReserved("solo", 5, 7, "t1"), e.SlotReleased("solo", 6, 10, "t1")],
                  [e.AgentHeartbeat("spare", 3 + i, 2 + i) for i in range(5)]]
    m, left = market([("solo", 1, [("echo", 1.0)], {}), ("spare", 1, [("echo", 0.5)], {})]), [0, 0, 0]
    for pick in picks + [0, 1, 2] * 5:
        if left[pick] < len(partitions[pick]):
            m.observe(partitions[pick][left[pick]])
            left[pick] += 1
    assert (m.reserves, m.ends, m.assigns, m.slot_agents, m.task_seq, m.waiting) == ({}, {}, {}, {}, {}, {})
    assert m._free(11, TIMEOUT)["solo"] == 1


@given(st.permutations(range(2)))
def test_a_refusal_read_after_its_tasks_end_is_not_kept(order):
    """The task's partition (its end) and the refusing agent's, read in either order: what a snapshot keeps is the
    same."""
    m = market([("solo", 1, [("echo", 1.0)], {}), ("spare", 1, [("echo", 0.5)], {})])
    partitions = [[validated("t1", 1), e.TaskAssigned("t1", 3, 4, "solo", 1, ()), e.TaskCompleted("t1", 4, 6, "solo", ())],
                  [e.SlotRefused("spare", 3, 2, "t1", "no free slot")]]
    for i in order:
        for event in partitions[i]:
            m.observe(event)
    m.forget_ended()
    assert m.refused == {}
    live = market([("spare", 1, [("echo", 0.5)], {})])
    live.observe(validated("t2", 1))
    live.observe(e.SlotRefused("spare", 3, 2, "t2", "no free slot"))
    live.forget_ended()
    assert live.refused == {"t2": frozenset({"spare"})}  # a waiting task's refusals stay


def lost_and_back(slots_after: int = 2) -> Market:
    """An agent with two slots runs t1 and t2, falls silent (its holds kept until each task's release), comes back
    with `slots_after` slots, and the matcher reads both retries before either release."""
    m = market([("solo", 2, [("echo", 1.0)], {})])
    for n, task in enumerate(("t1", "t2")):
        m.observe(validated(task, 1 + n))
        m.observe(e.SlotReserved("solo", 3 + n, 2, task))
        m.observe(e.TaskAssigned(task, 3, 3, "solo", 1, ()))
    m.observe(e.AgentStatusChanged("solo", 5, 4, "offline", "no heartbeat", ("t1", "t2"), holds_kept=True))
    m.observe(e.AgentRegistered("solo", 6, 5, "solo", (Capability("echo", 1.0),), slots_after))
    m.observe(e.AgentStatusChanged("solo", 7, 5, "online"))
    for task in ("t1", "t2"):
        m.observe(e.TaskRetryScheduled(task, 4, 6, "solo", 1, "agent solo went offline", 6))
    return m


def test_an_offer_of_a_lost_task_back_to_its_agent_takes_a_slot_before_its_old_hold_is_released():
    m = lost_and_back()
    m.observe(validated("t3", 7))
    first = reserved(m.proposals(now=8, timeout_ms=TIMEOUT, retry_ms=1000))
    assert len(first) == 2 and m._free(8, TIMEOUT) == {"solo": 0}
    assert reserved(m.proposals(now=9, timeout_ms=TIMEOUT, retry_ms=1000)) == []  # not a third offer for two slots


def test_an_agent_back_with_fewer_slots_than_it_held_is_offered_only_those():
    m = lost_and_back(slots_after=1)
    assert m._free(7, TIMEOUT) == {"solo": 1}
    assert len(reserved(m.proposals(now=8, timeout_ms=TIMEOUT, retry_ms=1000))) == 1


def test_a_decline_read_after_its_task_ended_and_its_slot_came_back_leaves_no_count_behind():
    m = market([("solo", 1, [("echo", 1.0)], {})])
    m.observe(validated("t1", 1))
    m.observe(e.SlotReserved("solo", 3, 2, "t1"))  # an offer the task had no use for: it was cancelled meanwhile
    m.observe(e.TaskCancelled("t1", 3, 3))
    m.observe(e.SlotReleased("solo", 4, 5, "t1"))
    m.observe(e.TaskAssignmentDeclined("t1", 4, 4, "solo", "task is cancelled"))
    assert (m.reserves, m.ends, m.slot_agents) == ({}, {}, {})
