"""A second reservation of a task on the agent it already runs on: its escrow is refunded, and the agent's slot
is released once, by the end of the attempt that runs there. Pure: the task, agent and ledger deciders and the
relays between them, in the order a matcher that took over with offers still in flight can produce."""
from hive_streams.domain import agent as agent_agg
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain import ledger as ledger_agg
from hive_streams.domain import task as task_agg
from hive_streams.domain.ledger import LEDGER_ID
from hive_streams.domain.model import Capability, NodeSpec
from hive_streams.streams.relays import follow_up
from tests.ledgercheck import ledger_problems

KEY = "ab" * 32
TIMEOUT_MS = 60_000


class Fabric:
    """One task, one agent and the ledger; each command is decided at once, its follow-ups are held back until
    `deliver` is called for them, so the test chooses the order in which the aggregates see them."""

    def __init__(self):
        self.task = task_agg.TaskState("t1")
        self.agent = agent_agg.AgentState("priced")
        self.ledger = ledger_agg.LedgerState(LEDGER_ID)
        self.log: list = []
        self.held: list = []
        self.now = 1_000_000

    def send(self, cmd) -> list:
        self.now += 1
        if isinstance(cmd, c.TaskCommand):
            events = task_agg.decide(cmd, self.task, self.now)
            for ev in events:
                self.task = task_agg.evolve(self.task, ev)
        elif isinstance(cmd, c.AgentCommand):
            events = agent_agg.decide(cmd, self.agent, self.now, TIMEOUT_MS)
            for ev in events:
                self.agent = agent_agg.evolve(self.agent, ev)
        else:
            events = ledger_agg.decide(cmd, self.ledger, self.now)
            for ev in events:
                self.ledger = ledger_agg.evolve(self.ledger, ev)
        self.log += events
        for ev in events:
            self.held += follow_up(ev)
        return events

    def deliver(self, kind) -> list:
        """Sends the first held command of this type; returns its events."""
        cmd = next(cmd for cmd in self.held if isinstance(cmd, kind))
        self.held.remove(cmd)
        return self.send(cmd)

    def settle(self) -> None:
        while self.held:
            self.send(self.held.pop(0))


def register(f: Fabric) -> None:
    f.send(c.RegisterAgent("priced", f"reg{f.now}", f.now, name="priced", capabilities=(Capability("echo"),),
                           slots=1, price=1.0, public_key=KEY))


def offer(f: Fabric, escrow: str) -> None:
    f.send(c.HoldEscrow(LEDGER_ID, f"hold-{escrow}", f.now, escrow, "t1", "alice", "priced", 5))


def test_a_second_reservation_on_the_agent_a_task_runs_on_is_refunded_and_its_slot_released_once():
    f = Fabric()
    f.send(c.DepositFunds(LEDGER_ID, "dep", f.now, "alice", 100))
    register(f)
    f.send(c.SubmitTask("t1", "sub", f.now, "demo", "alice", (NodeSpec("a", "echo"),), budget=10.0))
    offer(f, "E1")  # the first leader's offer, and a second one from a leader that has not read its outcome yet
    offer(f, "E2")
    f.deliver(c.ReserveSlot)
    f.deliver(c.AssignTask)
    assert f.task.status == "assigned" and f.task.escrow_id == "E1"
    f.now += TIMEOUT_MS + 1  # the agent falls silent: its slots are cleared and the task is reported lost
    assert isinstance(f.send(c.ExpireAgent("priced", "exp", f.now))[0], e.AgentStatusChanged)
    register(f)  # back before the lost report reaches the task
    assert isinstance(f.deliver(c.ReserveSlot)[0], e.SlotReserved)  # E2: nothing is held any more
    declined = f.deliver(c.AssignTask)
    assert [type(ev) for ev in declined] == [e.TaskAssignmentDeclined]
    assert (declined[0].escrow_id, declined[0].agent_id) == ("E2", "")
    assert f.task.escrow_id == "E1" and f.task.status == "assigned"  # the running attempt is untouched
    assert [type(cmd) for cmd in f.held] == [c.ReportAgentLost, c.RefundEscrow]
    f.settle()  # the lost report retries the task: its ReleaseSlot frees the slot E2 reserved
    assert f.task.status == "queued" and f.agent.holding == frozenset()
    released = [ev for ev in f.log if isinstance(ev, e.SlotReleased)]
    assert len(released) == 1
    refunded = sorted(ev.escrow_id for ev in f.log if isinstance(ev, e.EscrowRefunded))
    assert refunded == ["E1", "E2"]
    assert ledger_problems([ev for ev in f.log if isinstance(ev, e.LedgerEvent)], all_settled=True) == []


def test_the_same_assignment_again_emits_nothing():
    f = Fabric()
    f.send(c.DepositFunds(LEDGER_ID, "dep", f.now, "alice", 100))
    register(f)
    f.send(c.SubmitTask("t1", "sub", f.now, "demo", "alice", (NodeSpec("a", "echo"),), budget=10.0))
    offer(f, "E1")
    f.deliver(c.ReserveSlot)
    assign = next(cmd for cmd in f.held if isinstance(cmd, c.AssignTask))
    f.deliver(c.AssignTask)
    again = c.AssignTask("t1", "another-id", f.now, assign.agent_id, assign.escrow_id, assign.agent_key)
    assert f.send(again) == []
