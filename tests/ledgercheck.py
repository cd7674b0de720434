"""Checks over the real ledger log: every entry balances, money only enters by deposits, nobody goes negative."""
from __future__ import annotations

from collections import Counter

from hive_streams.domain import events as e
from hive_streams.domain.ledger import EXTERNAL, LedgerState, evolve

from .logcheck import distinct


def conservation_problems(ledger_events) -> list[str]:
    problems, state, deposited, withdrawn = [], LedgerState(), 0, 0
    for ev in sorted(distinct(ledger_events), key=lambda ev: ev.seq):
        if sum(leg.delta for leg in getattr(ev, "legs", ())) != 0:
            problems.append(f"{type(ev).__name__} {ev.seq} does not balance")
        deposited += ev.amount if isinstance(ev, e.FundsDeposited) else 0
        withdrawn += ev.amount if isinstance(ev, e.FundsWithdrawn) else 0
        state = evolve(state, ev)
        inside = sum(v for k, v in state.available.items() if k != EXTERNAL) + sum(state.held.values())
        if inside != deposited - withdrawn:
            problems.append(f"after seq {ev.seq}: {inside} inside != {deposited - withdrawn} deposited")
        negative = [k for k, v in {**state.available, **state.held}.items() if k != EXTERNAL and v < 0]
        if negative:
            problems.append(f"after seq {ev.seq}: negative {negative}")
    return problems


def payments_per_escrow(ledger_events) -> Counter:
    return Counter(ev.escrow_id for ev in distinct(ledger_events) if isinstance(ev, e.EscrowReleased))
