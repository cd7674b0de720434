"""Escrow, settlement, refunds and signed results through the real stack, checked from the ledger log."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from hive_streams.codec import default_codec, event_id
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.ledger import INSUFFICIENT_FUNDS, LEDGER_ID
from hive_streams.kafka.principal import principal_header
from hive_streams.processes import wait_until

from .eventlog import events_of, whole_log
from .roles import as_role, service_sealer
from .ledgercheck import ledger_problems, payments_per_escrow
from .logcheck import history, last_problems, log_problems
from .stack import Stack

pytestmark = pytest.mark.stack
AGENTS = {"paid-a": ("echo,sleep", 2, "--price", "2"), "paid-b": ("echo,sleep", 2, "--price", "2"),
          "honest": ("echo,verify:0.5", 1, "--price", "1")}
SLOW = {"name": "paid", "nodes": [{"id": "work", "kind": "sleep", "seconds": 1.5}]}
CHECKED = {"name": "checked", "requires": [{"name": "verify", "proficiency": 0.1}],
           "nodes": [{"id": "answer", "kind": "echo", "value": "forty-two"}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("pay"), HIVE_AGENT_TIMEOUT_SECONDS="5")
    s.start(AGENTS)
    for agent_id, mode in (("rogue-flip", "flip"), ("rogue-key", "wrong-key")):
        s.fabric.spawn(agent_id, "--agent-id", agent_id, "--mode", mode, "--capabilities", "echo,verify:1.0",
                       "--price", "1", module="tests.rogue")
    s.wait_for_agents(5)
    yield s
    s.stop()


def account(stack: Stack, account_id: str) -> dict:
    response = stack.client.http.get(f"/api/accounts/{account_id}")
    return response.json() if response.status_code == 200 else {"available": 0.0, "held": 0.0, "history": []}


def deposits(stack: Stack, account_id: str) -> int:
    return sum(h["type"] == "FundsDeposited" for h in account(stack, account_id)["history"])


def deposit(stack: Stack, account_id: str, amount: float) -> None:
    before = deposits(stack, account_id)  # not the balance: an escrow may take the money at once
    response = stack.client.http.post(f"/api/accounts/{account_id}/deposits", json={"amount": amount})
    assert response.status_code == 202, response.text
    wait_until(lambda: deposits(stack, account_id) > before, 60, what="the deposit")


def payer(stack: Stack, sub: str) -> str:
    """The account a developer named `sub` pays from: the requester of the tasks it submits."""
    return stack.account("developer", sub)


def submit_as(stack: Stack, sub: str, definition: dict) -> str:
    response = stack.client_as("developer", sub).http.post("/api/tasks", json=definition)
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def ledger_log(stack: Stack) -> list:
    """The ledger's one history, after every record of its topic was checked for undecodable and conflicting ones."""
    h = history(events_of(stack.bootstrap, stack.topics.ledger_events, 1))
    assert h.problems == []
    return h.events("ledger")


def money_problems(stack: Stack) -> list[str]:
    return ledger_problems(ledger_log(stack))


def test_bad_money_requests_get_a_clear_4xx(stack):
    post = stack.client.http.post
    assert post("/api/accounts/x/deposits", json={"amount": -1}).json()["field"] == "amount"
    assert post("/api/accounts/x/deposits", json={"amount": 1.234}).json()["field"] == "amount"
    assert post("/api/accounts/external/deposits", json={"amount": 1}).status_code == 422
    assert stack.client.http.get("/api/accounts/nobody").status_code == 404


def test_escrow_waits_for_funds_then_settles_with_the_fee(stack):
    deposit(stack, payer(stack, "alice"), 5)
    tasks = [submit_as(stack, "alice", SLOW) for _ in range(3)]

    def short_of_funds():  # tasks on different partitions reach the market in any order: any one may wait
        poor = [t for t in tasks if (stack.client.task(t) or {}).get("waiting_reason") == INSUFFICIENT_FUNDS]
        return poor if len(poor) == 1 else None
    third = wait_until(short_of_funds, 60, what="one task to wait for funds")[0]
    first, second = (t for t in tasks if t != third)
    for task_id in (first, second):
        assert list(stack.client.follow(task_id, timeout=60))[-1].event == "TaskCompleted"
    assert stack.client.task(third)["status"] == "queued"  # 1.00 left cannot pay 2.00
    deposit(stack, payer(stack, "alice"), 3)
    assert list(stack.client.follow(third, timeout=60))[-1].event == "TaskCompleted"

    wait_until(lambda: account(stack, "platform")["available"] >= 0.30, 30, what="three fees")
    alice = account(stack, payer(stack, "alice"))
    assert (alice["available"], alice["held"]) == (2.0, 0.0)
    earned = account(stack, "paid-a")["available"] + account(stack, "paid-b")["available"]
    assert round(earned, 2) == 5.70 and account(stack, "platform")["available"] == 0.30
    kinds = [p["type"] for p in stack.client.http.get(f"/api/tasks/{first}/payments").json()["payments"]]
    assert kinds == ["EscrowHeld", "EscrowReleased"]
    assert money_problems(stack) == []


