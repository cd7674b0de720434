"""Requests sent with an Idempotency-Key: who holds each key, and the first answer to it.

A request claims its key before it sends anything, so two requests with one key and different
bodies never both send commands; the answer replaces the claim once the request succeeded.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, select, update

from .db import insert
from .models import idempotency_keys as table

IN_FLIGHT = 0  # the status of a claim whose request has not answered yet
ABANDONED = -1  # its request failed after it may have sent commands: only the same request may retry


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: dict[str, str]


@dataclass(frozen=True)
class KeptRequest:
    scope: str
    request_digest: str
    answer: Answer | None  # None while the first request is still in flight
    created_at: int


CLAIM_ATTEMPTS = 5


def claim(engine: Engine, scope: str, caller: str, route: str, key: str, digest: str, now: int,
          stale_before: int) -> KeptRequest | None:
    """None when this request now holds the key; else what the key already holds.

    An abandoned claim, or one older than `stale_before` that never answered (its process died),
    passes to a request with the same digest: the commands it sends again have the first one's ids.
    """
    row = dict(scope=scope, caller=caller, route=route, idempotency_key=key, request_digest=digest,
               status=IN_FLIGHT, body="", headers={}, created_at=now)
    for _ in range(CLAIM_ATTEMPTS):
        with engine.begin() as conn:
            inserted = conn.execute(insert(conn, table).values(row).on_conflict_do_nothing().returning(table.c.scope))
            if inserted.first() is not None:
                return None
            held = conn.execute(select(table).where(table.c.scope == scope)).first()
            if held is None:
                continue  # its holder gave the key back between the two statements: claim it again
            unanswered = held.status == ABANDONED or (held.status == IN_FLIGHT and held.created_at < stale_before)
            if unanswered and held.request_digest == digest:
                taken = conn.execute(update(table).where(table.c.scope == scope, table.c.created_at == held.created_at,
                                                         table.c.status == held.status)
                                     .values(status=IN_FLIGHT, created_at=now))
                if taken.rowcount:
                    return None
            answer = None if held.status in (IN_FLIGHT, ABANDONED) else Answer(held.status, held.body, dict(held.headers))
            return KeptRequest(held.scope, held.request_digest, answer, held.created_at)
    return KeptRequest(scope, digest, None, now)  # the key keeps changing hands: in progress, retry


def answer(engine: Engine, scope: str, given: Answer) -> None:
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.scope == scope, table.c.status == IN_FLIGHT)
                     .values(status=given.status, body=given.body, headers=given.headers))


def release(engine: Engine, scope: str) -> None:
    """Gives the key back after a request that was refused before it sent anything."""
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.scope == scope, table.c.status == IN_FLIGHT))


def abandon(engine: Engine, scope: str) -> None:
    """Leaves the key to a retry of the same request, after a failure that may have sent some commands."""
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.scope == scope, table.c.status == IN_FLIGHT).values(status=ABANDONED))


def forget_before(engine: Engine, before: int) -> int:
    with engine.begin() as conn:
        return conn.execute(delete(table).where(table.c.created_at < before)).rowcount
