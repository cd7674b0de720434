"""The store's tables come from the migrations: the same schema as the models, on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from hive_streams.infra import postgres
from hive_streams.store import create_schema, make_engine, schema
from hive_streams.store.models import Base


def differences(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url):
    """A database of its own on the session's PostgreSQL server."""
    server, name = make_url(pg_url).set(database="postgres").render_as_string(False), f"mig_{uuid.uuid4().hex[:10]}"
    engine = make_engine(postgres.create_database(server, name))
    yield engine
    engine.dispose()
    postgres.drop_database(server, name)


def test_migrations_make_the_models_schema_on_sqlite(sqlite_engine):
    create_schema(sqlite_engine)
    assert differences(sqlite_engine) == []
    assert schema.current_revision(sqlite_engine) == schema.head_revision()


def test_migrations_make_the_models_schema_on_postgresql(pg_engine):
    create_schema(pg_engine)
    assert differences(pg_engine) == []
    assert schema.current_revision(pg_engine) == schema.head_revision()


def test_upgrading_twice_changes_nothing(sqlite_engine):
    create_schema(sqlite_engine)
    create_schema(sqlite_engine)
    assert differences(sqlite_engine) == []


def test_a_database_made_before_migrations_is_adopted(sqlite_engine):
    later = {"idempotency_keys", "rate_windows", "task_claims"}  # tables that came after the first release
    older = [t for t in Base.metadata.sorted_tables if t.name not in later]
    Base.metadata.create_all(sqlite_engine, tables=older)
    create_schema(sqlite_engine)
    assert later <= set(inspect(sqlite_engine).get_table_names())
    assert differences(sqlite_engine) == []
    assert schema.current_revision(sqlite_engine) == schema.head_revision()


@pytest.mark.parametrize("store", ["sqlite_engine", "pg_engine"])
def test_processes_starting_together_migrate_once(store, request):
    engine, errors = request.getfixturevalue(store), []

    def start():
        try:
            create_schema(engine)
        except Exception as exc:  # collected: a thread's exception would otherwise be lost
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert differences(engine) == []
