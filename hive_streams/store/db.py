"""Engines for SQLite (the embedded default) and PostgreSQL, through the same code."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from ..exceptions import StoreError
from . import schema

SQLITE_BUSY_TIMEOUT_MS = 10_000


def make_engine(url: str, **kwargs) -> Engine:
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_engine(u, pool_pre_ping=True, **kwargs)
    if u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(u, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (the API) do not block the writer (the connector)
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL
    cur.close()


def create_schema(engine: Engine) -> None:
    """Brings the database to the newest migration (creating it from nothing, or adopting one made before)."""
    schema.upgrade(engine)


def insert(conn: Connection, table):
    """An INSERT with the dialect's ON CONFLICT clauses."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(conn.dialect.name)
    if dialect is None:
        raise StoreError(f"the store supports PostgreSQL and SQLite, not {conn.dialect.name}")
    return dialect.insert(table)
