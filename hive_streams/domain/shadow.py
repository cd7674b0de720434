"""Shadow replay of the scheduler: a recorded log's submissions and agents, placed by a matching policy in
simulated time.

The inputs are taken from the log as they were: each task's arrival in the queue (the event that queued it) and
an operator's pins; each agent's offer, status and beats (its availability); and each task's run time on its
recorded agent (how long that agent's slot was held for it, else from its assignment to its end), which it
keeps on any agent. Placement is the live matcher's own: a `Market` with the policy, asked for proposals after
every moment something changed, each proposal taking its slot at once. A task's end releases its slot and
tells the agent's reputation its recorded outcome. Tasks the log never placed and ended (rejected, cancelled
while queued, still running) are left out; a task that was retried keeps its first agent and its whole time.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, replace

from . import events as e
from . import commands as c
from .ledger import cents
from .matching import Market, Policy

END_EVENTS = (e.TaskCompleted, e.TaskFailed, e.TaskCancelled)
SLOT_EVENTS = (e.SlotReserved, e.SlotRefused, e.SlotReleased)


@dataclass(frozen=True)
class Recorded:
    """One task as the log has it."""
    task_id: str
    queued: object  # the event that queued it: TaskSubmitted(queued=True) or TaskValidated
    deadline_at: int | None
    agent_id: str | None = None  # its first assignment
    placed_at: int = 0
    ended_at: int = 0
    end: object = None  # the event that ended it
    cost: int = 0  # cents paid to its agent (escrow released)
    pins: tuple = ()  # an operator's TaskPinned events: inputs too, the policy does not override them

    @property
    def arrival(self) -> int:
        return self.queued.at

    held: int = 0  # how long its recorded agent's slot was held for it (reserved to released), when known

    @property
    def run_ms(self) -> int:
        return self.held or self.ended_at - self.placed_at


@dataclass(frozen=True)
class Placement:
    task_id: str
    agent_id: str | None  # None: never placed
    placed_at: int = 0
    ended_at: int = 0
    wait_ms: int = 0
    cost: int = 0
    missed: bool = False  # ended after its deadline


@dataclass(frozen=True)
class Log:
    tasks: dict[str, Recorded]
    agent_events: tuple  # offers, status and beats, in time order


def read_log(events) -> Log:
    """The shadow's inputs from the three families' events (any order): tasks that were queued, placed and
    ended, and every agent event but slot reservations (those the policy decides)."""
    queued, placed, ended, paid, deadlines, pins, reserved, released = {}, {}, {}, {}, {}, {}, {}, {}
    agent_events = []
    for ev in sorted(events, key=lambda ev: ev.at):
        if isinstance(ev, e.AgentEvent):
            if isinstance(ev, e.SlotReserved):
                reserved.setdefault((ev.task_id, ev.agent_id), ev.at)
            elif isinstance(ev, e.SlotReleased):
                released.setdefault((ev.task_id, ev.agent_id), ev.at)
            elif not isinstance(ev, SLOT_EVENTS):
                agent_events.append(ev)
        elif isinstance(ev, e.EscrowReleased):
            paid[ev.task_id] = paid.get(ev.task_id, 0) + ev.amount
        elif isinstance(ev, e.TaskSubmitted):
            deadlines[ev.task_id] = ev.deadline_at
            if ev.queued:
                queued.setdefault(ev.task_id, ev)
        elif isinstance(ev, e.TaskValidated):
            queued.setdefault(ev.task_id, ev)
        elif isinstance(ev, e.TaskPinned):
            pins.setdefault(ev.task_id, []).append(ev)
        elif isinstance(ev, e.TaskAssigned):
            placed.setdefault(ev.task_id, ev)
        elif isinstance(ev, END_EVENTS):
            ended.setdefault(ev.task_id, ev)
    tasks = {}
    for task_id, q in queued.items():
        if task_id in placed and task_id in ended:
            a, end = placed[task_id], ended[task_id]
            slot = (task_id, a.agent_id)
            held = released[slot] - reserved[slot] if slot in reserved and slot in released else 0
            tasks[task_id] = Recorded(task_id, q, deadlines.get(task_id), a.agent_id, a.at, end.at, end,
                                      paid.get(task_id, 0), tuple(p for p in pins.get(task_id, ()) if p.at <= a.at),
                                      max(0, held))
    return Log(tasks, tuple(agent_events))


def recorded_placements(log: Log) -> dict[str, Placement]:
    return {t.task_id: Placement(t.task_id, t.agent_id, t.placed_at, t.ended_at, t.placed_at - t.arrival, t.cost,
                                 _missed(t.deadline_at, t.ended_at)) for t in log.tasks.values()}


def _missed(deadline_at: int | None, ended_at: int) -> bool:
    return deadline_at is not None and ended_at > deadline_at


def simulate(log: Log, policy: Policy, timeout_ms: int) -> dict[str, Placement]:
    """Every recorded task placed by `policy` in simulated time."""
    market = Market(policy=policy)
    clock: list = []  # (time, order, kind, payload)
    order = 0

    def at(time: int, kind: str, payload) -> None:
        nonlocal order
        order += 1
        heapq.heappush(clock, (time, order, kind, payload))

    for t in log.tasks.values():
        at(t.arrival, "queued", t.queued)
        for pin in t.pins:
            at(pin.at, "pin", pin)
    for ev in log.agent_events:
        at(ev.at, "agent", ev)
    agent_seq: dict[str, int] = {}
    task_seq: dict[str, int] = {}
    out: dict[str, Placement] = {}

    def agent_event(ev) -> None:  # numbered afresh: the shadow's slot events sit between the recorded ones
        agent_seq[ev.agent_id] = agent_seq.get(ev.agent_id, 0) + 1
        market.observe(replace(ev, seq=agent_seq[ev.agent_id]))

    def task_event(ev) -> None:
        task_seq[ev.task_id] = task_seq.get(ev.task_id, ev.seq) + 1
        market.observe(replace(ev, seq=task_seq[ev.task_id]))

    while clock:
        now = clock[0][0]
        while clock and clock[0][0] == now:
            _, _, kind, payload = heapq.heappop(clock)
            if kind == "queued":
                task_seq[payload.task_id] = payload.seq
                market.observe(payload)
            elif kind == "agent":
                agent_event(payload)
            elif kind == "pin":
                task_event(payload)
            else:
                task_id, agent_id = payload
                recorded = log.tasks[task_id]
                task_event(replace(recorded.end, at=now, agent_id=agent_id))
                agent_event(e.SlotReleased(agent_id, 0, now, task_id))
        for proposal in market.proposals(now, timeout_ms, retry_ms=0):
            if isinstance(proposal, c.NoteWaiting):
                continue
            task_id = proposal.task_id
            agent = market.agents[proposal.agent_id]
            recorded = log.tasks[task_id]
            agent_event(e.SlotReserved(agent.agent_id, 0, now, task_id))
            task_event(e.TaskAssigned(task_id, 0, now, agent.agent_id, 1, ()))
            end = now + recorded.run_ms
            cost = cents(agent.price) if recorded.cost else 0
            out[task_id] = Placement(task_id, agent.agent_id, now, end, now - recorded.arrival, cost,
                                     _missed(recorded.deadline_at, end))
            at(end, "end", (task_id, agent.agent_id))
    for task_id in log.tasks:
        out.setdefault(task_id, Placement(task_id, None))
    return out


@dataclass(frozen=True)
class Summary:
    """One run's figures: placements per agent, queue waits, cost (cents) and deadline misses."""
    tasks: int
    per_agent: dict[str, int]
    unplaced: int
    mean_wait_ms: float
    p95_wait_ms: int
    cost: int
    missed: int


