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
from hive_streams.domain.model import Capability, Requirement
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
    assert list(q.unsettled) == sorted(order_key(w) for w in q.values() if not w.noted.startswith(BUSY))
    assert q.proposed == {t for t, w in q.items() if w.proposed_to}


OPS = st.lists(st.one_of(
    st.tuples(st.just("set"), WAITS), st.tuples(st.just("pop"), st.integers(0, 30)),
    st.tuples(st.just("del"), st.integers(0, 30)), st.tuples(st.just("update"), st.lists(WAITS, max_size=4)),
    st.tuples(st.just("setdefault"), WAITS), st.tuples(st.just("popitem"), st.none()),
    st.tuples(st.just("clear"), st.none())), max_size=40)


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


def agent(agent_id: str, slots: int, holding: frozenset[str], online: bool) -> agent_agg.AgentState:
    state = agent_agg.AgentState(agent_id)
    for event in agent_agg.decide(c.RegisterAgent(agent_id, f"r-{agent_id}", NOW, name=agent_id,
                                                  capabilities=(Capability("echo"),), slots=slots), state, NOW, 60_000):
        state = agent_agg.evolve(state, event)
    return replace(state, holding=holding, status="online" if online else "offline")


AGENTS = st.lists(st.tuples(st.integers(0, 3), st.sets(st.sampled_from([f"t{i}" for i in range(31)]), max_size=3),
                            st.booleans()), min_size=0, max_size=2)


def reference_round(market: Market) -> list:
    """The round as it was before the queue: every waiting task, sorted, walked from the front."""
    releasing = {a: market.releasing(a) for a in market.agents}
    pending: dict[str, int] = {}
    for w in market.waiting.values():
        if w.proposed_to and (w.proposed_to not in market.agents or w.task_id not in market.agents[w.proposed_to].holding):
            pending[w.proposed_to] = pending.get(w.proposed_to, 0) + 1
    for (agent_id, task_id), assigned in market.assigns.items():
        pending[agent_id] = pending.get(agent_id, 0) + max(0, assigned - market.reserves.get((agent_id, task_id), 0))
    free = {a.agent_id: a.free_slots + len(releasing[a.agent_id]) - pending.get(a.agent_id, 0)
            for a in market.agents.values() if a.live(NOW, TIMEOUT_MS)}
    held = set().union(*(a.holding - releasing[a.agent_id] for a in market.agents.values()))
    out: list = []
    full = all(n <= 0 for n in free.values())
    for w in sorted(market.waiting.values(), key=lambda w: (-w.need.priority, w.queued_at, w.task_id)):
        if NOW < w.not_before or (w.proposed_to and NOW - w.proposed_at < RETRY_MS):
            continue
        if w.task_id in held:
            continue
        if full and w.noted.startswith(BUSY):
            continue
        agent_id, reason = market.choose(w, free, NOW, TIMEOUT_MS)
        if agent_id is None:
            if reason != w.noted:
                if w.noted or not reason.startswith(BUSY):
                    out.append(c.NoteWaiting(w.task_id, f"wait:{w.task_id}:{NOW}", NOW, reason))
                market.waiting[w.task_id] = replace(w, noted=reason)
            continue
        free[agent_id] -= 1
        if free[agent_id] <= 0:
            full = all(n <= 0 for n in free.values())
        market.waiting[w.task_id] = replace(w, proposed_to=agent_id, proposed_at=NOW)
        out.append(market._offer(w, market.agents[agent_id], NOW, "r"))
    return out


@settings(max_examples=500, deadline=None)
@given(st.lists(WAITS, max_size=25), AGENTS)
def test_a_round_proposes_what_a_round_over_the_sorted_queue_did(waits, fleet):
    market = Market(waiting={w.task_id: w for w in waits})
    market.agents = {f"a{i}": agent(f"a{i}", slots, holding, online)
                     for i, (slots, holding, online) in enumerate(fleet)}
    before = copy.deepcopy(market)
    assert market.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r") == reference_round(before)
    assert market.waiting == before.waiting
    check(market.waiting)


def test_tasks_noted_busy_get_the_slots_freed_since_and_the_rest_are_not_walked():
    """Three tasks noted busy, two agents with a slot each: the first two get one, the third stays noted; a task
    noted otherwise behind them is still looked at once every slot is taken."""
    waits = [Waiting(f"t{i}", ECHO, i, noted=BUSY) for i in range(1, 4)] + [Waiting("t4", GPU, 9)]
    market = Market(waiting={w.task_id: w for w in waits})
    market.agents = {a: agent(a, 1, frozenset(), True) for a in ("a0", "a1")}
    before = copy.deepcopy(market)
    out = market.proposals(NOW, TIMEOUT_MS, RETRY_MS, "r")
    assert out == reference_round(before)
    assert [(type(x).__name__, x.task_id) for x in out] == [("NoteWaiting", "t4"), ("ReserveSlot", "t1"),
                                                           ("ReserveSlot", "t2")]
    assert market.waiting["t3"].noted == BUSY and [k[2] for k in market.waiting.unsettled] == ["t4"]
