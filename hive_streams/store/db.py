"""Engines for SQLite (the embedded default) and PostgreSQL, through the same code."""
from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

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


def _json(value) -> Jsonb:
    """None is JSON null, as INSERT writes it; a value that carries its JSON text (`json_text`) is not encoded again."""
    text = getattr(value, "json_text", None)
    return Jsonb(value) if text is None else Jsonb(text, dumps=str)


def _pg_type(column, dialect) -> str:
    """The column's PostgreSQL type name as COPY's binary format needs it: `varchar`, not `VARCHAR(200)`."""
    return column.type.compile(dialect=dialect).split("(", 1)[0].lower()


def append(conn: Connection, table, rows: list[dict]) -> None:
    """Inserts new rows: on PostgreSQL with one binary COPY for them all instead of an INSERT a row (binary: the
    records' bytes go as they are, not as hex text the server decodes again); elsewhere an executemany INSERT. A row
    that breaks a unique constraint raises IntegrityError on both."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    json = {c for c in columns if isinstance(table.c[c].type.dialect_impl(conn.dialect), (JSON, postgresql.JSONB))}
    names = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
    statement = f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({names}) FROM STDIN (FORMAT BINARY)"
    try:
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types([_pg_type(table.c[c], conn.dialect) for c in columns])
            for row in rows:
                copy.write_row([_json(row[c]) if c in json else row[c] for c in columns])
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(statement, None, exc) from exc
