"""The market's queue keeps its order and sets through every change, and a round over it proposes exactly what a
round over every waiting task, sorted, proposed."""
from __future__ import annotations

import copy
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hive_streams.domain import agent as agent_agg
from hive_streams.domain import commands as c
from hive_streams.domain.matching import Market, Need, Waiting
from hive_streams.domain.model import Capability, Hardware, Requirement
from hive_streams.domain.queue import BULK, BUSY, WaitingQueue, order_key

NOW = 1_000_000
TIMEOUT_MS = 10_000
RETRY_MS = 5_000
NOTES = ("", BUSY, f"{BUSY} (pinned to a1)", "no eligible agent: a0: lacks gpu")
ECHO, GPU = Need((Requirement("echo"),)), Need((Requirement("gpu"),), priority=2)


def waiting_of(i: int, priority: int, queued_at: int, noted: str, proposed: str | None, later: bool) -> Waiting:
    need = replace(ECHO, priority=priority) if i % 5 else GPU
    return Waiting(f"t{i}", need, queued_at, not_before=NOW + 1 if later else 0, noted=noted, proposed_to=proposed,
                   proposed_at=NOW - RETRY_MS * (i % 3))


WAITS = st.builds(waiting_of, st.integers(0, 30), st.integers(0, 3), st.integers(0, 5), st.sampled_from(NOTES),
                  st.sampled_from((None, "a0", "a1")), st.booleans())


def check(q: WaitingQueue) -> None:
    assert list(q.order) == sorted(order_key(w) for w in q.values())
    assert q.keys_of == {t: order_key(w) for t, w in q.items()}
    assert list(q.unsettled) == sorted(order_key(w) for t, w in q.items()
                                       if not w.noted.startswith(BUSY) and t not in q.settled)
    assert list(q.loose) == sorted(order_key(w) for t, w in q.items() if w.noted.startswith(BUSY) and t not in q.settled)
    assert q.settled.keys() <= q.keys()
    assert {agents: list(keys) for agents, keys in q.groups.items()} == {
        agents: sorted(q.keys_of[t] for t, a in q.settled.items() if a == agents) for agents in set(q.settled.values())}
    assert q.proposed == {t for t, w in q.items() if w.proposed_to}


OPS = st.lists(st.one_of(
    st.tuples(st.just("set"), WAITS), st.tuples(st.just("pop"), st.integers(0, 30)),
    st.tuples(st.just("del"), st.integers(0, 30)), st.tuples(st.just("update"), st.lists(WAITS, max_size=4)),
    st.tuples(st.just("setdefault"), WAITS), st.tuples(st.just("popitem"), st.none()),
    st.tuples(st.just("clear"), st.none()),
    st.tuples(st.just("settle"), st.tuples(st.integers(0, 30), st.frozensets(st.sampled_from(("a0", "a1"))))),
    st.tuples(st.just("unsettle"), st.none())), max_size=40)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_every_change_keeps_the_order_and_the_sets(ops):
    q, plain = WaitingQueue(), {}
    for op, arg in ops:
        if op == "set":
            q[arg.task_id] = plain[arg.task_id] = arg
        elif op in ("pop", "del"):
            if op == "pop":
                assert q.pop(f"t{arg}", None) == plain.pop(f"t{arg}", None)
            elif f"t{arg}" in plain:
                del q[f"t{arg}"], plain[f"t{arg}"]
        elif op == "update":
            q.update({w.task_id: w for w in arg})
            plain.update({w.task_id: w for w in arg})
        elif op == "setdefault":
            assert q.setdefault(arg.task_id, arg) == plain.setdefault(arg.task_id, arg)
        elif op == "popitem" and plain:
            assert q.popitem() == plain.popitem()
        elif op == "clear":
            q.clear(), plain.clear()
        elif op == "settle" and f"t{arg[0]}" in plain:
            q.settle(f"t{arg[0]}", arg[1])
        elif op == "unsettle":
            q.unsettle()
            assert not q.settled and not q.groups
        check(q)
        assert q == plain and list(q) == list(plain)
    check(copy.deepcopy(q))


