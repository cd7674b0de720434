"""Task id claims: which definition a chosen task id belongs to, decided once for every API process.

The task decider keeps the first `SubmitTask` of an id and ignores later ones, so the log never
holds two definitions for one task; but an API process that only checks what the read model has
seen would answer 202 to a second, different definition sent before the first one's event is
recorded. Claiming the id in the store before sending closes that window: the first claim wins,
the same definition again is a repeat, another one is a conflict.
"""
from __future__ import annotations

from sqlalchemy import Engine, select

from .db import insert
from .models import task_claims as table


def claim(engine: Engine, wanted: dict[str, str], now: int) -> dict[str, tuple[str, bool]]:
    """task id -> (the digest it is claimed for, whether this call made the claim)."""
    if not wanted:
        return {}
    rows = [dict(task_id=task_id, digest=digest, claimed_at=now) for task_id, digest in wanted.items()]
    with engine.begin() as conn:
        made = {r.task_id for r in conn.execute(insert(conn, table).values(rows).on_conflict_do_nothing()
                                                .returning(table.c.task_id))}
        if len(made) == len(wanted):  # every claim is new: nothing else to read
            return {task_id: (digest, True) for task_id, digest in wanted.items()}
        query = select(table.c.task_id, table.c.digest).where(table.c.task_id.in_(list(wanted)))
        held = {task_id: digest for task_id, digest in conn.execute(query)}
    return {task_id: (held[task_id], task_id in made) for task_id in wanted}
