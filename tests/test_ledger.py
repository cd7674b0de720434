from hypothesis import given, settings, strategies as st

from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.ledger import EXTERNAL, INSUFFICIENT_FUNDS, LEDGER_ID, LedgerState, decide, evolve


def apply(state, cmd):
    events = decide(cmd, state, 1)
    for ev in events:
        state = evolve(state, ev)
    return state, events


def deposit(account, amount, cid="d"):
    return c.DepositFunds(LEDGER_ID, cid, 1, account, amount)


def test_escrow_is_held_paid_once_with_the_fee_and_never_refunded_after():
    state, _ = apply(LedgerState(), deposit("alice", 1000))
    state, held = apply(state, c.HoldEscrow(LEDGER_ID, "h", 1, "t1:a:1", "t1", "alice", "agent", 400))
    assert isinstance(held[0], e.EscrowHeld) and state.balance("alice") == (600, 400)
    state, paid = apply(state, c.ReleaseEscrow(LEDGER_ID, "r", 1, "t1:a:1", fee_bps=500))
    assert paid[0].fee == 20 and state.balance("agent") == (380, 0) and state.balance("platform") == (20, 0)
    assert state.balance("alice") == (600, 0)
    assert decide(c.ReleaseEscrow(LEDGER_ID, "r2", 2, "t1:a:1", 500), state, 2) == []
    assert decide(c.RefundEscrow(LEDGER_ID, "x", 2, "t1:a:1"), state, 2) == []


def test_refund_returns_the_hold_and_insufficient_funds_is_refused():
    state, _ = apply(LedgerState(), deposit("alice", 300))
    state, _ = apply(state, c.HoldEscrow(LEDGER_ID, "h", 1, "e1", "t1", "alice", "agent", 300))
    state, refused = apply(state, c.HoldEscrow(LEDGER_ID, "h2", 1, "e2", "t2", "alice", "agent", 1))
    assert isinstance(refused[0], e.EscrowRefused) and refused[0].reason == INSUFFICIENT_FUNDS
    state, _ = apply(state, c.RefundEscrow(LEDGER_ID, "r", 1, "e1", "task failed"))
    assert state.balance("alice") == (300, 0)


def test_withdrawals_cannot_overdraw():
    state, _ = apply(LedgerState(), deposit("agent", 100))
    _, refused = apply(state, c.WithdrawFunds(LEDGER_ID, "w", 1, "agent", 101))
    assert isinstance(refused[0], e.WithdrawalRefused)
    state, _ = apply(state, c.WithdrawFunds(LEDGER_ID, "w2", 1, "agent", 100))
    assert state.balance("agent") == (0, 0) and state.available[EXTERNAL] == 0


ACCOUNTS = ["alice", "bob", "agent-1", "agent-2"]
commands = st.one_of(
    st.builds(lambda a, n: c.DepositFunds(LEDGER_ID, "d", 1, a, n), st.sampled_from(ACCOUNTS), st.integers(1, 500)),
    st.builds(lambda a, n: c.WithdrawFunds(LEDGER_ID, "w", 1, a, n), st.sampled_from(ACCOUNTS), st.integers(1, 500)),
    st.builds(lambda i, r, a, n: c.HoldEscrow(LEDGER_ID, "h", 1, f"e{i}", f"t{i}", r, a, n),
              st.integers(0, 9), st.sampled_from(ACCOUNTS[:2]), st.sampled_from(ACCOUNTS[2:]), st.integers(0, 300)),
    st.builds(lambda i, fee: c.ReleaseEscrow(LEDGER_ID, "r", 1, f"e{i}", fee), st.integers(0, 9), st.integers(0, 3000)),
    st.builds(lambda i: c.RefundEscrow(LEDGER_ID, "f", 1, f"e{i}"), st.integers(0, 9)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=60), st.data())
def test_money_is_conserved_and_never_negative(cmds, data):
    state, log, deposited, withdrawn, released = LedgerState(), [], 0, 0, {}
    for cmd in cmds:
        state, events = apply(state, cmd)
        log += events
        if events and data.draw(st.booleans()):  # a redelivery changes nothing
            assert evolve(state, events[-1]) == state
        for ev in events:
            assert sum(leg.delta for leg in getattr(ev, "legs", ())) == 0, ev
            deposited += ev.amount if isinstance(ev, e.FundsDeposited) else 0
            withdrawn += ev.amount if isinstance(ev, e.FundsWithdrawn) else 0
            if isinstance(ev, e.EscrowReleased):
                released[ev.escrow_id] = released.get(ev.escrow_id, 0) + 1
        inside = sum(v for k, v in state.available.items() if k != EXTERNAL) + sum(state.held.values())
        assert inside == deposited - withdrawn
        assert all(v >= 0 for k, v in state.available.items() if k != EXTERNAL) and all(v >= 0 for v in state.held.values())
    assert all(n == 1 for n in released.values())