@settings(max_examples=50, deadline=None)
@given(st.lists(WAITS, max_size=10), st.lists(st.builds(waiting_of, st.integers(0, 200), st.integers(0, 3),
                                                        st.integers(0, 5), st.sampled_from(NOTES),
                                                        st.sampled_from((None, "a0")), st.booleans()),
                                              min_size=BULK, max_size=150))
def test_many_at_once_are_sorted_in_with_those_held(first, many):
    q = WaitingQueue({w.task_id: w for w in first})
    q.update({w.task_id: w for w in many})
    check(q)
    assert q == {**{w.task_id: w for w in first}, **{w.task_id: w for w in many}}


def test_a_market_holds_its_waiting_tasks_in_a_queue_whatever_dict_it_is_given():
    w = waiting_of(1, 0, 0, "", None, False)
    market = Market(waiting={"t1": w})
    assert type(market.waiting) is WaitingQueue and market.queued() == [w]
    market.waiting = {}
    assert type(market.waiting) is WaitingQueue and market.queued() == []


def agent(agent_id: str, slots: int, holding: frozenset[str], online: bool, can: tuple[str, ...] = ("echo",)
          ) -> agent_agg.AgentState:
    state = agent_agg.AgentState(agent_id)
    for event in agent_agg.decide(c.RegisterAgent(agent_id, f"r-{agent_id}", NOW, name=agent_id,
                                                  capabilities=tuple(map(Capability, can)), slots=slots),
                                  state, NOW, 60_000):
        state = agent_agg.evolve(state, event)
    return replace(state, holding=holding, status="online" if online else "offline")


AGENTS = st.lists(st.tuples(st.integers(0, 3), st.sets(st.sampled_from([f"t{i}" for i in range(31)]), max_size=3),
                            st.booleans(), st.sampled_from((("echo",), ("gpu",), ("echo", "gpu")))),
                  min_size=0, max_size=3)


def reference_round(market: Market, now: int = NOW) -> list:
    """The round as it was before the queue: every waiting task, sorted, walked from the front, every one asked."""
    releasing = {a: market.releasing(a) for a in market.agents}
    pending: dict[str, int] = {}
    for w in market.waiting.values():
        if w.proposed_to and (w.proposed_to not in market.agents or w.task_id not in market.agents[w.proposed_to].holding
                              or w.task_id in releasing[w.proposed_to]):
            pending[w.proposed_to] = pending.get(w.proposed_to, 0) + 1
    for (agent_id, task_id), assigned in market.assigns.items():
        pending[agent_id] = pending.get(agent_id, 0) + max(0, assigned - market.reserves.get((agent_id, task_id), 0))
    free = {a.agent_id: a.slots - len(a.holding) + len(releasing[a.agent_id]) - pending.get(a.agent_id, 0)
            for a in market.agents.values() if a.live(now, TIMEOUT_MS)}
    held = set().union(*(a.holding - releasing[a.agent_id] for a in market.agents.values()))
    out: list = []
    full = all(n <= 0 for n in free.values())
    for w in sorted(market.waiting.values(), key=lambda w: (-w.need.priority, w.queued_at, w.task_id)):
        if now < w.not_before or (w.proposed_to and now - w.proposed_at < RETRY_MS):
            continue
        if w.task_id in held:
            continue
        if full and w.noted.startswith(BUSY):
            continue
        agent_id, reason = market.choose(w, free, now, TIMEOUT_MS)
        if agent_id is None:
            if reason != w.noted:
                if w.noted or not reason.startswith(BUSY):
                    out.append(c.NoteWaiting(w.task_id, f"wait:{w.task_id}:{now}", now, reason))
                market.waiting[w.task_id] = replace(w, noted=reason)
            continue
        free[agent_id] -= 1
        if free[agent_id] <= 0:
            full = all(n <= 0 for n in free.values())
        market.waiting[w.task_id] = replace(w, proposed_to=agent_id, proposed_at=now)
        out.append(market._offer(w, market.agents[agent_id], now, "r"))
    return out


