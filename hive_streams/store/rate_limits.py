"""Rate-limit counts in the store, so every API process counts against the same limit.

One row per (key, minute); taking adds to it in one statement, only while the sum stays within the
limit, so concurrent requests in any process can never pass it together.
"""
from __future__ import annotations

from sqlalchemy import Engine, delete

from .db import insert
from .models import rate_windows as table


def take(engine: Engine, key: str, window_start: int, count: int, limit: int) -> bool:
    """Adds `count` to the key's window when the total stays at most `limit`; False (and no change) otherwise."""
    if count > limit:
        return False
    with engine.begin() as conn:
        stmt = insert(conn, table).values(key=key, window_start=window_start, count=count)
        stmt = stmt.on_conflict_do_update(index_elements=[table.c.key, table.c.window_start],
                                          set_={"count": table.c.count + count},
                                          where=table.c.count + count <= limit)
        return conn.execute(stmt.returning(table.c.count)).first() is not None


def forget_before(engine: Engine, window_start: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.window_start < window_start))
