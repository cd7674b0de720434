"""A pure stand-in for the live marketplace, for the shadow replay's unit tests: a matcher that reads the
event partitions late and in batches of its own and decides in rounds (as streams/matcher.py does), agents
that answer slot requests with the agent aggregate's own decide, a ledger that holds every escrow, and
executors that run, fail and are retried. It records what the live stack records: events with partition,
offset and the round id of each answer."""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from hive_streams.domain import agent as agent_agg
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.matching import Market
from hive_streams.domain.model import Capability, NodeSpec

TIMEOUT_MS = 10_000
TASK_PARTS, AGENT_PARTS, LEDGER_PART = (0, 1), (2, 3), 4


@dataclass(frozen=True)
class Agent:
    agent_id: str
    slots: int
    price: float
    proficiency: float
    speed: float  # a run on it takes run_ms / speed


@dataclass
class Play:
    rng: random.Random
    agents: tuple[Agent, ...]
    end: int = 0
    partitions: dict[int, list] = field(default_factory=lambda: {p: [] for p in range(5)})
    readable: dict[int, int] = field(default_factory=dict)  # partition -> when its last record becomes readable
    read: dict[int, int] = field(default_factory=dict)  # partition -> next offset the matcher reads
    clock: list = field(default_factory=list)
    order: int = 0
    states: dict[str, agent_agg.AgentState] = field(default_factory=dict)
    task_seq: dict[str, int] = field(default_factory=dict)
    market: Market = field(default_factory=Market)
    instance: int = 1
    last_round: int = -10_000
    run_ms: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    def at(self, time: int, action, *args) -> None:
        self.order += 1
        heapq.heappush(self.clock, (time, self.order, action, args))

    def commit(self, part: int, ev, time: int) -> None:
        log = self.partitions[part]
        ready = max(self.readable.get(part, 0), time + self.rng.choice((0, 1, 3, 10, 40)))
        self.readable[part] = ready
        log.append((len(log), ev, ready))
        self.at(ready + self.rng.choice((0, 0, 2, 15)), self.matcher_reads)

    def task_event(self, cls, task_id: str, time: int, **fields) -> None:
        self.task_seq[task_id] = self.task_seq.get(task_id, 0) + 1
        part = TASK_PARTS[int(task_id.rsplit("t", 1)[1]) % 2]
        self.commit(part, cls(task_id, self.task_seq[task_id], time, **fields), time)

    def agent_command(self, time: int, command) -> None:
        state = self.states[command.agent_id]
        for ev in agent_agg.decide(command, state, time, TIMEOUT_MS):
            self.states[command.agent_id] = state = agent_agg.evolve(state, ev)
            self.commit(AGENT_PARTS[[a.agent_id for a in self.agents].index(ev.agent_id) % 2], ev, time)
            if isinstance(ev, e.SlotReserved):
                self.at(time + self.rng.randint(1, 30), self.assign, ev)

    # the live parts ------------------------------------------------------------------------------

    def register(self, time: int) -> None:
        for a in self.agents:
            self.states[a.agent_id] = agent_agg.AgentState(a.agent_id)
            for ev in (e.AgentRegistered(a.agent_id, 1, time, a.agent_id, (Capability("sleep", a.proficiency),),
                                         a.slots, price=a.price, public_key="key"),
                       e.AgentStatusChanged(a.agent_id, 2, time, "online")):
                self.states[a.agent_id] = agent_agg.evolve(self.states[a.agent_id], ev)
                self.commit(AGENT_PARTS[self.agents.index(a) % 2], ev, time)
            for beat in range(time + 1000, self.end, 1000):
                self.at(beat + self.rng.randint(0, 50), self.beat, a.agent_id)

    def beat(self, time: int, agent_id: str) -> None:
        state = self.states[agent_id]
        ev = e.AgentHeartbeat(agent_id, state.seq + 1, time)
        self.states[agent_id] = agent_agg.evolve(state, ev)
        self.commit(AGENT_PARTS[[a.agent_id for a in self.agents].index(agent_id) % 2], ev, time)

    def submit(self, time: int, task_id: str, priority: int, run_ms: int, deadline: int | None) -> None:
        self.run_ms[task_id] = run_ms
        self.task_event(e.TaskSubmitted, task_id, time, name="t", requester="acme/ann", nodes=(NodeSpec("s", "sleep"),),
                        priority=priority, deadline_at=deadline, budget=2.0, queued=True)

    def matcher_reads(self, time: int) -> None:
        for part, log in self.partitions.items():
            start = self.read.get(part, 0)
            upto = start
            while upto < len(log) and log[upto][2] <= time:
                upto += 1
            for _, ev, _ in log[start:upto]:
                self.market.observe(ev)
            self.read[part] = upto
        if self.market.dirty or time - self.last_round >= 1000:  # as the live matcher's `_due`
            self.market.dirty = False
            self.last_round = time
            self.round(time)

    def restart_matcher(self, time: int) -> None:
        """A new leader: a fresh market over everything read so far."""
        self.instance += 1
        self.market = Market()
        for part, log in self.partitions.items():
            for _, ev, _ in log[:self.read.get(part, 0)]:
                self.market.observe(ev)

    def round(self, time: int) -> None:
        round_id = f"m{self.instance}/{time}/" + ",".join(str(self.read.get(p, 0)) for p in range(5))
        for command in self.market.proposals(time, TIMEOUT_MS, 5000, round_id):
            if isinstance(command, c.ReserveSlot):
                self.at(time + self.rng.randint(1, 30), self.agent_command, command)
            elif isinstance(command, c.HoldEscrow):
                self.at(time + self.rng.randint(1, 30), self.hold, command)

    def hold(self, time: int, command: c.HoldEscrow) -> None:
        self.commit(LEDGER_PART, e.EscrowHeld("main", len(self.partitions[LEDGER_PART]) + 1, time, command.escrow_id,
                                              command.task_id, command.requester, command.agent_id, command.amount,
                                              round_id=command.round_id), time)
        self.at(time + self.rng.randint(1, 30), self.agent_command,
                c.ReserveSlot(command.agent_id, f"r:{command.escrow_id}", time, command.task_id, command.escrow_id,
                              command.round_id))

    def assign(self, time: int, reserved: e.SlotReserved) -> None:
        task_id, agent = reserved.task_id, next(a for a in self.agents if a.agent_id == reserved.agent_id)
        self.attempts[task_id] = attempt = self.attempts.get(task_id, 0) + 1
        self.task_event(e.TaskAssigned, task_id, time, agent_id=agent.agent_id, attempt=attempt, nodes=(),
                        escrow_id=reserved.escrow_id)
        self.at(time + int(self.run_ms[task_id] / agent.speed), self.finish, task_id, agent.agent_id, attempt,
                reserved.escrow_id)

    def finish(self, time: int, task_id: str, agent_id: str, attempt: int, escrow_id: str) -> None:
        if attempt == 1 and self.rng.random() < 0.15:
            self.task_event(e.TaskRetryScheduled, task_id, time, agent_id=agent_id, attempt=attempt, reason="boom",
                            not_before=time + 300, escrow_id=escrow_id)
        else:
            self.task_event(e.TaskCompleted, task_id, time, agent_id=agent_id, outputs=(), escrow_id=escrow_id)
            if escrow_id:
                self.commit(LEDGER_PART, e.EscrowReleased("main", len(self.partitions[LEDGER_PART]) + 1, time,
                                                          escrow_id, task_id, agent_id, 50, 0, ()), time)
        self.at(time + self.rng.randint(1, 30), self.agent_command, c.ReleaseSlot(agent_id, f"x:{task_id}:{time}", time,
                                                                                   task_id))

    def records(self) -> list[tuple[int, int, object]]:
        """What the log holds: (partition, offset, event)."""
        return [(part, offset, ev) for part, log in self.partitions.items() for offset, ev, _ in log]


def play(rng: random.Random, agents: tuple[Agent, ...], bursts: list[list[tuple[int, int, int | None]]],
         restart_at: int | None = None) -> Play:
    """Bursts of (priority, run ms, deadline offset) sent 700 ms apart; returns the finished play."""
    p = Play(rng, agents, end=700 * len(bursts) + 60_000)
    p.register(0)
    n = 0
    for i, burst in enumerate(bursts):
        for priority, run_ms, deadline in burst:
            start = 500 + 700 * i
            p.at(start, p.submit, f"acme:t{n}", priority, run_ms, None if deadline is None else start + deadline)
            n += 1
    for tick in range(0, p.end, 250):  # the live matcher's empty polls
        p.at(tick, p.matcher_reads)
    if restart_at is not None:
        p.at(restart_at, p.restart_matcher)
    while p.clock:
        time, _, action, args = heapq.heappop(p.clock)
        action(time, *args)
    return p