@settings(max_examples=500, deadline=None)
@given(st.lists(WAITS, max_size=25), AGENTS)
def test_a_round_proposes_what_a_round_over_the_sorted_queue_did(waits, fleet):
    market = Market(waiting={w.task_id: w for w in waits})
    market.agents = {f"a{i}": agent(f"a{i}", slots, holding, online, can)
                     for i, (slots, holding, online, can) in enumerate(fleet)}
    before = copy.deepcopy(market)
    assert market.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r") == reference_round(before)
    assert market.waiting == before.waiting
    check(market.waiting)


def test_tasks_noted_busy_get_the_slots_freed_since_and_the_rest_are_not_walked():
    """Three tasks noted busy, two agents with a slot each: the first two get one, the third stays noted; a task
    no agent can take is noted once and settled on no agent."""
    waits = [Waiting(f"t{i}", ECHO, i, noted=BUSY) for i in range(1, 4)] + [Waiting("t4", GPU, 9)]
    market = Market(waiting={w.task_id: w for w in waits})
    market.agents = {a: agent(a, 1, frozenset(), True) for a in ("a0", "a1")}
    before = copy.deepcopy(market)
    out = market.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r")
    assert out == reference_round(before)
    assert [(type(x).__name__, x.task_id) for x in out] == [("NoteWaiting", "t4"), ("ReserveSlot", "t1"),
                                                           ("ReserveSlot", "t2")]
    assert market.waiting["t3"].noted == BUSY and list(market.waiting.unsettled) == []
    # no agent can take t4: not asked again while the fleet holds; t3, behind the last free slot, was not asked
    assert market.waiting.settled == {"t4": frozenset()} and order_key(waits[2]) in market.waiting.loose


CHANGES = st.lists(st.tuples(st.integers(0, 12_000), st.sampled_from(("none", "gpu", "offline", "online", "task", "drop",
                                                                      "pin", "price", "key", "finish"))),
                   min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(WAITS, max_size=25), AGENTS, CHANGES)
def test_rounds_after_rounds_propose_what_asking_every_task_each_round_did(waits, fleet, changes):
    """Tasks no agent could take are not asked again until they or an agent change, or an agent goes live or not:
    over rounds with time passing (heartbeats expire), agents gaining a capability, going offline or online, tasks
    queued, offers cancelled (a slot free again, no agent changed), tasks pinned and agents priced or keyed, every round proposes what the
    round that asks every task proposed."""
    market = Market(waiting={w.task_id: w for w in waits})
    market.agents = {f"a{i}": agent(f"a{i}", slots, holding, online, can)
                     for i, (slots, holding, online, can) in enumerate(fleet)}
    reference = copy.deepcopy(market)
    now = NOW
    for step, (later, change) in enumerate(changes):
        now += later
        for m in (market, reference):
            if m.agents and change in ("gpu", "offline", "online", "price", "key"):
                a = m.agents["a0"]
                m.agents["a0"] = (replace(a, capabilities=a.capabilities + (Capability("gpu"),)) if change == "gpu"
                                  else replace(a, price=1.0) if change == "price"  # unverifiable without a key
                                  else replace(a, public_key="ab" * 32) if change == "key"
                                  else replace(a, status=change, last_seen=now))
            elif change == "task":
                m.waiting[f"n{step}"] = Waiting(f"n{step}", GPU if step % 2 else ECHO, now)
            elif change == "finish" and m.agents:  # a task an agent ran ends: a slot is free, no agent changed
                a = m.agents[sorted(m.agents)[later % len(m.agents)]]
                m.agents[a.agent_id] = replace(a, holding=frozenset(sorted(a.holding)[1:]))
            elif change == "drop":  # an offered task cancelled: its slot is free again, no agent changed
                m.waiting.pop(next((t for t in sorted(m.waiting) if m.waiting[t].proposed_to), ""), None)
            elif change == "pin":  # an operator pins the first task no agent could take
                t = next((t for t in sorted(m.waiting) if m.waiting[t].noted.startswith("no eligible")), None)
                if t is not None:
                    m.waiting[t] = replace(m.waiting[t], pinned_to="a0", proposed_to=None)
        assert market.proposals(now, TIMEOUT_MS, RETRY_MS, "r") == reference_round(reference, now)
        assert market.waiting == reference.waiting


