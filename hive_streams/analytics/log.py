"""Reading topics as decoded rows: committed records only, from the beginning, to the end or on (`follow`)."""
from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone

from aiokafka import TopicPartition

from ..codec import header
from ..codec.avro import to_record
from ..exceptions import CodecError, InfraError
from ..kafka.access import KafkaAccess
from ..kafka.clients import admin, consumer
from ..kafka.principal import PRINCIPAL_HEADER
from ..kafka.reader import read_to_end
from .filters import Filter, TenantIndex

FOLLOW_POLL_MS = 500


@dataclass(frozen=True)
class Row:
    topic: str
    partition: int
    offset: int
    key: str
    obj: object
    tenant: str
    headers: tuple

    @property
    def type(self) -> str:
        return type(self.obj).__name__

    def as_json(self) -> dict:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset, "key": self.key,
                "type": self.type, "time": iso(self.obj.at), "tenant": self.tenant,
                "id": header(self.headers, "ce_id"), "event": jsonable(to_record(self.obj))}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonable(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


async def partitions(kafka: KafkaAccess, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the topics; a topic missing (or not readable by this role) is an error."""
    client = admin(kafka, client_id="hive-analytics")
    await client.start()
    try:
        missing = sorted(set(topics) - set(await client.list_topics()))
        if missing:
            raise InfraError(f"no topic {', '.join(missing)} that {kafka.username} may read (HIVE_TOPIC_PREFIX?)")
        found = {t["topic"]: sorted(p["partition"] for p in t["partitions"])
                 for t in await client.describe_topics(topics)} if topics else {}
        return [TopicPartition(t, p) for t in topics for p in found[t]]
    finally:
        await client.close()


async def size(kafka: KafkaAccess, tps: list[TopicPartition]) -> int:
    """How many offsets the partitions hold now (an upper bound on their records: markers take offsets too)."""
    probe = consumer(kafka, client_id="hive-analytics")
    await probe.start()
    try:
        first, last = await probe.beginning_offsets(tps), await probe.end_offsets(tps)
        return sum(last[tp] - first[tp] for tp in tps)
    finally:
        await probe.stop()


async def raw_records(kafka: KafkaAccess, tps: list[TopicPartition], follow: bool = False) -> AsyncIterator[list]:
    """Batches of committed records from the beginning: to the end seen now, or on until cancelled."""
    if not follow:
        async for batch in read_to_end(kafka, {tp: None for tp in tps}):
            yield batch
        return
    reader = consumer(kafka, client_id="hive-analytics")
    await reader.start()
    try:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        while True:
            for batch in (await reader.getmany(timeout_ms=FOLLOW_POLL_MS)).values():
                yield batch
    finally:
        await reader.stop()


async def rows(kafka: KafkaAccess, topics: list[str], wanted: Filter, codec, follow: bool = False,
               skipped: list | None = None) -> AsyncIterator[Row]:
    """The decoded records the filter wants; undecodable ones are counted into `skipped` (where, why)."""
    tenants = TenantIndex()
    tps = await partitions(kafka, [t for t in topics if wanted.wants_topic(t)])
    async for batch in raw_records(kafka, tps, follow):
        for record in batch:
            try:
                obj = codec.decode(record.value)
            except CodecError as exc:
                if skipped is not None:
                    skipped.append((f"{record.topic}[{record.partition}]@{record.offset}", str(exc)))
                continue
            key = record.key.decode(errors="replace") if record.key else ""
            tenant = tenants.tenant(obj, header(record.headers, PRINCIPAL_HEADER))
            if wanted.matches(record.topic, key, obj, tenant):
                yield Row(record.topic, record.partition, record.offset, key, obj, tenant, tuple(record.headers))