def summarise(placements: dict[str, Placement]) -> Summary:
    placed = [p for p in placements.values() if p.agent_id is not None]
    per_agent: dict[str, int] = {}
    for p in placed:
        per_agent[p.agent_id] = per_agent.get(p.agent_id, 0) + 1
    waits = sorted(p.wait_ms for p in placed)
    p95 = waits[min(len(waits) - 1, (95 * len(waits) + 99) // 100 - 1)] if waits else 0
    return Summary(len(placements), dict(sorted(per_agent.items())), len(placements) - len(placed),
                   sum(waits) / len(waits) if waits else 0.0, p95, sum(p.cost for p in placed),
                   sum(p.missed for p in placed))


@dataclass(frozen=True)
class Differences:
    """How a shadow run differs from a base run, task by task; the counts add up by construction."""
    same: tuple[str, ...]  # placed on the same agent
    moved: tuple[tuple[str, str | None, str | None], ...]  # (task, base agent, shadow agent)
    newly_missed: tuple[str, ...]
    no_longer_missed: tuple[str, ...]
    waited_longer: int
    waited_less: int


def differences(base: dict[str, Placement], shadow: dict[str, Placement]) -> Differences:
    same, moved, newly, no_longer, longer, less = [], [], [], [], 0, 0
    for task_id in sorted(base):
        b, s = base[task_id], shadow[task_id]
        if b.agent_id == s.agent_id:
            same.append(task_id)
        else:
            moved.append((task_id, b.agent_id, s.agent_id))
        if s.missed and not b.missed:
            newly.append(task_id)
        elif b.missed and not s.missed:
            no_longer.append(task_id)
        longer += s.wait_ms > b.wait_ms
        less += s.wait_ms < b.wait_ms
    return Differences(tuple(same), tuple(moved), tuple(newly), tuple(no_longer), longer, less)