def test_a_task_waiting_for_busy_agents_gets_the_slot_an_offer_cancelled_gave_back():
    """No agent changes when an offered task is cancelled, yet its slot is free again: a task that waited for busy
    agents is asked at the next round."""
    market = Market(waiting={"t1": Waiting("t1", ECHO, 1, proposed_to="a0", proposed_at=NOW),
                             "t2": Waiting("t2", ECHO, 2)})
    market.agents = {"a0": agent("a0", 1, frozenset(), True)}
    assert market.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r") == []
    assert market.waiting["t2"].noted == BUSY
    market.waiting.pop("t1")
    assert [(type(x).__name__, x.task_id) for x in market.proposals(NOW + 1, TIMEOUT_MS, RETRY_MS, "r")] == [
        ("ReserveSlot", "t2")]


def test_a_task_no_agent_could_take_is_asked_again_when_an_agent_registers_its_key_or_lowers_its_price():
    """Parked while the only agent is priced without a key, or over the task's budget; asked again, and offered,
    once the agent's key or price changes: nothing else about the agent or the task moved."""
    cheap_need = replace(ECHO, budget=0.5, requester="acme/ann")
    market = Market(waiting={"t1": Waiting("t1", ECHO, 1), "t2": Waiting("t2", cheap_need, 2)})
    market.agents = {"a0": replace(agent("a0", 2, frozenset(), True), price=1.0)}
    assert [x.reason for x in market.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r")] == [
        "no eligible agent: a0: no key for priced work",
        "no eligible agent: a0: price 1.0 over budget 0.5"]
    assert market.waiting.settled == {"t1": frozenset(), "t2": frozenset()}
    assert market.proposals(NOW + 1, TIMEOUT_MS, RETRY_MS, "r") == []
    market.agents["a0"] = replace(market.agents["a0"], public_key="ab" * 32)
    assert [(type(x).__name__, x.task_id) for x in market.proposals(NOW + 2, TIMEOUT_MS, RETRY_MS, "r")] == [
        ("HoldEscrow", "t1")]
    market.agents["a0"] = replace(market.agents["a0"], price=0.4)
    assert [(type(x).__name__, x.task_id) for x in market.proposals(NOW + 3, TIMEOUT_MS, RETRY_MS, "r")] == [
        ("HoldEscrow", "t2")]


