"""How a worker takes and gives back its command partitions.

The range of partition numbers the group assigns gets a `writers.Writer`, whose start fences every earlier owner of
one of them (a crashed, frozen or deposed worker). Only then is each partition folded, from its newest snapshot and
the committed events after it, and resumed after the last command whose events are in the log. A partition that
fails to load stays paused, and the worker asks the group for its partitions again, later each time. A revoked
partition commits what it decided first; a fenced writer gives up every partition it served.

`Ownership` is the `Engine`'s half that does this; the engine provides the deciding it hands partitions to
(`_drive`, `_commit`, `_commit_locked`, `_snapshot`) and the matcher's lead (`_lead_matcher`, `_stop_matcher`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from aiokafka import ConsumerRebalanceListener, TopicPartition

from ..cancelling import cancel_all, cancel_and_wait
from ..collector import folding
from ..kafka import read_to_end, stop_quietly, transactional_producer
from ..metrics import SNAPSHOT_AGE, forget_lag
from .deciders import PartitionState
from .snapshots import Snapshots
from .snapshots import load as snapshot_load
from .writers import Owned, Writer, fenced_by, span_of, writer_id

log = logging.getLogger(__name__)
LOAD_RETRY = (1.0, 30.0)  # seconds before a worker whose partitions failed to load asks for them again: first, most


class Ownership:
    def __init__(self) -> None:
        self.owned: dict[TopicPartition, Owned] = {}
        self.writers: dict[int, Writer] = {}  # partition number -> the writer of its range, while one is assigned
        self.loading: dict[TopicPartition, asyncio.Task] = {}
        self.rejoining: asyncio.Task | None = None  # a rejoin asked for after a failed load
        self.load_retry = LOAD_RETRY[0]
        self.load_failed = False  # a load of the current assignment failed
        self.stopping = False  # the worker is stopping: no rejoin is asked for

    async def assigned(self, tps) -> None:
        mine = [tp for tp in tps if tp.topic in self.families]
        if self.rejoining is not None:
            self.rejoining.cancel()  # this assignment is the one it asked for, or came first
            self.rejoining = None  # cancelled is not done yet: a rejoin this assignment asks for must not wait on it
        self.load_failed = False
        for writer in {id(w): w for w in self.writers.values()}.values():  # kept over a rebalance we missed:
            await self._drop_writer(writer)  # taken again from the log, its open transaction included
        # loaded outside this callback: the group's heartbeats stop while it runs, and a long load
        # would get the worker evicted; the partitions stay paused until they are loaded
        self.consumer.pause(*mine)
        if not mine:
            return
        span = self._span(mine)
        if span is None:  # judged on this worker's view of the topics: make it current, then judge again
            with contextlib.suppress(asyncio.TimeoutError):  # the group's heartbeats wait on this callback
                await asyncio.wait_for(self.consumer._client.force_metadata_update(),
                                       self.settings.session_timeout_seconds / 3)
            span = self._span(mine, warn=True)
        if span is None:
            self._rejoin_later()  # the counts may be put right meanwhile: ask again, later each time
            return
        writer = self._writer(span)
        for tp in mine:
            self.loading[tp] = asyncio.create_task(self._load(tp, writer), name=f"load {tp.topic}[{tp.partition}]")

    def _writer(self, span: tuple[int, int]) -> Writer:
        partitions = self._partitions()
        ids = [writer_id(self.group, other) for other in fenced_by(span, partitions) if other != span]
        writer = Writer(span, transactional_producer(self.kafka, writer_id(self.group, span)), self.group,
                        [transactional_producer(self.kafka, other) for other in ids])
        for number in range(span[0], span[1] + 1):
            self.writers[number] = writer
        writer.fenced = asyncio.create_task(writer.fence(), name=f"fence the writer of {writer.name}")
        return writer

    def _span(self, mine, warn: bool = False) -> tuple[int, int] | None:
        """The range of partition numbers the assignment gives this worker, or None when it cannot be taken."""
        if self._counts_differ(warn):
            return None
        try:
            return span_of({tp.partition for tp in mine})
        except ValueError as exc:  # the leader saw counts that differ; this worker's view does not show it
            if warn:
                log.error("%s: the command topics' partition counts differ; this worker asks the group for its "
                          "partitions again", exc)
            return None

    def _counts_differ(self, warn: bool = False) -> bool:
        """Whether the command topics (the ledger's single one aside) have different partition counts on the broker.
        Then nothing is decided here: the partitions stay paused. With more workers the range assignment would give
        one numbers that form no one range, or a range that meets another's, and their writers would fence each
        other; alone, a worker folds and routes by one count a topic (the settings' layout) the others no longer
        follow."""
        counts = {topic: len(found) for topic in self.families if topic != self.topics.ledger_commands
                  if (found := self.consumer.partitions_for_topic(topic))}  # unknown to the metadata: not judged
        if len(set(counts.values())) <= 1:
            return False
        if warn:
            log.error("the command topics have different partition counts (%s): nothing is decided until every command "
                      "topic has the same count (kafka-topics --alter --partitions); this worker asks the group for "
                      "its partitions again meanwhile", ", ".join(f"{topic}: {n}" for topic, n in sorted(counts.items())))
        return True

    def _partitions(self) -> int:
        """The partition count the assignor saw (the broker's, not the settings'): the fenced ranges are those it
        gives, and a count other than the layout's would leave some out."""
        counts = {len(self.consumer.partitions_for_topic(topic) or ()) for topic in self.families}
        layout = max(family.partitions for family in self.families.values())
        if max(counts) != layout:
            log.warning("the command topics have %s partitions, the settings say %d: fencing by the topics",
                        sorted(counts), layout)
        return max(counts) or layout

    async def _load(self, tp: TopicPartition, writer: Writer) -> None:
        try:
            await self._own(tp, writer)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not take %s", tp)
            self.loading.pop(tp, None)
            self.load_failed = True
            if self._unused(writer):
                await self._drop_writer(writer)  # the next assignment fences again
            self._rejoin_later()
            return
        finally:
            self.loading.pop(tp, None)
        if not self.loading and not self.load_failed:  # the whole assignment is taken
            self.load_retry = LOAD_RETRY[0]
        self.consumer.resume(tp)
        if tp == TopicPartition(self.topics.ledger_commands, 0) and self.matcher_task is None:
            self.matcher_task = asyncio.create_task(self._lead_matcher(), name="matcher")

    def _rejoin_later(self) -> None:
        """A partition that failed to load (a fence or a read the broker refused for a while) would stay paused
        until some rebalance came, and none may: the worker asks for one itself, later each time it fails again."""
        if self.stopping or (self.rejoining is not None and not self.rejoining.done()):
            return
        delay = self.load_retry * random.uniform(0.8, 1.2)  # workers failing together do not rejoin together
        self.load_retry = min(self.load_retry * 2, LOAD_RETRY[1])
        log.warning("asking the group for this worker's partitions again in %.1fs", delay)

        async def rejoin() -> None:
            await asyncio.sleep(delay)
            self._ask_rejoin()
        self.rejoining = asyncio.create_task(rejoin(), name="rejoin after a failed load")

    def _ask_rejoin(self) -> None:
        self.consumer._coordinator.request_rejoin()  # aiokafka has no public call for this

    async def revoked(self, tps) -> None:
        await cancel_all([self.loading.pop(tp) for tp in tps if tp in self.loading])
        mine = sorted(f"{tp.topic}[{tp.partition}]" for tp in tps if tp in self.owned)
        open_txns = sum(1 for tp in tps if tp in self.owned and self.owned[tp].txn is not None)
        log.info("revoked %s (%d with an open transaction)", ", ".join(mine) or "nothing", open_txns)
        if TopicPartition(self.topics.ledger_commands, 0) in tps:
            await self._stop_matcher()
        for tp in tps:
            owned = self.owned.get(tp)
            if owned is not None:
                await self._commit(owned)  # what it decided is kept: the next owner resumes after it
                async with owned.writer.lock:
                    await self._release(owned)
        unused = {id(w): w for w in self.writers.values() if self._unused(w)}  # loads cancelled before they owned
        for writer in unused.values():
            await self._drop_writer(writer)

    async def _own(self, tp: TopicPartition, writer: Writer) -> None:
        family = self.families[tp.topic]
        started = time.monotonic()
        await asyncio.shield(writer.fenced)  # one load cancelled must not cancel the fencing the others wait on
        state = PartitionState(self.codec, family.aggregate, self.topics, family.events_topic, tp.partition,
                               family.partitions, self.settings.platform_fee_bps, self.settings.record_max_kb * 1024,
                               self.sealer, self.seal)
        snapshots = Snapshots(self.codec)
        count = 0
        with folding():  # a load makes many objects and frees none: no collection on the way
            start, source = await snapshot_load(self.kafka, snapshots, state,
                                                TopicPartition(family.snapshots_topic, tp.partition))
            async for records in read_to_end(self.kafka,
                                             {TopicPartition(family.events_topic, tp.partition): start}):
                for record in records:
                    state.observe(record)
                count += len(records)
        committed = await self.consumer.committed(tp)
        resume = max(committed or 0, state.decided_to + 1)
        if self.writers.get(tp.partition) is not writer:
            raise RuntimeError(f"the writer of partition {tp.partition} was dropped while {tp} loaded")
        self.consumer.seek(tp, resume)
        owned = self.owned[tp] = writer.members[tp] = Owned(tp, state, writer, snapshots)
        owned.driver = asyncio.create_task(self._drive(owned), name=f"decide {tp.topic}[{tp.partition}]")
        if count >= self.settings.snapshot_every_events:  # the next start should not fold this again
            async with owned.writer.lock:
                await self._commit_locked(writer)  # a snapshot is a transaction of its own
                if self.owned.get(tp) is owned:
                    await self._snapshot(owned)
        log.info("own %s[%d]: %d aggregates from %s and %d events in %.2fs; resuming at %d (committed %s)",
                 tp.topic, tp.partition, state.count(), source, count, time.monotonic() - started, resume,
                 committed)

    async def _release(self, owned: Owned) -> None:
        self.owned.pop(owned.tp, None)
        writer = owned.writer
        writer.members.pop(owned.tp, None)
        forget_lag(self.group, [owned.tp])
        with contextlib.suppress(KeyError):
            SNAPSHOT_AGE.remove(self.families[owned.tp.topic].events_topic, str(owned.tp.partition))
        owned.inbox.clear()
        owned.txn = None
        if owned.driver is not None and owned.driver is not asyncio.current_task():
            owned.driver.cancel()
        if self._unused(writer):
            await self._drop_writer(writer)

    def _unused(self, writer: Writer) -> bool:
        """Whether the writer is current but serves no partition and none of its number is loading."""
        return (not writer.members and self.writers.get(writer.span[0]) is writer
                and not any(writer.serves(tp.partition) for tp in self.loading))

    async def _drop_writer(self, writer: Writer) -> None:
        """Releases every partition the writer serves and stops it (an open transaction aborts with it)."""
        for number in [n for n, w in self.writers.items() if w is writer]:
            del self.writers[number]
        for owned in list(writer.members.values()):
            await self._release(owned)
        if writer.fenced is not None:
            await cancel_and_wait(writer.fenced)
        writer.opened = None
        # shielded: a caller cancelled meanwhile (a load that is revoked) must not leave producers running
        await asyncio.shield(asyncio.gather(*(stop_quietly(fencer, "a fencing producer") for fencer in writer.fencers),
                                            stop_quietly(writer.producer, f"the writer of {writer.name}")))


class Listener(ConsumerRebalanceListener):
    def __init__(self, ownership: Ownership):
        self.ownership = ownership

    async def on_partitions_revoked(self, revoked):
        await self.ownership.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned):
        await self.ownership.assigned(set(assigned))
