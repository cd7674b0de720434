"""The worker's engine: one consumer group over the command topics, one fenced writer for what it is assigned.

The range of partition numbers this worker is assigned gets a `writers.Writer`, whose start fences every earlier
owner of one of them (a crashed, frozen or deposed worker): their open transaction aborts and any later write of
theirs fails. Only then does the engine fold the events partitions (committed records only) and resume after the
last command whose events are in the log. Each transaction holds what the worker's partitions decided meanwhile:
the consumed offsets, the events, the follow-up commands and the dead letters become visible together, or not at
all. One writer for every family and partition rather than one each: a task's hops go through several families
and partitions, and at a moderate rate each would commit a transaction of one batch.

The owner of the ledger's single partition also leads the matcher.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from ..cancelling import cancel_all, cancel_and_wait
from ..codec import Codec
from ..collector import folding
from ..kafka import (CommandSender, access_for, consumer, now_ms, read_to_end, stop_quietly,
                     transactional_producer)
from ..kafka.batches import send_records
from ..metrics import (COMMANDS_DECIDED, DEAD_LETTERS, DECIDE_BATCH, DECIDE_DURATION, SNAPSHOT_AGE, forget_lag,
                       record_lag)
from ..settings import Settings
from ..topics import Topics, partition_for
from ..kafka.seal import SealCheck, Sealer, service_secret
from .deciders import Aggregate, Decided, PartitionState, family_aggregates
from .alerting import Alerter
from .matcher import Matcher
from .snapshots import Snapshots
from .snapshots import load as snapshot_load
from .snapshots import records as snapshot_records
from .callbacks import Deliverer
from .triggers import TriggerWatch
from .writers import ASSIGNOR, Owned, Transaction, Writer, fenced_by, span_of, writer_id

log = logging.getLogger(__name__)
BATCH = 1000
DECIDE_CHUNK = 500  # commands a transaction takes from a partition's inbox: the loop is not held for long, and
# one partition's batch is sent and committed while the next is decided
INBOX_LIMIT = 5000  # fetched commands a partition may hold before its fetching pauses
RESEND_MS = 5000  # a sweep command not yet decided is sent again after this
IN_PLACE_DEPTH = 4  # follow-ups of follow-ups decided in place: hold escrow, reserve a slot, assign is 2 deep
LOAD_RETRY = (1.0, 30.0)  # seconds before a worker whose partitions failed to load asks for them again: first, most
OFFSETS_WAIT = 0.5  # seconds the offset of commands that wrote nothing waits for a transaction that writes; then
# it gets one of its own. Read again after a crash meanwhile, they write nothing again


@dataclass(frozen=True)
class Family:
    aggregate: Aggregate
    events_topic: str
    partitions: int
    snapshots_topic: str


class Engine:
    def __init__(self, settings: Settings, codec: Codec):
        self.settings = settings
        self.codec = codec
        self.topics = Topics.from_settings(settings)
        self.group = settings.worker_id
        self.kafka = access_for(settings, "worker")
        layout = self.topics.layout()
        timeout_ms = int(settings.agent_timeout_seconds * 1000)
        self.triggers = TriggerWatch(self.kafka, codec, self.topics, f"{self.group}-triggers")
        self.families = {commands: Family(aggregate, events, layout[commands][0], self.topics.snapshots_of(events))
                         for commands, events, aggregate in family_aggregates(self.topics, settings,
                                                                              self.triggers.matches)}
        self.owned: dict[TopicPartition, Owned] = {}
        self.writers: dict[int, Writer] = {}  # partition number -> the writer of its range, while one is assigned
        self.loading: dict[TopicPartition, asyncio.Task] = {}
        self.consumer = None
        secret = service_secret(settings.service_secret, settings.home, create=True)
        self.sealer, self.seal = Sealer.service(secret), SealCheck(secret)
        self.sender = CommandSender(self.kafka, self.topics, codec, "/hive-streams/sweep", sealer=self.sealer)
        self.deliverer = Deliverer(settings, self.sender)
        self.requested: dict[str, int] = {}
        self.matcher = Matcher(codec, self.topics, settings, timeout_ms, alerter=Alerter(codec, self.topics, settings),
                               sealer=self.sealer)
        self.matcher_task: asyncio.Task | None = None
        self.rejoining: asyncio.Task | None = None  # a rejoin asked for after a failed load
        self.load_retry = LOAD_RETRY[0]
        self.load_failed = False  # a load of the current assignment failed
        self.stopping = False
        self.decided = 0  # events written, for status and benchmarks
        self.commit_interval = settings.commit_interval_ms / 1000

    async def run(self, stop: asyncio.Event) -> None:
        self.consumer = consumer(self.kafka, group_id=self.group, client_id=f"{self.group}-deciders",
                                 session_timeout_ms=int(self.settings.session_timeout_seconds * 1000),
                                 heartbeat_interval_ms=max(500, int(self.settings.session_timeout_seconds * 200)),
                                 max_poll_interval_ms=60_000, rebalance_timeout_ms=60_000,
                                 partition_assignment_strategy=(ASSIGNOR,))
        self.consumer.subscribe(list(self.families), listener=_Listener(self))
        await self.consumer.start()
        await self.sender.start()
        watching = asyncio.create_task(self.triggers.serve(), name="trigger watch")
        last_sweep = 0.0
        try:
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=100, max_records=BATCH)
                for tp, records in batch.items():
                    owned = self.owned.get(tp)
                    if owned is not None:
                        owned.inbox += records
                        owned.wake.set()
                        if len(owned.inbox) >= INBOX_LIMIT:
                            self.consumer.pause(tp)  # its driver resumes it once it has caught up
                if batch:
                    await asyncio.sleep(0)  # getmany returns without waiting while it has records: let the drivers in
                if time.monotonic() - last_sweep >= self.settings.sweep_seconds:
                    last_sweep = time.monotonic()
                    await self._sweep()
        finally:
            self.stopping = True  # no rejoin is asked for from here on
            await cancel_and_wait(watching)
            await self.deliverer.stop()
            if self.rejoining is not None:
                await cancel_and_wait(self.rejoining)
            await self._stop_matcher()
            await self.revoked(set(self.loading))
            for owned in list(self.owned.values()):
                await self._release(owned)
            await self.consumer.stop()
            await self.sender.stop()

    # ownership ----------------------------------------------------------------------------

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

    async def _lead_matcher(self) -> None:
        """Runs the matcher while this worker owns the ledger partition; a failed run starts again."""
        while TopicPartition(self.topics.ledger_commands, 0) in self.owned:
            log.info("leading the matcher")
            try:
                await self.matcher.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the matcher stopped; starting it again")
                await asyncio.sleep(1)

    async def _stop_matcher(self) -> None:
        if self.matcher_task is not None:
            await cancel_and_wait(self.matcher_task)
            self.matcher_task = None

    # deciding -----------------------------------------------------------------------------

    async def _decide(self, owned: Owned) -> None:
        """Decides the next batch of the partition's inbox inside the writer's open transaction, opening one if
        needed. The batch is taken under the writer's lock: an abort empties the inbox and sends the reading
        back, so nothing read before it is decided after it."""
        async with owned.writer.lock:
            if self.owned.get(owned.tp) is not owned:
                return  # revoked while waiting
            records, owned.inbox = owned.inbox[:DECIDE_CHUNK], owned.inbox[DECIDE_CHUNK:]
            if owned.inbox:
                owned.wake.set()
            if not records:
                return
            writer = owned.writer
            try:
                txn = owned.txn
                if txn is None:
                    txn = owned.txn = Transaction(records[0].offset)
                elif txn.first_offset is None:  # it had only follow-ups decided in place so far
                    txn.first_offset = records[0].offset
                parts = {owned: len(txn.decided.records)}  # each part's records not sent yet start there
                started, now = time.perf_counter(), now_ms()
                owned.state.decide(records, now, into=txn.decided)
                if self.settings.local_follow_ups:
                    self._follow_up_in_place(writer, owned, parts[owned], now, parts)
                family = family_label(owned.tp.topic)
                DECIDE_DURATION.labels(family).observe(time.perf_counter() - started)
                DECIDE_BATCH.labels(family).observe(len(records))
                txn.commands += len(records)
                txn.next_offset = records[-1].offset + 1
                if writer.opened is None and all(len(p.txn.decided.records) == b for p, b in parts.items()):
                    return  # nothing to write (commands read back, say): the offset waits for a transaction
                await writer.open(owned)
                for part, before in parts.items():
                    part.txn.sent += await send_records(writer.producer, part.txn.decided.records[before:])
            except Exception as exc:
                await self._failed(writer, exc)

    def _follow_up_in_place(self, writer: Writer, owned: Owned, start: int, now: int, parts: dict) -> None:
        """Decides the follow-up commands of `owned`'s records from `start` on whose partition the same writer
        serves, in the same transaction, and theirs in turn: one hop fewer for each, and the single writer
        still decides them. The commands are written all the same, and emit nothing when read."""
        pending = [(owned, start, len(owned.txn.decided.records), 1)]
        while pending:
            part, first, end, depth = pending.pop()
            if depth > IN_PLACE_DEPTH:
                continue  # left to their reading: a chain without end (triggers firing each other) stays paced
            records = part.txn.decided.records
            for index in range(first, end):
                record = records[index]
                target = self._served(writer, record)
                if target is None:
                    continue
                records[index] = record._replace(partition=target.tp.partition)  # sent where it was decided
                decided = target.txn.decided if target.txn is not None else Decided()
                mark = len(decided.records)
                if not target.state.decide_follow_up(record, now, decided):
                    continue
                if target.txn is None:
                    target.txn = Transaction(None, decided=decided)  # no command of its own read: no offset
                parts.setdefault(target, mark)
                pending.append((target, mark, len(decided.records), depth + 1))

    def _served(self, writer: Writer, record) -> Owned | None:
        """The owned partition a follow-up command goes to, if `writer` decides it (by the topic's layout: the
        record is then sent to that partition, whatever the broker's count)."""
        family = self.families.get(record.topic)
        if family is None or record.partition is not None:
            return None
        owned = self.owned.get(TopicPartition(record.topic, partition_for(record.key, family.partitions)))
        return owned if owned is not None and owned.writer is writer else None

    async def _drive(self, owned: Owned) -> None:
        """One partition's loop: what arrived while the last transaction committed goes into the next."""
        while self.owned.get(owned.tp) is owned:
            due = self._commit_due(owned)
            if due is None:
                await owned.wake.wait()
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(owned.wake.wait(), max(0.0, due - time.monotonic()))
            owned.wake.clear()
            if owned.inbox:
                await self._decide(owned)
                if len(owned.inbox) < INBOX_LIMIT and self.owned.get(owned.tp) is owned:
                    self.consumer.resume(owned.tp)
            due = self._commit_due(owned)
            if due is not None and time.monotonic() >= due:
                await self._commit(owned)

    def _commit_due(self, owned: Owned) -> float | None:
        """When the transaction holding `owned`'s part should commit; None if it has no part in one."""
        if owned.txn is None:
            return None
        if owned.writer.opened is None:  # it read commands that wrote nothing, and none began since
            return owned.txn.begun + OFFSETS_WAIT
        return owned.writer.opened + self.commit_interval

    async def _commit(self, owned: Owned) -> None:
        async with owned.writer.lock:
            if self.owned.get(owned.tp) is not owned:
                return
            if owned.txn is not None and owned.writer.opened is None:  # only its offset to commit
                try:
                    await owned.writer.open(owned)
                except Exception as exc:
                    await self._failed(owned.writer, exc)
                    return
            await self._commit_locked(owned.writer)

    async def _commit_locked(self, writer: Writer) -> None:
        """Commits the writer's open transaction, every partition's part of it, then applies each part to its
        state (called with the lock held)."""
        try:
            done = await writer.commit()
        except Exception as exc:
            await self._failed(writer, exc)
            return
        for owned, txn in done:
            owned.state.apply(txn.decided, txn.last_event(owned.state.events_topic, owned.state.partition))
            self.decided += txn.decided.events
            family = family_label(owned.tp.topic)
            COMMANDS_DECIDED.labels(family).inc(txn.commands)
            DEAD_LETTERS.labels(family).inc(sum(r.topic == self.topics.deadletter for r in txn.decided.records))
        for owned, _ in done:
            if self.owned.get(owned.tp) is owned and self._snapshot_due(owned):
                await self._snapshot(owned)

    def _snapshot_due(self, owned: Owned) -> bool:
        at, events_end = owned.snapshot_at
        written = owned.state.events_end - events_end
        return written >= self.settings.snapshot_every_events or (
            written > 0 and time.monotonic() - at >= self.settings.snapshot_every_seconds)

    async def _snapshot(self, owned: Owned) -> None:
        """Writes the partition's state in a transaction of its own (called with the lock held, none open)."""
        state = owned.state
        value = owned.snapshots.encode(state, state.touched, state.events_end, state.last_event_id)
        family = self.families[owned.tp.topic]
        try:
            producer = owned.writer.producer
            async with producer.transaction():
                for key, chunk in snapshot_records(owned.tp.partition, value):
                    await producer.send(family.snapshots_topic, chunk, key=key, partition=owned.tp.partition)
        except Exception as exc:
            await self._failed(owned.writer, exc)
            return
        state.touched.clear()
        state.settle(owned.snapshots.encoded)
        owned.snapshot_at = (time.monotonic(), state.events_end)
        log.info("snapshot of %s[%d]: %d aggregates (%d live) at events offset %d, %d bytes", family.events_topic,
                 owned.tp.partition, state.count(), len(state.states), state.events_end, len(value))

    async def _failed(self, writer: Writer, exc: BaseException) -> None:
        """Nothing of the open transaction becomes visible; the commands of every partition in it are read
        again, here or elsewhere."""
        abandoned = await writer.abandon()
        if isinstance(exc, ProducerFenced):
            log.warning("fenced on %s: another writer holds one of them now; rejoining the group", writer.name)
            members = list(writer.members)
            await self._drop_writer(writer)
            if members:
                self.consumer.pause(*members)
            # Whoever fenced it may be no member at all (a stale one that started late, then died): without a
            # rebalance these partitions would wait for one forever.
            self._ask_rejoin()
            return
        if isinstance(exc, (KafkaError, asyncio.TimeoutError)):
            log.error("transaction of %s failed (%r); their commands are read again", writer.name, exc)
        else:  # not the broker: say so loudly, but keep the partitions' loops alive
            log.exception("deciding on %s failed; their commands are read again", writer.name,
                          exc_info=exc)
        await writer.abort()
        for owned, txn in abandoned:
            if txn.first_offset is not None:  # else it read nothing in it: follow-ups come again with their cause
                owned.inbox.clear()
                self.consumer.seek(owned.tp, txn.first_offset)
                self.consumer.resume(owned.tp)  # paused for a full inbox, it would get nothing to wake its loop

    async def _sweep(self) -> None:
        """Sends the commands the clock calls for (deadlines, silent agents) for owned partitions."""
        await self._gauge()
        now = now_ms()
        self.requested = {cid: at for cid, at in self.requested.items() if now - at < RESEND_MS}
        acks = []
        for owned in list(self.owned.values()):
            for command in owned.state.due(now):
                if now - self.requested.get(command.command_id, 0) < RESEND_MS:
                    continue
                self.requested[command.command_id] = now
                acks.append(await self.sender.send(command))
        if acks:
            await asyncio.gather(*acks, return_exceptions=True)
        for owned in list(self.owned.values()):
            if owned.tp.topic == self.topics.callback_commands:
                self.deliverer.poll(owned.state.states.values(), now)


    async def _gauge(self) -> None:
        """Snapshot ages and consumer lag of the owned partitions, refreshed each sweep."""
        for owned in list(self.owned.values()):
            SNAPSHOT_AGE.labels(self.families[owned.tp.topic].events_topic, str(owned.tp.partition)).set(
                time.monotonic() - owned.snapshot_at[0])
        await record_lag(self.consumer, self.group, list(self.owned))

    def leading(self) -> Matcher | None:
        """The matcher, once caught up, while this worker leads it: the log-derived gauges come from it alone."""
        task = self.matcher_task
        return self.matcher if task is not None and not task.done() and self.matcher.caught_up.is_set() else None


def family_label(topic: str) -> str:
    """`hive.task.commands` -> `task`."""
    return topic.rsplit(".", 2)[-2]


class _Listener(ConsumerRebalanceListener):
    def __init__(self, engine: Engine):
        self.engine = engine

    async def on_partitions_revoked(self, revoked):
        await self.engine.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned):
        await self.engine.assigned(set(assigned))