def test_a_task_no_agent_could_take_is_asked_again_when_an_agent_gains_the_hardware_it_needs():
    big = replace(ECHO, hardware=Hardware(ram_gb=64.0))
    market = Market(waiting={"t1": Waiting("t1", big, 1)})
    market.agents = {"a0": agent("a0", 1, frozenset(), True)}
    assert [type(x).__name__ for x in market.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r")] == ["NoteWaiting"]
    assert market.waiting.settled == {"t1": frozenset()}
    market.agents["a0"] = replace(market.agents["a0"], hardware=Hardware(ram_gb=128.0))
    assert [(type(x).__name__, x.task_id) for x in market.proposals(NOW + 1, TIMEOUT_MS, RETRY_MS, "r")] == [
        ("ReserveSlot", "t1")]


def test_a_task_is_ordered_by_the_id_it_is_kept_under():
    q = WaitingQueue({"x": Waiting("y", ECHO, 1)})
    assert list(q.order) == [(0, 1, "x")] and [w.task_id for w in Market(waiting=q).queued()] == ["y"]


def test_tasks_waiting_for_busy_agents_are_not_asked_while_only_an_agent_none_can_use_is_free():
    """Two busy agents that can take the queue's tasks and a free one that cannot: after the round that notes them,
    the tasks are asked again only when a slot of one of their two agents is free, and then get it."""
    asked = []

    class Counting(Market):
        def weigh(self, w, free, now, timeout_ms):
            asked.append(w.task_id)
            return super().weigh(w, free, now, timeout_ms)

    waits = [Waiting(f"t{i}", ECHO, i) for i in range(1, 5)]
    market = Counting(waiting={w.task_id: w for w in waits})
    market.agents = {a: agent(a, 1, frozenset({f"run-{a}"}), True) for a in ("a0", "a1")}
    idle = agent("g0", 4, frozenset(), True)
    market.agents["g0"] = replace(idle, capabilities=(Capability("gpu"),))
    assert market.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r") == []
    assert asked == ["t1", "t2", "t3", "t4"] and set(market.waiting.settled.values()) == {frozenset({"a0", "a1"})}
    asked.clear()
    assert market.proposals(NOW + 1, TIMEOUT_MS, RETRY_MS, "r") == [] and asked == []
    a1 = market.agents["a1"]
    market.agents["a1"] = replace(a1, holding=frozenset())  # its task ended: one slot of the two agents is free
    assert [(type(x).__name__, x.task_id, x.agent_id) for x in market.proposals(NOW + 2, TIMEOUT_MS, RETRY_MS, "r")] == [
        ("ReserveSlot", "t1", "a1")]
    assert asked == ["t1"]  # the slot went to the first; the others were left, no slot of theirs being free


def test_a_queue_given_to_another_market_is_asked_again_there():
    """Tasks settled against one market's agents are asked afresh by a market the queue is handed to."""
    first = Market(waiting={"t1": Waiting("t1", GPU, 1)})
    first.agents = {"a0": agent("a0", 1, frozenset(), True)}
    assert [x.reason for x in first.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r")] == [
        "no eligible agent: a0: capability 'gpu' missing"]
    second = Market(waiting=first.waiting)
    assert not second.waiting.settled
    assert [x.reason for x in second.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r")] == [
        "no eligible agent: no agents registered"]


def test_many_at_once_with_one_that_is_not_a_waiting_task_change_nothing():
    q = WaitingQueue({w.task_id: w for w in (waiting_of(i, 0, i, "", None, False) for i in range(5))})
    before = dict(q)
    many = {f"n{i}": waiting_of(i, 1, i, BUSY, None, False) for i in range(BULK)}
    try:
        q.update({**many, "t1": "not a task"})
    except AttributeError:
        pass
    else:
        raise AssertionError("a value that is not a Waiting was taken")
    assert q == before
    check(q)


def test_a_group_whose_last_free_slot_is_taken_is_left_at_once():
    """`asked` stops reading a group as soon as none of its agents has a free slot, however many tasks it holds."""
    q = WaitingQueue({f"t{i}": Waiting(f"t{i}", ECHO, i, noted=BUSY) for i in range(1000)})
    for i in range(1000):
        q.settle(f"t{i}", frozenset({"a0"}))
    free = {"a0": 1}
    looked = []

    def any_free(agents):
        looked.append(agents)
        return any(free.get(a, 0) > 0 for a in agents)

    yielded = []
    for key in q.asked(any_free):
        yielded.append(key[2])
        free["a0"] -= 1  # the first task takes the slot
    assert yielded == ["t0"] and len(looked) <= 3


def test_tasks_whose_budgets_are_equal_but_print_apart_get_each_their_own_reason():
    """0.0 and -0.0 are equal (a definition may carry either): the refusal quotes each task's own budget."""
    market = Market(waiting={"t1": Waiting("t1", replace(ECHO, budget=0.0), 1),
                             "t2": Waiting("t2", replace(ECHO, budget=-0.0), 2)})
    market.agents = {"a0": replace(agent("a0", 1, frozenset(), True), price=0.5, public_key="ab" * 32)}
    before = copy.deepcopy(market)
    out = market.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r")
    assert [x.reason for x in out] == [
        "no eligible agent: a0: price 0.5 over budget 0.0", "no eligible agent: a0: price 0.5 over budget -0.0"]
    assert out == reference_round(before) and [w.noted for w in market.waiting.values()] == [x.reason for x in out]
