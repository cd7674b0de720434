"""Shared fixtures: the real Kafka broker and PostgreSQL server, and per-test topics.

The broker is the launched one, with SASL/SCRAM and ACLs as in production: each test's topics get
the production ACLs for their prefix, created with the admin's credentials, and every process a
test starts logs in as its role.
"""
from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from sqlalchemy import create_engine
from aiokafka.admin import NewTopic

from hive_streams import settings as settings_mod
from hive_streams.kafka.clients import admin as admin_client
from hive_streams.topics import Topics

from .roles import as_role, grant, revoke


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    from hive_streams.infra import kafka
    s = settings_mod.load()
    bootstrap = kafka.up(s)
    # the processes tests start have homes of their own: they find the broker's users here
    os.environ["HIVE_KAFKA_CREDENTIALS"] = str(kafka.credentials_file(s))
    return bootstrap


@pytest.fixture(scope="session")
def pg_url():
    """A fresh database for this test session on the project's PostgreSQL server."""
    from hive_streams.infra import postgres
    server = postgres.up(settings_mod.load())
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield postgres.create_database(server, name)
    postgres.drop_database(server, name)


@pytest.fixture
async def topics(kafka_bootstrap):
    """Topics with a unique prefix, created with the partitions and configs of Topics.layout(), and the
    roles' ACLs on them; a worker's id (its group, its transactional ids) is the prefix itself."""
    made = Topics(prefix=f"t{uuid.uuid4().hex[:12]}")
    admin = admin_client(as_role("admin"))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=n, replication_factor=1, topic_configs=configs)
                                   for name, (n, configs) in made.layout().items()])
        await asyncio.to_thread(grant, made, made.prefix)
        yield made
        await asyncio.to_thread(revoke, made, made.prefix)
        await admin.delete_topics(list(made.layout()))
    finally:
        await admin.close()


SERVER_FIXTURES = {"kafka_bootstrap", "pg_url", "topics"}


def pytest_collection_modifyitems(items):
    """Tests that use a real server are `stack` tests: `make unit` leaves them out."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="module")
def sql(stack):
    """An engine on the store of the module's `stack`."""
    engine = create_engine(stack.database_url)
    yield engine
    engine.dispose()