def test_withdrawals_leave_through_the_ledger(stack):
    balance = account(stack, "paid-a")["available"]
    assert balance > 0
    post = stack.client.http.post
    assert post("/api/accounts/paid-a/withdrawals", json={"amount": balance + 100}).status_code == 202
    assert post("/api/accounts/paid-a/withdrawals", json={"amount": balance}).status_code == 202
    wait_until(lambda: account(stack, "paid-a")["available"] == 0.0, 30, what="the withdrawal")
    history = [h["type"] for h in account(stack, "paid-a")["history"]]
    assert "WithdrawalRefused" in history and "FundsWithdrawn" in history
    assert money_problems(stack) == []


def test_a_redelivered_completion_pays_once(stack):
    task_id = submit_as(stack, "alice", SLOW)
    assert list(stack.client.follow(task_id, timeout=60))[-1].event == "TaskCompleted"
    completed = next(r for r in events_of(stack.bootstrap, stack.topics.task_events, stack.topics.partitions)
                     if isinstance(r.event, e.TaskCompleted) and r.event.task_id == task_id)
    codec = default_codec()

    async def replay():
        producer = AIOKafkaProducer(**as_role("worker").options())  # a worker redelivering
        await producer.start()
        try:  # the same completion again, the same payment command again, then a marker behind them
            await producer.send_and_wait(stack.topics.task_events, completed.value, key=completed.key,
                                         headers=list(completed.headers), partition=completed.partition)
            ev = completed.event
            again = c.ReleaseEscrow(LEDGER_ID, "again", 1, ev.escrow_id, 500, ev.task_id, ev.agent_id, event_id(ev))
            for command in (again, c.DepositFunds(LEDGER_ID, "marker", 2, "marker", 1)):
                key, value, headers = codec.message(command, "/test", causation_id=event_id(ev))
                headers.append(principal_header("tests/admin"))
                headers.append(service_sealer().header(value, headers))
                await producer.send_and_wait(stack.topics.ledger_commands, value, key=key, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(replay())
    wait_until(lambda: account(stack, "marker")["available"] == 0.01, 30, what="the marker behind the replays")
    releases = payments_per_escrow(ledger_log(stack))
    assert releases[completed.event.escrow_id] == 1 and set(releases.values()) == {1}
    assert money_problems(stack) == []


def test_tampered_results_are_rejected_refunded_and_retried_elsewhere(stack):
    deposit(stack, payer(stack, "bob"), 10)
    task_id = submit_as(stack, "bob", CHECKED)
    frames = list(stack.client.follow(task_id, timeout=120))
    rejected = [(f.data["agent_id"], f.data["reason"]) for f in frames if f.event == "ResultRejected"]
    assert rejected == [("rogue-flip", "output digest does not match the output"), ("rogue-key", "bad signature")]
    assert frames[-1].event == "TaskCompleted" and frames[-1].data["agent_id"] == "honest"
    assert frames[-1].data["signature"] and frames[-1].data["result_digest"]
    wait_until(lambda: [p["type"] for p in stack.client.http.get(f"/api/tasks/{task_id}/payments").json()["payments"]]
               .count("EscrowReleased") == 1, 30, what="the honest payment")
    payments = stack.client.http.get(f"/api/tasks/{task_id}/payments").json()["payments"]
    assert [p["type"] for p in payments] == ["EscrowHeld", "EscrowRefunded", "EscrowHeld", "EscrowRefunded",
                                             "EscrowHeld", "EscrowReleased"]
    assert account(stack, "rogue-flip")["available"] == 0.0 and account(stack, "rogue-key")["available"] == 0.0
    assert account(stack, "honest")["available"] == 0.95
    assert account(stack, payer(stack, "bob"))["available"] == 9.0
    rogue = stack.client.http.get("/api/agents/rogue-flip/reputation").json()
    assert rogue["rejected"] == 1 and rogue["events"][0]["task_id"] == task_id
    assert money_problems(stack) == []


def test_the_whole_log_holds_every_invariant(stack):
    """Last, over everything the tests above did: one history per aggregate, every task ended once, every
    assignment backed by a slot, every result digest right, every escrow settled once and the right way."""
    assert last_problems(lambda: log_problems(whole_log(stack.bootstrap, stack.topics)), 60) == []
