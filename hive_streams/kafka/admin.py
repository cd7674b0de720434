"""Creating the project's topics with the partitions and retention in topics.py."""
from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ..exceptions import InfraError
from ..topics import Topics
from .access import KafkaAccess
from .clients import admin as admin_client

ALREADY_EXISTS = 36


async def ensure_topics(kafka: KafkaAccess, topics: Topics, replication: int = 1) -> list[str]:
    """Creates the missing topics (the worker's and the admin's credentials may); returns the names it created."""
    admin = admin_client(kafka, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(name, parts, replication, topic_configs=configs)
                  for name, (parts, configs) in topics.layout().items() if name not in existing]
        if not wanted:
            return []
        response = await admin.create_topics(wanted, timeout_ms=15000)
        for name, code, *rest in response.topic_errors:
            if code not in (0, ALREADY_EXISTS):
                raise InfraError(f"cannot create topic {name}: error {code} {rest[0] if rest else ''}")
        await _wait_for_metadata(admin, {t.name for t in wanted})
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def _wait_for_metadata(admin: AIOKafkaAdminClient, names: set[str], timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not names <= set(await admin.list_topics()):
        if loop.time() > deadline:
            raise InfraError(f"topics not visible after {timeout}s: {sorted(names)}")
        await asyncio.sleep(0.1)
