"""Checks over a whole event log: capacity, endings, requirements. Shared by tests and benchmarks."""
from __future__ import annotations

from collections import Counter, defaultdict

from hive_streams.codec import event_id
from hive_streams.domain import events as e
from hive_streams.domain.model import capability_shortfall


def distinct(events) -> list:
    """One copy of each aggregate/seq (a crash may re-produce an event), in log order."""
    seen, out = set(), []
    for ev in events:
        key = (type(ev).__mro__[1].__name__, event_id(ev))
        if key not in seen:
            seen.add(key)
            out.append(ev)
    return out


def capacity_violations(agent_events) -> list[str]:
    """Replays each agent's history: slots held never exceed the slots offered."""
    problems, holding, slots = [], defaultdict(set), {}
    for ev in sorted(distinct(agent_events), key=lambda ev: (ev.agent_id, ev.seq)):
        if isinstance(ev, e.AgentRegistered):
            slots[ev.agent_id] = ev.slots
        elif isinstance(ev, e.SlotReserved):
            holding[ev.agent_id].add(ev.task_id)
            if len(holding[ev.agent_id]) > slots[ev.agent_id]:
                problems.append(f"{ev.agent_id} holds {len(holding[ev.agent_id])} > {slots[ev.agent_id]} at seq {ev.seq}")
        elif isinstance(ev, e.SlotReleased):
            holding[ev.agent_id].discard(ev.task_id)
        elif isinstance(ev, e.AgentStatusChanged) and ev.status == "offline":
            holding[ev.agent_id].clear()
    return problems


def endings(task_events) -> dict[str, Counter]:
    out: dict[str, Counter] = defaultdict(Counter)
    for ev in distinct(task_events):
        if isinstance(ev, e.TERMINAL_TASK_EVENTS):
            out[ev.task_id][type(ev).__name__] += 1
    return out


def unbacked_assignments(task_events, agent_events) -> list[str]:
    """Every assignment follows a slot the agent reserved for that task."""
    reserved = {(ev.agent_id, ev.task_id) for ev in distinct(agent_events) if isinstance(ev, e.SlotReserved)}
    return [f"{ev.task_id} -> {ev.agent_id}" for ev in distinct(task_events)
            if isinstance(ev, e.TaskAssigned) and (ev.agent_id, ev.task_id) not in reserved]


def unmet_requirements(task_events, agent_events) -> list[str]:
    offers = {ev.agent_id: ev for ev in distinct(agent_events) if isinstance(ev, e.AgentRegistered)}
    needs = {ev.task_id: ev for ev in distinct(task_events) if isinstance(ev, e.TaskValidated)}
    out = []
    for ev in distinct(task_events):
        if isinstance(ev, e.TaskAssigned):
            offer, need = offers[ev.agent_id], needs[ev.task_id]
            why = (capability_shortfall(offer.capabilities, need.requires) or offer.hardware.covers(need.hardware)
                   or ("over budget" if need.budget is not None and offer.price > need.budget else ""))
            if why:
                out.append(f"{ev.task_id} on {ev.agent_id}: {why}")
    return out
