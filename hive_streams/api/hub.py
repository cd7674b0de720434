"""One shared consumer per API process: reads every task and agent event once, fans out to feeds.

No consumer group: the hub assigns itself every partition of both event topics. It keeps the
most recent items in memory, so a client that reconnects soon after a drop is served from
here; each feed has a bounded queue, and a feed whose queue fills is dropped, never waited for.

Feeds are indexed by the tenant they see: an item of one tenant's task is offered only to that
tenant's feeds and to those that see every tenant, never matched against the others. A feed of one
task is indexed by that task, and the items held are too: opening it, and each item published, costs
the same however many feeds are open.

The hub also knows the tasks submitted recently (their definition's digest, where their events begin).
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..cancelling import cancel_and_wait
from ..codec import Codec
from ..domain.events import TaskSubmitted
from ..kafka.access import KafkaAccess
from ..kafka.clients import FIXED_FETCH_WAIT_MS
from ..kafka.clients import consumer as kafka_consumer
from ..topics import Topics
from .records import LOOKBACK, Item, SeqMemory, decode, lookback_start

log = logging.getLogger(__name__)
MEMORY_ITEMS = 10_000
QUEUE_ITEMS = 1_000
SUBMITTED = 50_000  # recent submissions whose definition digests the hub remembers
ALL = None  # a feed that sees every tenant


@dataclass(frozen=True, slots=True)
class Submission:
    digest: str  # of the definition as submitted
    offset: int | None  # where the task's events begin in its partition (None: its first event came earlier)


class Subscriber:
    def __init__(self, name: str, match: Callable[[Item], bool], size: int, tenant: str | None = ALL,
                 task_id: str | None = None):
        self.name = name
        self.match = match
        self.tenant = tenant
        self.task_id = task_id  # a feed of one task's items
        self.queue: asyncio.Queue[Item] = asyncio.Queue(size)
        self.dropped = False


def visible(item: Item, tenant: str | None) -> bool:
    """Whether a feed of `tenant` (ALL: every tenant) may carry the item."""
    return tenant is ALL or item.tenant is None or item.tenant == tenant


class Hub:
    def __init__(self, kafka: KafkaAccess, codec: Codec, topics: Topics, memory: int = MEMORY_ITEMS,
                 queue_size: int = QUEUE_ITEMS, lookback: int = LOOKBACK):
        self.kafka, self.codec, self.topics = kafka, codec, topics
        self.memory, self.queue_size, self.lookback = memory, queue_size, lookback
        self.items: deque[Item] = deque()
        self.held_from: dict[TopicPartition, int] = {}  # every fresh item from here on is in memory
        self.next: dict[TopicPartition, int] = {}  # the next offset the hub reads
        self.partitions: dict[str, int] = {}
        self.submitted: OrderedDict[str, Submission] = OrderedDict()
        self.held_by_task: dict[str, deque[Item]] = {}
        self.subscribers: set[Subscriber] = set()
        self.by_tenant: dict[str | None, set[Subscriber]] = {}  # feeds of many tasks, by the tenant they see
        self.by_task: dict[str, set[Subscriber]] = {}  # feeds of one task
        self.seqs = SeqMemory()
        self.dropped = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        consumer = kafka_consumer(self.kafka, client_id="hive-feed-hub", fetch_wait_ms=FIXED_FETCH_WAIT_MS)
        await consumer.start()
        self._consumer = consumer
        await consumer.topics()  # loads the cluster metadata
        for topic in (self.topics.task_events, self.topics.agent_events, self.topics.alerts):
            self.partitions[topic] = len(consumer.partitions_for_topic(topic) or ()) or self.topics.layout()[topic][0]
        tps = [TopicPartition(t, p) for t, n in self.partitions.items() for p in range(n)]
        consumer.assign(tps)
        beginnings, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        for tp in tps:
            first, complete = lookback_start(beginnings[tp], ends[tp], self.lookback)
            consumer.seek(tp, first)
            self.next[tp] = first
            self.held_from[tp] = beginnings[tp] if complete else ends[tp]
        self._task = asyncio.create_task(self._run(), name="feed-hub")

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait(self._task)
        if self._consumer:
            await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            except asyncio.CancelledError:
                raise
            except Exception:  # the consumer reconnects by itself; keep reading
                log.exception("feed hub: reading failed; retrying")
                await asyncio.sleep(1)
                continue
            for tp, records in batch.items():
                for record in records:
                    self.next[tp] = record.offset + 1
                    try:
                        item = decode(self.codec, record, self.seqs, tp=tp)
                    except Exception:  # one record must not stop every feed
                        log.exception("feed hub: skipping %s[%d]@%d", tp.topic, tp.partition, record.offset)
                        continue
                    if item is not None and record.offset >= self.held_from[tp]:
                        self._hold(item)
                        self._publish(item)

    def _hold(self, item: Item) -> None:
        self.items.append(item)
        task_id = getattr(item.event, "task_id", None)
        if task_id is not None:
            held = self.held_by_task.get(task_id)
            if held is None:  # not setdefault: it would make a deque for every item
                held = self.held_by_task[task_id] = deque()
            held.append(item)
            if isinstance(item.event, TaskSubmitted) and task_id not in self.submitted:
                self._submitted(item)
        while len(self.items) > self.memory:
            old = self.items.popleft()
            self.held_from[old.tp] = max(self.held_from[old.tp], old.offset + 1)
            old_task = getattr(old.event, "task_id", None)
            if old_task is not None:
                same = self.held_by_task[old_task]
                same.popleft()  # the task's oldest: items are held in the order they came
                if not same:
                    del self.held_by_task[old_task]

    def _submitted(self, item: Item) -> None:
        event = item.event
        self.submitted[event.task_id] = Submission(event.definition_digest, item.offset if event.seq == 1 else None)
        if len(self.submitted) > SUBMITTED:
            self.submitted.popitem(last=False)

    def _publish(self, item: Item) -> None:
        if item.tenant is None:  # no task's: feeds of one task never take it
            subs = [sub for same in self.by_tenant.values() for sub in same]
        else:
            subs = (*self.by_tenant.get(item.tenant, ()), *self.by_tenant.get(ALL, ()),
                    *self.by_task.get(item.event.task_id, ()))
        for sub in subs:
            if not sub.dropped and sub.match(item):
                try:
                    sub.queue.put_nowait(item)
                except asyncio.QueueFull:
                    self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        sub.dropped = True
        self.unsubscribe(sub)
        self.dropped += 1
        log.warning("feed hub: disconnecting slow client %s: %d frames unread", sub.name, sub.queue.qsize())

    def subscribe(self, name: str, match: Callable[[Item], bool], tenant: str | None = ALL,
                  task_id: str | None = None) -> Subscriber:
        """A feed of the items `match` picks among those its tenant may see (with `task_id`: among that task's)."""
        sub = Subscriber(name, match, self.queue_size, tenant, task_id)
        self.subscribers.add(sub)
        index, key = (self.by_tenant, tenant) if task_id is None else (self.by_task, task_id)
        index.setdefault(key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        index, key = (self.by_tenant, sub.tenant) if sub.task_id is None else (self.by_task, sub.task_id)
        same = index.get(key)
        if same is not None:
            same.discard(sub)
            if not same:
                del index[key]

    def since(self, positions: dict[TopicPartition, int], match: Callable[[Item], bool],
              tenant: str | None = ALL, task_id: str | None = None) -> list[Item]:
        """Held items at or after `positions` (only their partitions) that `tenant` may see and that match
        (with `task_id`: only that task's items are looked at)."""
        if all(offset >= self.next.get(tp, 0) for tp, offset in positions.items()):
            return []  # a client starting live: nothing held is after it
        held = self.items if task_id is None else self.held_by_task.get(task_id, ())
        return [item for item in held
                if item.offset >= positions.get(item.tp, 1 << 62) and visible(item, tenant) and match(item)]

    def stats(self) -> dict:
        return {"subscribers": len(self.subscribers), "task_feeds": sum(map(len, self.by_task.values())),
                "held_items": len(self.items), "dropped": self.dropped,
                "next": {f"{tp.topic}[{tp.partition}]": o for tp, o in sorted(self.next.items())}}
