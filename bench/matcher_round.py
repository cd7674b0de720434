"""A matcher round's CPU against the length of the queue: no broker, no IO, one process.

`python -m bench.matcher_round [SIZES] [ROUNDS]`: for each queue length in SIZES (default 1000,5000,20000,100000),
a market of two live agents running 256 tasks each and that many tasks waiting; a first round notes them busy.
Then, ROUNDS times (default 20), each agent finishes a task, a round runs (it offers the two slots to the front of
the queue) and the two offered tasks start. Prints the best of those rounds in milliseconds: what a round costs
the worker while a burst waits behind busy agents. A second line each: the same with as many tasks again that no
agent can take (they need a capability none has). A third: the same queue while a third agent, which none of the
tasks can use, has free slots. A fourth: that queue again while one of the busy agents goes offline or back
online before each round, so every round follows a change of the fleet and asks every task again. Run two
checkouts one after the other, alternating, to compare a change.
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

from hive_streams.domain import agent as agent_agg
from hive_streams.domain import commands as c
from hive_streams.domain.matching import Market, Need, Waiting
from hive_streams.domain.model import Capability, Requirement

SLOTS = 256
TIMEOUT_MS = 600_000
RETRY_MS = 5_000


def market(waiting: int, now: int, unplaceable: int = 0, idle_other: bool = False) -> Market:
    m = Market()
    for i in range(3 if idle_other else 2):
        state = agent_agg.AgentState(f"ex-{i}")
        command = c.RegisterAgent(state.agent_id, f"reg-{i}", now, name=state.agent_id,
                                  capabilities=(Capability("echo" if i < 2 else "render"),), slots=SLOTS)
        for event in agent_agg.decide(command, state, now, TIMEOUT_MS):
            state = agent_agg.evolve(state, event)
        running = SLOTS if i < 2 else 0  # the third, if any, is idle
        m.agents[state.agent_id] = replace(state, holding=frozenset(f"run-{i}-{n}" for n in range(running)))
    need = Need((Requirement("echo"),))
    m.waiting = {f"t{i}": Waiting(f"t{i}", need, now + i) for i in range(waiting)}
    gpu = Need((Requirement("gpu"),))
    m.waiting.update({f"g{i}": Waiting(f"g{i}", gpu, now + i) for i in range(unplaceable)})
    return m


def best_ms(waiting: int, rounds: int = 20, unplaceable: int = 0, idle_other: bool = False,
            flapping: bool = False) -> float:
    now = int(time.time() * 1000)
    m = market(waiting, now, unplaceable, idle_other)
    m.proposals(now, TIMEOUT_MS, RETRY_MS)
    best = float("inf")
    for _ in range(rounds):
        now += 10
        if flapping:  # the fleet changes: every waiting task may have another answer
            a = m.agents["ex-1"]
            m.agents["ex-1"] = replace(a, status="offline" if a.status == "online" else "online")
        for a in list(m.agents.values())[:2]:  # each busy agent finishes one task
            m.agents[a.agent_id] = replace(a, holding=frozenset(sorted(a.holding)[1:]), last_seen=now)
        started = time.perf_counter()
        offers = m.proposals(now, TIMEOUT_MS, RETRY_MS)
        best = min(best, time.perf_counter() - started)
        assert offers and all(isinstance(x, c.ReserveSlot) for x in offers), offers  # each live one's free slot
        for offer in offers:  # the offered tasks start there
            a = m.agents[offer.agent_id]
            m.agents[a.agent_id] = replace(a, holding=a.holding | {offer.task_id})
            m.waiting.pop(offer.task_id)
    return best * 1e3


if __name__ == "__main__":
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "1000,5000,20000,100000").split(",")]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    for size in sizes:
        print(f"{size:>7,} waiting: {best_ms(size, rounds):.3f} ms a round (best of {rounds})")
        print(f"{size:>7,} waiting and {size:,} no agent can take: {best_ms(size, rounds, size):.3f} ms a round")
        print(f"{size:>7,} waiting, an agent none can use idle: {best_ms(size, rounds, idle_other=True):.3f} ms a round")
        flapping = best_ms(size, rounds, idle_other=True, flapping=True)
        print(f"{size:>7,} waiting, that idle agent, the fleet changing before each round: {flapping:.3f} ms a round")
