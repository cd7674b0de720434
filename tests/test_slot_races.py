"""Random interleavings of one priced task's offers, losses and results, checked as the fault suite checks the log.

Pure: the task, agent and ledger deciders and the relays between them. Each aggregate decides its commands in
the order they were written to it (a partition); which aggregate goes next is random. Offers arrive at any
time, as from a matcher that took over with the old leader's offers in flight; agents go silent, come back, and
report results for whatever attempt they last saw. Once everything is delivered and the task ended, the whole
log must pass the checker: every escrow settled once, each slot reserved released once by its own end, no
assignment without its slot, no agent over its slots."""
from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from hive_streams.domain import agent as agent_agg
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain import ledger as ledger_agg
from hive_streams.domain import task as task_agg
from hive_streams.domain.ledger import LEDGER_ID
from hive_streams.domain.model import Capability, NodeOutput, NodeSpec, result_digest
from hive_streams.streams.relays import follow_up

from .eventlog import encoded
from .logcheck import log_problems

KEY = "ab" * 32
TIMEOUT_MS = 60_000
AGENTS = ("p", "q")
TOPICS = {e.TaskEvent: "x.task.events", e.AgentEvent: "x.agent.events", e.LedgerEvent: "x.ledger.events"}


class Fabric:
    def __init__(self, slots: int, agents: tuple[str, ...] = AGENTS):
        self.task = task_agg.TaskState("t1")
        self.agents = {a: agent_agg.AgentState(a) for a in agents}
        self.ledger = ledger_agg.LedgerState(LEDGER_ID)
        self.queues: dict[str, deque] = {}  # aggregate -> commands written to it, not yet decided
        self.log: list = []
        self.now = 1_000_000
        self.escrows = 0
        self.slots = slots
        self.tick = 1  # how far the clock moves at each decision

    def write(self, cmd) -> None:
        key = cmd.task_id if isinstance(cmd, c.TaskCommand) else cmd.agent_id if isinstance(
            cmd, c.AgentCommand) else LEDGER_ID
        self.queues.setdefault(key, deque()).append(cmd)

    def decide_next(self, pick: int) -> None:
        """Decides the next command of one of the aggregates with commands waiting."""
        ready = sorted(k for k, q in self.queues.items() if q)
        if ready:
            self._decide(self.queues[ready[pick % len(ready)]].popleft())

    def decide_on(self, key: str) -> None:
        self._decide(self.queues[key].popleft())

    def _decide(self, cmd) -> None:
        self.now += self.tick
        if isinstance(cmd, c.TaskCommand):
            events = task_agg.decide(cmd, self.task, self.now)
            for ev in events:
                self.task = task_agg.evolve(self.task, ev)
        elif isinstance(cmd, c.AgentCommand):
            state = self.agents[cmd.agent_id]
            events = agent_agg.decide(cmd, state, self.now, TIMEOUT_MS)
            for ev in events:
                state = agent_agg.evolve(state, ev)
            self.agents[cmd.agent_id] = state
        else:
            events = ledger_agg.decide(cmd, self.ledger, self.now)
            for ev in events:
                self.ledger = ledger_agg.evolve(self.ledger, ev)
        self.log += events
        for ev in events:
            for follow in follow_up(ev):
                self.write(follow)

    def drain(self) -> None:
        while any(self.queues.values()):
            self.decide_next(0)

    def register(self, agent_id: str) -> None:
        self.write(c.RegisterAgent(agent_id, f"reg-{self.now}-{agent_id}", self.now, name=agent_id,
                                   capabilities=(Capability("echo"),), slots=self.slots, price=1.0, public_key=KEY))

    def offer(self, agent_id: str) -> None:
        self.escrows += 1
        self.write(c.HoldEscrow(LEDGER_ID, f"hold-{self.escrows}", self.now, f"E{self.escrows}", "t1", "alice",
                                agent_id, 5))

    def result(self, agent_id: str = "", attempt: int = 0) -> None:
        """An executor reports the result of an attempt; by default, the attempt the task runs now."""
        t = self.task
        if not agent_id:
            if t.status not in task_agg.ACTIVE or not t.agent_id:
                return
            agent_id, attempt = t.agent_id, t.attempt
        out = {"a": '"A"'}
        self.write(c.ReportTaskResult("t1", f"res-{self.now}-{agent_id}-{attempt}", self.now, agent_id, attempt,
                                      result_digest("t1", attempt, out), "sig", (NodeOutput("a", '"A"'),)))

    def copy(self) -> Fabric:
        """Another fabric in this one's state, which goes its own way (the states themselves are immutable)."""
        other = Fabric.__new__(Fabric)
        other.__dict__.update(self.__dict__)
        other.queues = {k: deque(q) for k, q in self.queues.items() if q}
        other.log = list(self.log)
        other.agents = dict(self.agents)
        return other

    def records(self) -> list:
        return encoded((next(t for cls, t in TOPICS.items() if isinstance(ev, cls)), ev) for ev in self.log)


