"""Replay: fold the event topics with the workers' own code, rebuild the read models into a scratch schema, and
compare them with the live read models and with each decider's and the matcher's newest snapshot.

Every event topic (`Topics.event_topics`) is folded: its records are audit rows; task, agent and ledger events also
feed their read models. Executions, schedules, triggers and callbacks have no SQL read model (the API and the worker
fold their events when asked), so their decider snapshots are what is compared; the alerts have neither.

The live read models are read in one database snapshot together with the offsets they reflect; the log is folded
exactly to those offsets, so a fabric that keeps running does not show up as a difference. Each decider snapshot
is compared with a fold (`PartitionState.observe`, as a worker that takes the partition folds) of its partition
to the events offset the snapshot says it reflects; the matcher's snapshot with the matcher's own fold of the
task, agent and ledger events to the offsets it names (`matcher_check.py`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from aiokafka import TopicPartition

from ..audit.rows import from_consumer_record
from ..codec import Codec
from ..collector import folding
from ..exceptions import InfraError
from ..kafka.access import KafkaAccess
from ..kafka.clients import consumer
from ..kafka.clock import now_ms
from ..kafka.partitions import wait_for_partitions
from ..kafka.reader import read_to_end
from ..settings import Settings
from ..store.db import make_engine
from ..store.projection import apply_batch
from ..streams.deciders import PartitionState, family_aggregates
from ..streams.snapshots import Snapshots, load as load_snapshot
from ..topics import Topics
from .compare import Difference, compare
from .matcher_check import WHERE as MATCHER, MatcherCheck, matcher_check
from .scratch import Scratch, read_live

log = logging.getLogger(__name__)
CONSUMER = "replay"  # the scratch schema's key in its own consumer_offsets
BATCH = 2000  # records per scratch transaction
TOPICS_WAIT = 30.0


@dataclass
class Report:
    events: int = 0
    seconds: float = 0.0
    scratch: str = ""
    kept: bool = False
    compared: dict[str, int] = field(default_factory=dict)  # table or snapshot -> keys compared
    differences: list[Difference] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class Partition:
    """One events partition: how far to project it, and the decider snapshot to check, if there is one."""
    tp: TopicPartition
    project_to: int | None  # None: to the end (or to the first event after `until`)
    snapshot: PartitionState | None = None
    snapshot_to: int = 0
    fold: PartitionState | None = None
    cut: bool = False  # an event after `until` was seen: nothing more of it is projected


def families(topics: Topics, settings: Settings) -> dict[str, tuple[object, str]]:
    """events topic -> (aggregate, snapshots topic) of every decider family, as the worker's engine has them."""
    return {events: (aggregate, topics.snapshots_of(events))
            for _, events, aggregate in family_aggregates(topics, settings)}


async def partitions_of(kafka: KafkaAccess, names: list[str]) -> tuple[list[TopicPartition], dict, dict]:
    """Every partition of the topics with its first and end offsets."""
    try:
        tps = await asyncio.wait_for(wait_for_partitions(kafka, names, asyncio.Event(), "hive-replay"), TOPICS_WAIT)
    except TimeoutError:
        raise InfraError(f"{', '.join(names)} not found in {TOPICS_WAIT:.0f}s: is HIVE_TOPIC_PREFIX right?") from None
    reader = consumer(kafka, client_id="hive-replay")
    await reader.start()
    try:
        return tps, await reader.beginning_offsets(tps), await reader.end_offsets(tps)
    finally:
        await reader.stop()


async def replay(settings: Settings, codec: Codec, kafka: KafkaAccess, *, until: int | None = None,
                 keep: bool = False, progress: Callable[[int, int], None] = lambda total, done: None) -> Report:
    """Rebuilds and compares; with `until` (epoch ms) rebuilds the read models as they were then and compares
    nothing (the live read models are of now): the scratch schema is kept for a look."""
    started = time.monotonic()
    topics = Topics.from_settings(settings)
    names = list(topics.event_topics)  # every one is audited; each decider family's also has snapshots
    tps, firsts, ends = await partitions_of(kafka, names)
    parts = {tp: Partition(tp, None) for tp in tps}
    report = Report(kept=keep or until is not None)
    making = asyncio.create_task(asyncio.to_thread(lambda: Scratch(settings.store_url).create()))
    live_rows, matcher = None, MatcherCheck()
    try:
        if until is None:
            offsets, live_rows = await asyncio.to_thread(_read_live, settings.store_url, names)
            for tp, part in parts.items():
                part.project_to = offsets.get((tp.topic, tp.partition), firsts[tp])
            deciders = families(topics, settings)
            await asyncio.gather(*[_snapshot_of(p, deciders[tp.topic], settings, codec, kafka, topics)
                                   for tp, p in parts.items() if tp.topic in deciders])
            matcher = await matcher_check(kafka, codec, topics, settings)
        scratch = await making
    except BaseException:
        making.cancel()
        raise
    report.scratch = scratch.name
    log.debug("live rows, snapshots and the scratch schema ready at %.2fs", time.monotonic() - started)
    stops = {tp: max(p.project_to if p.project_to is not None else ends[tp], p.snapshot_to, matcher.stops.get(tp, 0))
             for tp, p in parts.items()}
    total = sum(max(0, min(stops[tp], ends[tp]) - firsts[tp]) for tp in tps)
    try:
        with folding():
            report.events = await _fold_log(scratch, codec, kafka, parts, stops, until,
                                            lambda n: progress(total, n), matcher)
        progress(total, total)
        log.debug("log folded at %.2fs", time.monotonic() - started)
        if live_rows is not None:
            rebuilt = await asyncio.to_thread(scratch.rows)
            for table, kept in live_rows.items():
                report.compared[table] = len(kept.keys() | rebuilt[table].keys())
                report.differences += compare(table, kept, rebuilt[table])
        for part in parts.values():
            _compare_snapshot(part, report)
        if matcher.problem or matcher.snapshot is not None:
            report.compared[MATCHER], found = matcher.differences()
            report.differences += found
    finally:
        if not report.kept:
            await asyncio.to_thread(scratch.drop)
        scratch.close()
    report.seconds = time.monotonic() - started
    return report


