"""Finding a topic's partitions, waiting for topics that another process has yet to create."""
from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from .access import KafkaAccess
from .clients import admin as admin_client

log = logging.getLogger(__name__)


async def wait_for_partitions(kafka: KafkaAccess, names: list[str], stop: asyncio.Event,
                              client_id: str = "hive-streams") -> list[TopicPartition]:
    """Every partition of `names`, once all of them exist; [] if `stop` is set first."""
    admin = admin_client(kafka, client_id=client_id)
    await admin.start()
    try:
        while True:
            # list first: a metadata request naming a missing topic makes the broker auto-create it
            missing = sorted(set(names) - set(await admin.list_topics()))
            if not missing:
                found = {t["topic"]: sorted(p["partition"] for p in t["partitions"])
                         for t in await admin.describe_topics(names)}
                return [TopicPartition(name, p) for name in names for p in found[name]]
            log.info("waiting for topics %s", ", ".join(missing))
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
                return []
            except TimeoutError:
                pass
    finally:
        await admin.close()
