"""The example analytics consumer's fold: a day's tasks and money per tenant."""
from connectors.daily_costs import DailyCosts
from hive_streams.domain import events as e
from hive_streams.domain.model import NodeSpec

DAY = 1_800_000_000_000  # 2027-01-15T08:00Z
LOG = [
    e.TaskSubmitted(task_id="t1", seq=1, at=DAY, name="n", requester="acme/alice", nodes=(NodeSpec("a", "echo"),)),
    e.EscrowHeld(ledger_id="main", seq=1, at=DAY, escrow_id="x1", task_id="t1", requester="acme/alice", agent_id="box",
                 amount=500),
    e.TaskCompleted(task_id="t1", seq=2, at=DAY + 1000, agent_id="box", outputs=()),
    e.EscrowReleased(ledger_id="main", seq=2, at=DAY + 1000, escrow_id="x1", task_id="t1", agent_id="box", amount=500,
                     fee=25),
    e.EscrowRefunded(ledger_id="main", seq=3, at=DAY + 86_400_000, escrow_id="x2", task_id="t2",
                     requester="globex/bob", amount=300, reason="cancelled"),
]


def test_costs_per_day_and_tenant_counted_once():
    costs = DailyCosts()
    for ev in LOG + LOG:
        costs.apply(ev)
    assert costs.days == {
        "2027-01-15": {"acme": {"submitted": 1, "completed": 1, "failed": 0, "spent": 500, "fees": 25, "refunded": 0}},
        "2027-01-16": {"globex": {"submitted": 0, "completed": 0, "failed": 0, "spent": 0, "fees": 0, "refunded": 300}},
    }
    assert DailyCosts.from_json(costs.to_json()) == costs
