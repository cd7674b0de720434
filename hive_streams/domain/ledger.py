"""The ledger: one aggregate that owns every account, so each entry balances within one event.

Amounts are integer cents. Every event carries its legs (account, bucket, delta); the deltas
of one event sum to zero, the `external` account standing for money entering or leaving the
fabric. Buckets: `available` and `held` (escrow).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import singledispatch

from . import commands as c
from . import events as e
from .evolving import Handlers, copy_with, quick_init
from .model import Leg

LEDGER_ID = "main"
EXTERNAL = "external"
PLATFORM = "platform"
INSUFFICIENT_FUNDS = "insufficient_funds"


def cents(amount: float) -> int:
    return round(amount * 100)


@dataclass(frozen=True)
class Escrow:
    escrow_id: str
    task_id: str
    requester: str
    agent_id: str
    amount: int
    status: str = "held"  # held, released, refunded


@quick_init
@dataclass(frozen=True)
class LedgerState:
    ledger_id: str = LEDGER_ID
    seq: int = 0
    available: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    escrows: dict[str, Escrow] = field(default_factory=dict)

    def balance(self, account: str) -> tuple[int, int]:
        return self.available.get(account, 0), self.held.get(account, 0)


def decide(command: c.LedgerCommand, state: LedgerState, now: int) -> list[e.LedgerEvent]:
    drafts = _decide(command, state, now)
    return [replace(ev, seq=state.seq + i + 1) for i, ev in enumerate(drafts)]


def _base(state: LedgerState, now: int) -> dict:
    return {"ledger_id": state.ledger_id, "seq": 0, "at": now}


@singledispatch
def _decide(command, state: LedgerState, now: int) -> list[e.LedgerEvent]:
    raise TypeError(f"unknown ledger command {type(command).__name__}")


@_decide.register
def _(cmd: c.DepositFunds, state: LedgerState, now: int):
    if cmd.amount <= 0 or cmd.account == EXTERNAL:
        return []
    legs = (Leg(EXTERNAL, "available", -cmd.amount), Leg(cmd.account, "available", cmd.amount))
    return [e.FundsDeposited(**_base(state, now), account=cmd.account, amount=cmd.amount, reference=cmd.reference,
                             legs=legs)]


@_decide.register
def _(cmd: c.WithdrawFunds, state: LedgerState, now: int):
    if cmd.amount <= 0:
        return []
    if state.available.get(cmd.account, 0) < cmd.amount:
        return [e.WithdrawalRefused(**_base(state, now), account=cmd.account, amount=cmd.amount,
                                    reason=INSUFFICIENT_FUNDS)]
    legs = (Leg(cmd.account, "available", -cmd.amount), Leg(EXTERNAL, "available", cmd.amount))
    return [e.FundsWithdrawn(**_base(state, now), account=cmd.account, amount=cmd.amount, legs=legs)]


@_decide.register
def _(cmd: c.HoldEscrow, state: LedgerState, now: int):
    if cmd.escrow_id in state.escrows or cmd.amount < 0:
        return []
    ids = dict(escrow_id=cmd.escrow_id, task_id=cmd.task_id, requester=cmd.requester, agent_id=cmd.agent_id,
               round_id=cmd.round_id)
    if state.available.get(cmd.requester, 0) < cmd.amount:
        return [e.EscrowRefused(**_base(state, now), **ids, amount=cmd.amount, reason=INSUFFICIENT_FUNDS)]
    legs = (Leg(cmd.requester, "available", -cmd.amount), Leg(cmd.requester, "held", cmd.amount))
    return [e.EscrowHeld(**_base(state, now), **ids, amount=cmd.amount, legs=legs)]


@_decide.register
def _(cmd: c.ReleaseEscrow, state: LedgerState, now: int):
    escrow = state.escrows.get(cmd.escrow_id)
    if escrow is None or escrow.status != "held":
        return []  # unknown, or paid or refunded already: never twice
    fee = escrow.amount * cmd.fee_bps // 10_000
    legs = (Leg(escrow.requester, "held", -escrow.amount), Leg(escrow.agent_id, "available", escrow.amount - fee),
            Leg(PLATFORM, "available", fee))
    return [e.EscrowReleased(**_base(state, now), escrow_id=escrow.escrow_id, task_id=escrow.task_id,
                             agent_id=escrow.agent_id, amount=escrow.amount, fee=fee, legs=legs)]


@_decide.register
def _(cmd: c.RefundEscrow, state: LedgerState, now: int):
    escrow = state.escrows.get(cmd.escrow_id)
    if escrow is None or escrow.status != "held":
        return []
    legs = (Leg(escrow.requester, "held", -escrow.amount), Leg(escrow.requester, "available", escrow.amount))
    return [e.EscrowRefunded(**_base(state, now), escrow_id=escrow.escrow_id, task_id=escrow.task_id,
                             requester=escrow.requester, amount=escrow.amount, reason=cmd.reason, legs=legs)]


def release_problem(cmd: c.ReleaseEscrow, state: LedgerState, max_fee_bps: int) -> str:
    """Why a release of a held escrow cannot be taken, or empty: the fee is the platform's at most, and
    the release names the escrow's own task and agent and the completion of that task that earned it."""
    escrow = state.escrows.get(cmd.escrow_id)
    if escrow is None or escrow.status != "held":
        return ""  # nothing to pay: decide does nothing
    if not 0 <= cmd.fee_bps <= max_fee_bps:
        return f"fee of {cmd.fee_bps} bps is outside 0..{max_fee_bps}, the platform's fee"
    if (cmd.task_id, cmd.agent_id) != (escrow.task_id, escrow.agent_id):
        return (f"release names task {cmd.task_id!r} on agent {cmd.agent_id!r}; escrow {escrow.escrow_id} is for "
                f"task {escrow.task_id!r} on agent {escrow.agent_id!r}")
    task_id, _, seq = cmd.completed_by.rpartition("/")
    if task_id != escrow.task_id or not seq.isdigit() or int(seq) < 1:
        return f"release names no completion of task {escrow.task_id!r} ({cmd.completed_by!r})"
    return ""


