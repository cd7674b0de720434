"""Shared fixtures: the real Kafka broker and PostgreSQL server, and per-test topics."""
from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hive_streams import settings as settings_mod
from hive_streams.topics import Topics


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    from hive_streams.infra import kafka
    return kafka.up(settings_mod.load())


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
    """Topics with a unique prefix, created with the partitions and configs of Topics.layout()."""
    made = Topics(prefix=f"t{uuid.uuid4().hex[:12]}")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=n, replication_factor=1, topic_configs=configs)
                                   for name, (n, configs) in made.layout().items()])
        yield made
        await admin.delete_topics(list(made.layout()))
    finally:
        await admin.close()


SERVER_FIXTURES = {"kafka_bootstrap", "pg_url", "topics"}


def pytest_collection_modifyitems(items):
    """Tests that use a real server are `stack` tests: `make unit` leaves them out."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)
