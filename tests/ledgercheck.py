"""Checks over the ledger's one history: every entry balances, money enters only by deposits and leaves
only by withdrawals, nobody goes negative, every escrow is held once and settled at most once.

Balances are summed from the legs here, not by the domain's fold, so a bug in the fold cannot hide.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from hive_streams.domain import events as e
from hive_streams.domain.ledger import EXTERNAL

MOVES_MONEY = (e.FundsDeposited, e.FundsWithdrawn, e.EscrowHeld, e.EscrowReleased, e.EscrowRefunded)
SETTLES = (e.EscrowReleased, e.EscrowRefunded)


def ledger_problems(ledger_events, all_settled: bool = False) -> list[str]:
    """`ledger_events`: one history, in seq order. `all_settled`: every held escrow must be settled by now."""
    return conservation_problems(ledger_events) + escrow_problems(ledger_events, all_settled)


def conservation_problems(ledger_events) -> list[str]:
    problems, balances, money_in = [], defaultdict(int), 0
    for ev in ledger_events:
        name = f"{type(ev).__name__} {ev.ledger_id}/{ev.seq}"
        if isinstance(ev, MOVES_MONEY) and not ev.legs:
            problems.append(f"{name} moves money without legs")
        if sum(leg.delta for leg in getattr(ev, "legs", ())) != 0:
            problems.append(f"{name} does not balance: {[(l.account, l.bucket, l.delta) for l in ev.legs]}")
        money_in += ev.amount if isinstance(ev, e.FundsDeposited) else -ev.amount if isinstance(ev, e.FundsWithdrawn) else 0
        for leg in getattr(ev, "legs", ()):
            balances[(leg.account, leg.bucket)] += leg.delta
        inside = sum(v for (account, _), v in balances.items() if account != EXTERNAL)
        if inside != money_in:
            problems.append(f"after {name}: {inside} inside != {money_in} deposited less withdrawn")
        negative = sorted(k for k, v in balances.items() if k[0] != EXTERNAL and v < 0)
        if negative:
            problems.append(f"after {name}: negative {negative}")
    return problems


def escrow_problems(ledger_events, all_settled: bool = False) -> list[str]:
    held = Counter(ev.escrow_id for ev in ledger_events if isinstance(ev, e.EscrowHeld))
    settled = Counter(ev.escrow_id for ev in ledger_events if isinstance(ev, SETTLES))
    out = [f"escrow {x} held {n} times" for x, n in sorted(held.items()) if n > 1]
    out += [f"escrow {x} settled {n} times" for x, n in sorted(settled.items()) if n > 1]
    out += [f"escrow {x} settled but never held" for x in sorted(settled) if x not in held]
    if all_settled:
        out += [f"escrow {x} never settled" for x in sorted(held) if x not in settled]
    return out


def payments_per_escrow(ledger_events) -> Counter:
    return Counter(ev.escrow_id for ev in ledger_events if isinstance(ev, e.EscrowReleased))