def _read_live(url: str, names: list[str]):
    live = make_engine(url)
    try:
        return read_live(live, names)
    finally:
        live.dispose()


async def _snapshot_of(part: Partition, family: tuple[object, str], settings: Settings, codec: Codec,
                       kafka: KafkaAccess, topics: Topics) -> None:
    aggregate, snapshots_topic = family

    def state() -> PartitionState:
        return PartitionState(codec, aggregate, topics, part.tp.topic, part.tp.partition, topics.partitions,
                              settings.platform_fee_bps)
    snapshot = state()
    offset, how = await load_snapshot(kafka, Snapshots(codec), snapshot, TopicPartition(snapshots_topic, part.tp.partition))
    if how == "snapshot ignored":
        part.snapshot = snapshot  # empty: reported below
        part.snapshot_to = -1
    elif offset > 0:
        part.snapshot, part.snapshot_to, part.fold = snapshot, offset, state()


def _compare_snapshot(part: Partition, report: Report) -> None:
    if part.snapshot is None:
        return
    where = f"{part.tp.topic.rsplit('.', 1)[0]}.snapshots[{part.tp.partition}]"
    if part.snapshot_to < 0:
        report.differences.append(Difference(where, "newest", "changed", "the newest snapshot does not decode or does "
                                             "not match the log (a worker taking the partition folds from the start)"))
        return
    restored = part.snapshot.wake_all()
    report.compared[where] = len(restored.keys() | part.fold.states.keys())
    report.differences += compare(where, restored, part.fold.states)
    report.differences += compare(where + " applied", part.snapshot.applied, part.fold.applied)


async def _fold_log(scratch: Scratch, codec: Codec, kafka: KafkaAccess, parts: dict[TopicPartition, Partition],
                    stops: dict, until: int | None, advanced: Callable[[int], None], matcher: MatcherCheck) -> int:
    """Reads the log once: folds each snapshot's partition (the deciders' and the matcher's), and projects batches
    into the scratch schema while the next batch is read (one writer, in log order)."""
    batches: asyncio.Queue = asyncio.Queue(maxsize=2)

    async def writer() -> None:
        while (batch := await batches.get()) is not None:
            records, next_offsets = batch
            await asyncio.to_thread(apply_batch, scratch.engine, CONSUMER, records, next_offsets, now_ms())

    writing = asyncio.create_task(writer())
    pending, next_offsets, read = [], {}, 0

    async def flush() -> None:
        nonlocal pending, next_offsets
        if pending:
            await _put(batches, writing, (pending, next_offsets))
            pending, next_offsets = [], {}

    try:
        async for records in read_to_end(kafka, {tp: None for tp in parts}, stops=stops):
            part = parts[TopicPartition(records[0].topic, records[0].partition)]
            for record in records:
                matcher.observe(record)
                if part.fold is not None and record.offset < part.snapshot_to:
                    part.fold.observe(record)
                if part.cut or (part.project_to is not None and record.offset >= part.project_to):
                    continue
                log_record = from_consumer_record(codec, record)
                if until is not None and log_record.event is not None and log_record.event.at > until:
                    part.cut = True
                    continue
                pending.append(log_record)
                next_offsets[(record.topic, record.partition)] = record.offset + 1
            read += len(records)
            advanced(read)
            if len(pending) >= BATCH:
                await flush()
        await flush()
        await _put(batches, writing, None)
        await writing
    finally:
        writing.cancel()
    return read


async def _put(queue: asyncio.Queue, writing: asyncio.Task, item) -> None:
    """Queues for the writer, unless the writer failed: then its error is raised here."""
    putting = asyncio.ensure_future(queue.put(item))
    await asyncio.wait([putting, writing], return_when=asyncio.FIRST_COMPLETED)
    if writing.done() and not putting.done():
        putting.cancel()
    if writing.done() and writing.exception() is not None:
        raise writing.exception()
