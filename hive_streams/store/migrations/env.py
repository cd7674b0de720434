"""Alembic's entry point: migrates the connection the store hands over, else the configured database."""
from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from hive_streams.store.models import Base


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def configured_url() -> str:
    from hive_streams.settings import load
    return context.config.get_main_option("sqlalchemy.url") or load().store_url


if context.is_offline_mode():
    context.configure(url=configured_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := context.config.attributes.get("connection")) is not None:
    run(given)
else:
    from hive_streams.store.db import make_engine
    engine = make_engine(configured_url(), poolclass=pool.NullPool)
    with engine.begin() as connection:
        run(connection)
    engine.dispose()
