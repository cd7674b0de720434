"""Task id claims: which definition a chosen task id belongs to, decided once for every API process.

The task decider keeps the first `SubmitTask` of an id and ignores later ones, so the log never
holds two definitions for one task; but an API process that only checks what the read model has
seen would answer 202 to a second, different definition sent before the first one's event is
recorded. Claiming the id in the store before sending closes that window: the first claim wins,
the same definition again is a repeat, another one is a conflict.
"""
from __future__ import annotations

from sqlalchemy import Connection, Engine, select, text

from .db import insert
from .models import task_claims as table

# On PostgreSQL a batch is three arrays, so the statement's text is the same for 1 claim or 1,000: no multi-row
# VALUES for SQLAlchemy to compile and psycopg and PostgreSQL to parse again for each size.
_CLAIM = text(f"INSERT INTO {table.name} (task_id, digest, claimed_at) SELECT * FROM unnest("
              "CAST(:ids AS text[]), CAST(:digests AS text[]), CAST(:ats AS bigint[])) "
              "ON CONFLICT DO NOTHING RETURNING task_id")
_HELD = text(f"SELECT task_id, digest FROM {table.name} WHERE task_id = ANY(CAST(:ids AS text[]))")


def claim(engine: Engine, wanted: dict[str, str], now: int) -> dict[str, tuple[str, bool]]:
    """task id -> (the digest it is claimed for, whether this call made the claim)."""
    if not wanted:
        return {}
    with engine.begin() as conn:
        made = _insert(conn, wanted, now)
        if len(made) == len(wanted):  # every claim is new: nothing else to read
            return {task_id: (digest, True) for task_id, digest in wanted.items()}
        held = dict(_held(conn, list(wanted)))
    return {task_id: (held[task_id], task_id in made) for task_id in wanted}


def _insert(conn: Connection, wanted: dict[str, str], now: int) -> set[str]:
    if conn.dialect.name == "postgresql":  # in id order: two batches that share ids lock them in one order, no deadlock
        ids = sorted(wanted)
        found = conn.execute(_CLAIM, dict(ids=ids, digests=[wanted[i] for i in ids], ats=[now] * len(ids)))
    else:
        rows = [dict(task_id=task_id, digest=digest, claimed_at=now) for task_id, digest in wanted.items()]
        found = conn.execute(insert(conn, table).values(rows).on_conflict_do_nothing().returning(table.c.task_id))
    return {r.task_id for r in found}


def _held(conn: Connection, ids: list[str]):
    if conn.dialect.name == "postgresql":
        return conn.execute(_HELD, dict(ids=ids)).all()
    return conn.execute(select(table.c.task_id, table.c.digest).where(table.c.task_id.in_(ids))).all()
