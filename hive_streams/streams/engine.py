"""The worker's engine: one consumer group over the command topics, one fenced writer for what it is assigned.

Taking and giving back partitions is `ownership.Ownership`'s (the writer's fencing, the loads, the rejoins); here
each owned partition's loop decides what it reads into the writer's open transaction. Each transaction holds what
the worker's partitions decided meanwhile: the consumed offsets, the events, the follow-up commands and the dead
letters become visible together, or not at all. One writer for every family and partition rather than one each:
a task's hops go through several families and partitions, and at a moderate rate each would commit a transaction
of one batch.

The owner of the ledger's single partition also leads the matcher.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from ..cancelling import cancel_and_wait
from ..codec import Codec
from ..kafka import CommandSender, access_for, consumer, now_ms
from ..kafka.batches import send_records
from ..metrics import COMMANDS_DECIDED, DEAD_LETTERS, DECIDE_BATCH, DECIDE_DURATION, SNAPSHOT_AGE, record_lag
from ..settings import Settings
from ..topics import Topics, partition_for
from ..kafka.seal import SealCheck, Sealer, service_secret
from .deciders import Aggregate, Decided, family_aggregates
from .alerting import Alerter
from .matcher import Matcher
from .ownership import Listener, Ownership
from .snapshots import records as snapshot_records
from .callbacks import Deliverer
from .triggers import TriggerWatch
from .writers import ASSIGNOR, Owned, Transaction, Writer

log = logging.getLogger(__name__)
BATCH = 1000
DECIDE_CHUNK = 500  # commands a transaction takes from a partition's inbox: the loop is not held for long, and
# one partition's batch is sent and committed while the next is decided
INBOX_LIMIT = 5000  # fetched commands a partition may hold before its fetching pauses
RESEND_MS = 5000  # a sweep command not yet decided is sent again after this
IN_PLACE_DEPTH = 4  # follow-ups of follow-ups decided in place: hold escrow, reserve a slot, assign is 2 deep
OFFSETS_WAIT = 0.5  # seconds the offset of commands that wrote nothing waits for a transaction that writes; then
# it gets one of its own. Read again after a crash meanwhile, they write nothing again


@dataclass(frozen=True)
class Family:
    aggregate: Aggregate
    events_topic: str
    partitions: int
    snapshots_topic: str


class Engine(Ownership):
    def __init__(self, settings: Settings, codec: Codec):
        super().__init__()
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
        self.consumer = None
        secret = service_secret(settings.service_secret, settings.home, create=True)
        self.sealer, self.seal = Sealer.service(secret), SealCheck(secret)
        self.sender = CommandSender(self.kafka, self.topics, codec, "/hive-streams/sweep", sealer=self.sealer)
        self.deliverer = Deliverer(settings, self.sender)
        self.requested: dict[str, int] = {}
        self.matcher = Matcher(codec, self.topics, settings, timeout_ms, alerter=Alerter(codec, self.topics, settings),
                               sealer=self.sealer)
        self.matcher_task: asyncio.Task | None = None
        self.decided = 0  # events written, for status and benchmarks
        self.commit_interval = settings.commit_interval_ms / 1000

    async def run(self, stop: asyncio.Event) -> None:
        self.consumer = consumer(self.kafka, group_id=self.group, client_id=f"{self.group}-deciders",
                                 session_timeout_ms=int(self.settings.session_timeout_seconds * 1000),
                                 heartbeat_interval_ms=max(500, int(self.settings.session_timeout_seconds * 200)),
                                 max_poll_interval_ms=60_000, rebalance_timeout_ms=60_000,
                                 partition_assignment_strategy=(ASSIGNOR,))
        self.consumer.subscribe(list(self.families), listener=Listener(self))
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