DECIDE = st.tuples(st.just("decide"), st.integers(0, 3))
OFFER = st.tuples(st.just("offer"), st.sampled_from(AGENTS))
# weighted towards deciding and offering: an early cancel would leave the rest of a case with nothing to do
STEP = st.one_of(DECIDE, DECIDE, DECIDE, DECIDE, OFFER, OFFER,
                 st.tuples(st.just("silent"), st.sampled_from(AGENTS)),
                 st.tuples(st.just("back"), st.sampled_from(AGENTS)),
                 st.tuples(st.just("result"), st.just("")))
CANCEL_AT = st.one_of(st.none(), st.integers(0, 60))  # at most one cancel, anywhere; the end cancels otherwise


@settings(max_examples=1000, deadline=None)
@given(st.lists(STEP, max_size=60), st.integers(1, 2), CANCEL_AT)
def test_every_interleaving_settles_each_escrow_and_releases_each_slot_once(steps, slots, cancel_at):
    f = Fabric(slots)
    f.write(c.DepositFunds(LEDGER_ID, "dep", f.now, "alice", 10_000))
    for a in AGENTS:
        f.register(a)
    f.write(c.SubmitTask("t1", "sub", f.now, "demo", "alice", (NodeSpec("a", "echo"),), budget=10.0))
    f.drain()
    for i, (kind, arg) in enumerate(steps):
        if i == cancel_at:
            f.write(c.CancelTask("t1", "cancel", f.now))
        if kind == "decide":
            f.decide_next(arg)
        elif kind == "offer":
            f.offer(arg)
        elif kind == "silent":
            f.now += TIMEOUT_MS + 1
            f.write(c.ExpireAgent(arg, f"exp-{f.now}", f.now))
        elif kind == "back":
            f.register(arg)
        else:
            f.result()
    f.drain()
    if not f.task.terminal:
        f.write(c.CancelTask("t1", "end", f.now))
        f.drain()
    assert f.task.terminal
    assert all(not a.holding for a in f.agents.values()), {a: s.holding for a, s in f.agents.items()}
    assert log_problems(f.records()) == []


def test_a_release_sent_for_a_lost_attempt_never_frees_the_slot_of_the_next():
    """The order seen once in the fault suite: the agent is lost while attempt 1 runs and comes back; an offer made
    before the loss was read reaches it before the lost attempt's release; then the retry's own offer."""
    f = Fabric(1)
    f.write(c.DepositFunds(LEDGER_ID, "dep", f.now, "alice", 10_000))
    f.register("p")
    f.write(c.SubmitTask("t1", "sub", f.now, "demo", "alice", (NodeSpec("a", "echo"),), budget=10.0))
    f.drain()
    f.offer("p")  # E1: attempt 1
    f.drain()
    assert (f.task.status, f.task.escrow_id) == ("assigned", "E1")
    f.now += TIMEOUT_MS + 1
    f.write(c.ExpireAgent("p", "exp", f.now))
    f.decide_on("p")  # offline: the task is reported lost
    f.register("p")
    f.decide_on("p")  # back
    f.offer("p")  # E2, from a matcher that has not read the assignment yet
    f.decide_on(LEDGER_ID)
    f.decide_on("p")  # its reservation, ahead of the lost attempt's release: the lost task still holds the slot
    assert [(type(ev), ev.reason) for ev in f.log[-1:]] == [(e.SlotRefused, "already held")]
    f.drain()  # E2 refunded; the retry, whose release frees the slot
    assert f.task.status == "queued" and not f.agents["p"].holding
    f.offer("p")  # E3: the retry's own offer
    f.drain()
    assert (f.task.status, f.task.escrow_id, f.task.attempt) == ("assigned", "E3", 2)
    assert f.agents["p"].holding == {"t1"}  # the running attempt has its slot
    f.write(c.CancelTask("t1", "end", f.now))
    f.drain()
    assert not f.agents["p"].holding
    assert sorted(ev.escrow_id for ev in f.log if isinstance(ev, e.EscrowRefunded)) == ["E1", "E2", "E3"]
    assert log_problems(f.records()) == []
