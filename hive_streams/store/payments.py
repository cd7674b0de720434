"""Read functions for money: an account's balance and history, a task's payments. Amounts in units."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AccountRow, LedgerEntryRow, LedgerPostingRow


def _units(cents: int) -> float:
    return cents / 100


def _entry(row: LedgerEntryRow) -> dict:
    return {"event_id": row.event_id, "type": row.event_type.rsplit(".", 1)[-1], "task_id": row.task_id,
            "escrow_id": row.escrow_id, "amount": _units(row.amount), "reason": row.reason, "at": row.at,
            "legs": [{**leg, "delta": _units(leg["delta"])} for leg in row.legs]}


def account(session: Session, account_id: str, limit: int = 200) -> dict | None:
    row = session.get(AccountRow, account_id)
    history = session.scalars(
        select(LedgerEntryRow).join(LedgerPostingRow, LedgerPostingRow.event_id == LedgerEntryRow.event_id)
        .where(LedgerPostingRow.account == account_id).order_by(LedgerEntryRow.seq.desc()).limit(limit)).all()
    if row is None and not history:
        return None
    available, held = (row.available, row.held) if row else (0, 0)
    return {"account": account_id, "available": _units(available), "held": _units(held),
            "balance": _units(available + held), "history": [_entry(r) for r in history]}


def task_payments(session: Session, task_id: str) -> list[dict]:
    rows = session.scalars(select(LedgerEntryRow).where(LedgerEntryRow.task_id == task_id).order_by(LedgerEntryRow.seq))
    return [_entry(r) for r in rows]
