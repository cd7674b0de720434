"""The read models, kept and rebuilt: the live tables read in one snapshot, and a scratch PostgreSQL schema that
the connector's own projection (`store.projection.apply_batch`) fills from the log."""
from __future__ import annotations

import uuid

from sqlalchemy import Engine, Table, select, text

from ..exceptions import StoreError
from ..store.db import create_schema, make_engine
from ..store.models import Base, audit_log, consumer_offsets, idempotency_keys, rate_windows, task_claims, workflows
from ..store.queries import AUDIT_CONSUMER

# Tables no event holds, so not derivable from the log: the API's request bookkeeping, the connector's offsets, the
# definition a chosen task id was claimed for before its command was sent, and registered workflow versions (the API
# writes them at registration; an ExecutionStarted carries the definition it pinned, a version never used is nowhere)
NOT_FOLDS = {idempotency_keys.name, rate_windows.name, consumer_offsets.name, task_claims.name, workflows.name}
IGNORED = {audit_log.name: ("id", "recorded_at")}  # when the connector wrote a row, and its row number
KEYED = {audit_log.name: ("topic", "partition", "offset")}
Position = tuple[str, int]


def read_models() -> list[Table]:
    """Every table that is a fold of the event topics: a new table is compared unless it is listed in NOT_FOLDS."""
    return [t for t in Base.metadata.sorted_tables if t.name not in NOT_FOLDS]


def key_of(table: Table) -> tuple[str, ...]:
    return KEYED.get(table.name) or tuple(c.name for c in table.primary_key.columns)


def read_rows(conn, table: Table) -> dict:
    """key -> row (column -> value), without the columns that are not the log's."""
    names = key_of(table)
    skip = IGNORED.get(table.name, ())
    out = {}
    for row in conn.execute(select(table)).mappings():
        key = row[names[0]] if len(names) == 1 else tuple(row[n] for n in names)
        out[key] = {c: (bytes(v) if isinstance(v, memoryview) else v) for c, v in row.items() if c not in skip}
    return out


def read_live(engine: Engine, topics: list[str]) -> tuple[dict[Position, int], dict[str, dict]]:
    """The offsets the read models reflect and every read model's rows, all from one snapshot of the database."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        query = select(consumer_offsets).where(consumer_offsets.c.consumer == AUDIT_CONSUMER,
                                               consumer_offsets.c.topic.in_(topics))
        offsets = {(r.topic, r.partition): r.next_offset for r in conn.execute(query)}
        rows = {t.name: read_rows(conn, t) for t in read_models()}
    return offsets, rows


class Scratch:
    """A schema of its own in the live database, with every migration applied; dropped unless kept."""

    def __init__(self, url: str, name: str | None = None):
        self.url = url
        self.name = name or f"replay_{uuid.uuid4().hex[:10]}"
        self.admin = make_engine(url)
        if self.admin.dialect.name != "postgresql":
            raise StoreError(f"replay rebuilds into a PostgreSQL schema; the store is {self.admin.dialect.name}")
        self.engine = make_engine(url, connect_args={"options": f"-csearch_path={self.name}"})

    def create(self) -> "Scratch":
        with self.admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        create_schema(self.engine)
        return self

    def rows(self) -> dict[str, dict]:
        with self.engine.connect() as conn:
            return {t.name: read_rows(conn, t) for t in read_models()}

    def drop(self) -> None:
        with self.admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))

    def close(self) -> None:
        self.engine.dispose()
        self.admin.dispose()
