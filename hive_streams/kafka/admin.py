"""Creating the project's topics with the partitions and retention in topics.py."""
from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ..exceptions import InfraError
from ..topics import Topics
from .access import KafkaAccess
from .clients import admin as admin_client

ALREADY_EXISTS = 36


def replication_for(brokers: int, factor: int = 0, min_insync: int = 0) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of new topics; 0 asks for the default for `brokers` brokers:
    three replicas, two in sync, on a cluster of three or more, one otherwise."""
    factor = factor or (3 if brokers >= 3 else 1)
    min_insync = min_insync or (2 if factor >= 3 else 1)
    if factor > brokers:
        raise InfraError(f"replication factor {factor} needs {factor} brokers; the cluster has {brokers}")
    if min_insync > factor:
        raise InfraError(f"min.insync.replicas {min_insync} is more than the replication factor {factor}")
    return factor, min_insync


async def ensure_topics(kafka: KafkaAccess, topics: Topics, replication: int = 0, min_insync: int = 0) -> list[str]:
    """Creates the missing topics (the worker's and the admin's credentials may); returns the names it created.
    Their replication follows `replication_for` the brokers the cluster has now."""
    admin = admin_client(kafka, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = {name: spec for name, spec in topics.layout().items() if name not in existing}
        if not missing:
            return []
        brokers = len((await admin.describe_cluster())["brokers"])
        factor, insync = replication_for(brokers, replication, min_insync)
        wanted = [NewTopic(name, parts, factor, topic_configs={**configs, "min.insync.replicas": str(insync)})
                  for name, (parts, configs) in missing.items()]
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


async def delete_topics(kafka: KafkaAccess, topics: Topics) -> list[str]:
    """Deletes the deployment's topics that exist (a test's, a demo's); returns the names it deleted."""
    admin = admin_client(kafka, request_timeout_ms=15000)
    await admin.start()
    try:
        doomed = sorted(set(topics.layout()) & set(await admin.list_topics()))
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()
