"""`audit verify`: the published heads, then the table, then the log, compared partition by partition.

The order matters while the connector runs: every head read names a row the table snapshot holds,
and every row of that snapshot is a record the log holds by the time it is read to its end.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from aiokafka import TopicPartition
from sqlalchemy import Engine, select

from ..codec import Codec
from ..kafka import KafkaAccess, read_to_end
from ..kafka.reader import end_offsets as partition_ends
from ..store.models import audit_log, consumer_offsets
from ..store.queries import AUDIT_CONSUMER
from ..topics import Topics
from .checkpoints import Head, published
from .compare import Finding, compare
from .rows import LogRecord, from_consumer_record

Position = tuple[str, int]


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    rows: int = 0
    records: int = 0
    heads: int = 0
    checked: int = 0
    pending: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings


def table_snapshot(engine: Engine, prefix: str) -> tuple[dict[Position, dict[int, dict]], dict[Position, int]]:
    """Every audit row of this deployment's topics, and the connector's progress read before them: the connector
    commits rows and progress together, so every record below the progress has its row in what is read after."""
    rows: dict[Position, dict[int, dict]] = {}
    with engine.begin() as conn:
        progress = {(r.topic, r.partition): r.next_offset
                    for r in conn.execute(select(consumer_offsets).where(consumer_offsets.c.consumer == AUDIT_CONSUMER))}
        query = select(audit_log).where(audit_log.c.topic.startswith(f"{prefix}.", autoescape=True))
        for row in conn.execute(query).mappings():
            rows.setdefault((row["topic"], row["partition"]), {})[row["offset"]] = dict(row)
    return rows, progress


async def end_offsets(kafka: KafkaAccess, topics: Topics) -> dict[TopicPartition, int]:
    layout = topics.layout()
    parts = [TopicPartition(t, p) for t in topics.event_topics for p in range(layout[t][0])]
    return await partition_ends(kafka, parts, client_id="hive-audit-verify")


async def verify(kafka: KafkaAccess, engine: Engine, codec: Codec, topics: Topics,
                 advance: Callable[[int], None] = lambda n: None) -> Report:
    """`advance(n)` is told of every n records read from the log (a progress bar's feed)."""
    heads = await published(kafka, topics.audit_checkpoints)
    rows, progress = table_snapshot(engine, topics.prefix)
    ends = await end_offsets(kafka, topics)
    records: dict[Position, list[LogRecord]] = {}
    async for batch in read_to_end(kafka, {tp: None for tp in ends}):
        for r in batch:
            records.setdefault((r.topic, r.partition), []).append(from_consumer_record(codec, r))
        advance(len(batch))
    by_partition: dict[Position, list[Head]] = {}
    for head in heads:
        by_partition.setdefault((head.topic, head.partition), []).append(head)
    report = Report(rows=sum(map(len, rows.values())), records=sum(map(len, records.values())), heads=len(heads))
    for topic, partition in sorted(set(rows) | set(records) | set(by_partition)):
        outcome = compare(topic, partition, records.get((topic, partition), []), rows.get((topic, partition), {}),
                          progress.get((topic, partition)), by_partition.get((topic, partition), []))
        report.findings += outcome.findings
        report.checked += outcome.checked
        report.pending += outcome.pending
    return report
