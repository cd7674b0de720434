"""An offer for a task made before its loss was read, at the agent it was lost on: refused and refunded, and the
agent's slot released once, by the lost attempt's end. Pure: the task, agent and ledger deciders and the relays
between them, in the order a matcher that took over with offers still in flight can produce."""
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


def test_an_offer_made_before_a_loss_was_read_waits_for_the_lost_attempts_release_and_is_refunded():
    f = Fabric()
    f.send(c.DepositFunds(LEDGER_ID, "dep", f.now, "alice", 100))
    register(f)
    f.send(c.SubmitTask("t1", "sub", f.now, "demo", "alice", (NodeSpec("a", "echo"),), budget=10.0))
    offer(f, "E1")  # the first leader's offer, and a second one from a leader that has not read its outcome yet
    offer(f, "E2")
    f.deliver(c.ReserveSlot)
    f.deliver(c.AssignTask)
    assert f.task.status == "assigned" and f.task.escrow_id == "E1"
    f.now += TIMEOUT_MS + 1  # the agent falls silent: the task is reported lost, its slot kept until its release
    assert isinstance(f.send(c.ExpireAgent("priced", "exp", f.now))[0], e.AgentStatusChanged)
    register(f)  # back before the lost report reaches the task
    refused = f.deliver(c.ReserveSlot)  # E2
    assert [(type(ev), ev.reason) for ev in refused] == [(e.SlotRefused, "already held")]
    f.settle()  # E2 refunded; the lost report retries the task, whose release frees the slot
    assert f.task.status == "queued" and f.agent.holding == frozenset()
    offer(f, "E3")  # the retry's offer
    f.settle()
    assert (f.task.status, f.task.escrow_id, f.task.attempt, f.agent.holding) == ("assigned", "E3", 2, {"t1"})
    refunded = sorted(ev.escrow_id for ev in f.log if isinstance(ev, e.EscrowRefunded))
    assert refunded == ["E1", "E2"]
    assert ledger_problems([ev for ev in f.log if isinstance(ev, e.LedgerEvent)]) == []


def test_a_second_reservation_on_the_agent_a_task_runs_on_is_declined_without_freeing_its_slot():
    """Kept as a defence: with lost slots held until their release this order should not arise, but if it does,
    the second escrow goes back and the slot stays with the attempt that runs there."""
    running = task_agg.TaskState("t1", seq=3, status="running", agent_id="priced", attempt=1, escrow_id="E1",
                                 nodes=(NodeSpec("a", "echo"),), agent_key=KEY)
    declined = task_agg.decide(c.AssignTask("t1", "a2", 5, "priced", "E2", KEY), running, 5)
    assert [type(ev) for ev in declined] == [e.TaskAssignmentDeclined]
    assert (declined[0].escrow_id, declined[0].agent_id) == ("E2", "")
    assert [type(cmd) for cmd in follow_up(declined[0])] == [c.RefundEscrow]


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