def touched_accounts(ev: e.LedgerEvent) -> set[str]:
    """The accounts a ledger event concerns: those its legs move and those it names."""
    named = {getattr(ev, name, "") for name in ("account", "requester", "agent_id")}
    return ({leg.account for leg in getattr(ev, "legs", ())} | named) - {""}


def evolve(state: LedgerState, event: e.LedgerEvent) -> LedgerState:
    if event.seq <= state.seq:
        return state
    changes = _posted(state, getattr(event, "legs", ()))
    more = _on(event, state)
    if more:
        changes.update(more)
    return copy_with(state, changes, seq=event.seq)


def _posted(state: LedgerState, legs) -> dict:
    """The balances after the legs: a new dict for each bucket they touch."""
    changes: dict = {}
    for leg in legs:
        name = "available" if leg.bucket == "available" else "held"
        bucket = changes.get(name)
        if bucket is None:
            bucket = changes[name] = dict(getattr(state, name))
        bucket[leg.account] = bucket.get(leg.account, 0) + leg.delta
    return changes


def _escrow(state: LedgerState, escrow_id: str, **changes) -> dict:
    return {"escrows": {**state.escrows, escrow_id: replace(state.escrows[escrow_id], **changes)}}


_on = Handlers("ledger", fallback=lambda event, state: None)  # deposits, withdrawals and refusals: legs only


@_on.on(e.EscrowHeld)
def _(ev: e.EscrowHeld, state: LedgerState):
    escrow = Escrow(ev.escrow_id, ev.task_id, ev.requester, ev.agent_id, ev.amount)
    return {"escrows": {**state.escrows, ev.escrow_id: escrow}}


@_on.on(e.EscrowReleased)
def _(ev: e.EscrowReleased, state: LedgerState):
    return _escrow(state, ev.escrow_id, status="released")


@_on.on(e.EscrowRefunded)
def _(ev: e.EscrowRefunded, state: LedgerState):
    return _escrow(state, ev.escrow_id, status="refunded")
