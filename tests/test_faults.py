"""Tasks and money through a fabric under faults, checked on the whole raw log.

Three workers on four partitions; in a loop a worker is SIGKILLed and restarted, another is
frozen past its session timeout and resumed, an executor is killed and restarted, and the API
is restarted. Deposits and withdrawals are sent with Idempotency-Keys, each twice on purpose.
`make soak` runs the same test with HIVE_FAULT_TASKS=1200.
"""
from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import create_engine, text

from hive_streams.domain import events as e
from hive_streams.processes import wait_until

from .chaos import Chaos, new_key, post_until_accepted
from .eventlog import whole_log
from .logcheck import endings, evidence, history, last_problems, log_problems
from .stack import Stack

pytestmark = pytest.mark.stack
TASKS = int(os.environ.get("HIVE_FAULT_TASKS", "300"))
BATCH = 20
DEPOSITS, DEPOSIT = 12, 50.0
WITHDRAWALS, WITHDRAWAL = 8, 1.25
SESSION_TIMEOUT = 6
SPREAD_SECONDS = 60  # submissions spread over two rounds of faults: every partition keeps getting commands
# With transactions held open a second, a slot turns over once per ~3.5 s (reserve, assign, complete: a transaction
# each, plus the run): 12 slots end ~3.4 tasks/s, so 1,200 tasks need ~350 s after the last fault; twice that to end
ENDING_SECONDS = max(300, TASKS * 7 // 12)
EXECUTORS = {
    "free-a": ("echo,sleep", 4),
    "free-b": ("echo,sleep", 4),
    "priced": ("echo,sleep", 4, "--price", "0.2"),
}


def definition(i: int) -> dict:
    task = {"id": f"fault-{i}", "name": f"fault-{i}", "priority": i % 5, "nodes": [
        {"id": "a", "kind": "sleep", "seconds": 0.1},
        {"id": "b", "kind": "echo", "value": i, "depends_on": ["a"]}]}
    if i % 3 == 0:
        task["budget"] = 1.0  # the priced agent may take it: paid from escrow
    return task


def logged(stack: Stack, text: str) -> int:
    """How often the workers' logs say `text`."""
    return sum(p.log_path.read_text(errors="replace").count(text)
               for p in stack.fabric.processes if p.name.startswith("worker") and p.log_path.exists())


def zombies_fenced(stack: Stack) -> int:
    """How many times a thawed or deposed worker's transaction was refused by the broker."""
    return logged(stack, "fenced on ")


def terminal_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("select count(*) from tasks where task_id like 'tests:fault-%' and status in "
                                 "('completed', 'failed', 'cancelled', 'rejected')")).scalar()


@pytest.mark.timeout(1800)
def test_tasks_and_money_survive_kills_freezes_and_restarts(kafka_bootstrap, pg_url, tmp_path):
    stack = Stack(kafka_bootstrap, pg_url, tmp_path, partitions=4,
                  HIVE_SESSION_TIMEOUT_SECONDS=str(SESSION_TIMEOUT), HIVE_AGENT_TIMEOUT_SECONDS="4",
                  HIVE_COMMIT_INTERVAL_MS="1000",  # a freeze lands mid-transaction: the thawed worker is a zombie
                  HIVE_SNAPSHOT_EVERY_EVENTS="100", HIVE_SNAPSHOT_EVERY_SECONDS="20",  # owners start from snapshots taken between faults
                  HIVE_PLATFORM_FEE_BPS="500").start(EXECUTORS, workers=3)
    engine = create_engine(stack.database_url)
    # a frozen worker's partitions move before it wakes; a killed one's have moved before the next fault
    chaos = Chaos(stack, EXECUTORS, freeze_seconds=SESSION_TIMEOUT + 8, settle_seconds=SESSION_TIMEOUT + 4)
    try:
        stack.wait_for_agents(len(EXECUTORS))
        deadline = time.monotonic() + 600
        chaos.start()
        deposit_keys = [new_key("deposit") for _ in range(DEPOSITS)]
        withdrawal_keys = [new_key("withdraw") for _ in range(WITHDRAWALS)]
        money = [("deposits", k, DEPOSIT) for k in deposit_keys] + [("withdrawals", k, WITHDRAWAL)
                                                                     for k in withdrawal_keys]

        def send_money():
            kind, key, amount = money.pop(0)
            post_until_accepted(stack.base_url, f"/api/accounts/{stack.account()}/{kind}", {"amount": amount}, key,
                                deadline, sends=2, headers=stack.auth())

        send_money()  # funds before the first priced task
        for start in range(0, TASKS, BATCH):
            batch = [definition(i) for i in range(start, min(TASKS, start + BATCH))]
            post_until_accepted(stack.base_url, "/api/tasks", batch, new_key("batch"), deadline, headers=stack.auth())
            if money:
                send_money()
            time.sleep(SPREAD_SECONDS * BATCH / TASKS)  # work keeps arriving while the faults go on
        while money:
            send_money()
        while (chaos.rounds < 2 or not zombies_fenced(stack)) and chaos.rounds < 6 and time.monotonic() < deadline:
            time.sleep(1)
        chaos.stop()
        assert chaos.rounds >= 2, chaos.done
        assert zombies_fenced(stack), f"no thawed worker tried to write: the zombie path went unexercised {chaos.done}"
        assert logged(stack, "from snapshot at events offset"), "no owner started from a snapshot"

        wait_until(lambda: terminal_count(engine) == TASKS, ENDING_SECONDS, interval=1,
                   what=f"{TASKS} tasks to end after {chaos.done}")
        stack.fabric.check_alive()

        # the whole raw log: nothing undecodable, no two different events at one aggregate/seq, seqs 1..n,
        # every task ended once, assignments backed by slots, no agent over its slots, entries balanced,
        # money inside = deposits - withdrawals, every escrow settled once
        problems = last_problems(lambda: log_problems(whole_log(kafka_bootstrap, stack.topics)), 60)
        assert problems == [], evidence(whole_log(kafka_bootstrap, stack.topics), problems)
        h = history(whole_log(kafka_bootstrap, stack.topics))
        assert len(endings(h)) == TASKS and all(sum(c.values()) == 1 for c in endings(h).values())
        ledger = h.events("ledger")
        deposited = [ev for ev in ledger if isinstance(ev, e.FundsDeposited)]
        taken = [ev for ev in ledger if isinstance(ev, (e.FundsWithdrawn, e.WithdrawalRefused))]
        assert len(deposited) == DEPOSITS and sum(ev.amount for ev in deposited) == DEPOSITS * round(DEPOSIT * 100)
        assert len(taken) == WITHDRAWALS, [type(ev).__name__ for ev in taken]
        assert any(isinstance(ev, e.EscrowReleased) for ev in ledger), "no priced task was paid: money went unexercised"
    finally:
        chaos.stop()
        stack.stop()
        engine.dispose()
