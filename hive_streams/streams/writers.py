"""The deciders' writer: one fenced transactional producer a worker, and the open transaction its partitions
decide into.

The group's range assignment gives each worker one range of partition numbers, and partition p of every command
topic to the worker whose range holds p (they all have the same partition count; the ledger's single partition
goes with every topic's partition 0). The writer's transactional id is tied to that range. Starting it fences
not only the earlier holders of its own id, but of every id the assignment could have given an earlier owner of
one of its numbers, whatever the group's size then: every range of the assignment of 1 to P workers that meets
its own. Ranges of one assignment never meet, so no live writer of the same generation is fenced.

One writer a worker rather than one a partition number: a transaction's cost is mostly fixed, and at a moderate
rate each number's writer would commit small ones side by side.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from ..codec import header
from ..kafka import stop_quietly
from ..kafka.batches import last_offset
from .deciders import Decided, PartitionState
from .snapshots import Snapshots

log = logging.getLogger(__name__)
ASSIGNOR = RangePartitionAssignor  # one range of partition numbers a worker, the same for every command topic
Span = tuple[int, int]  # the first and the last partition number of a range


def writer_id(group: str, span: Span) -> str:
    """The transactional id of a group's writer for the range `span` of every command topic's partitions."""
    first, last = span
    return f"{group}.deciders.{first}" if first == last else f"{group}.deciders.{first}-{last}"


def span_of(numbers) -> Span:
    """The range the partition numbers form; raises if they do not form one (not the range assignment's)."""
    first, last = min(numbers), max(numbers)
    if set(numbers) != set(range(first, last + 1)):
        raise ValueError(f"partition numbers {sorted(numbers)} are not one range")
    return first, last


def assignable(partitions: int) -> set[Span]:
    """Every range the range assignment gives a worker, for 1 to `partitions` workers (more leave some idle)."""
    spans = set()
    for workers in range(1, partitions + 1):
        each, extra = divmod(partitions, workers)
        first = 0
        for i in range(workers):
            size = each + (1 if i < extra else 0)
            spans.add((first, first + size - 1))
            first += size
    return spans


def fenced_by(span: Span, partitions: int) -> list[Span]:
    """The ranges whose writers a writer of `span` fences when it starts: its own, and every one an earlier owner
    of one of its numbers could have had."""
    first, last = span
    return sorted({span} | {s for s in assignable(partitions) if s[0] <= last and first <= s[1]})


@dataclass
class Transaction:
    """What one partition put in its writer's open transaction: nothing of it is visible, or applied to the
    state, before the commit."""
    first_offset: int | None  # None while it holds only follow-ups decided in place (no command read)
    next_offset: int = -1
    offsets_sent_to: int = -1
    commands: int = 0
    decided: Decided = field(default_factory=Decided)
    sent: list = field(default_factory=list)  # batches.Sent
    begun: float = field(default_factory=time.monotonic)

    def last_event(self, events_topic: str, partition: int) -> tuple[int, str] | None:
        """The offset and id of its last event, from the acknowledgements."""
        offset = last_offset(self.sent, events_topic, partition)
        if offset is None:
            return None
        last = next(r for r in reversed(self.decided.records) if r.topic == events_topic)
        return offset, header(last.headers, "ce_id") or ""


class Owned:
    """A command partition this worker decides for: its writer, its folded state, its part of the open
    transaction."""

    def __init__(self, tp: TopicPartition, state: PartitionState, writer: "Writer", snapshots: Snapshots):
        self.tp = tp
        self.state = state
        self.writer = writer
        self.txn: Transaction | None = None
        self.snapshots = snapshots
        self.snapshot_at = (time.monotonic(), state.events_end)  # when, and at which events offset
        self.inbox: list = []  # fetched commands waiting for the next transaction
        self.wake = asyncio.Event()
        self.driver: asyncio.Task | None = None


class Writer:
    """The fenced producer of one range of partition numbers, shared by every family's partitions in it.
    Hold `lock` to decide into its transaction, commit it or abort it."""

    def __init__(self, span: Span, producer, group: str, fencers=()):
        self.span = span
        self.producer = producer
        self.fencers = list(fencers)  # producers of the other ids it fences, stopped once they have
        self.group = group  # whose consumed offsets its transactions commit
        self.lock = asyncio.Lock()  # FIFO: decisions waiting while a commit is in flight go into the next one
        self.members: dict[TopicPartition, Owned] = {}
        self.opened: float | None = None  # when the open transaction began; None: none is open
        self.fenced: asyncio.Task | None = None  # starting the producer: every earlier owner is fenced once done

    @property
    def name(self) -> str:
        first, last = self.span
        return f"partition {first}" if first == last else f"partitions {first}-{last}"

    def serves(self, number: int) -> bool:
        return self.span[0] <= number <= self.span[1]

    async def fence(self) -> None:
        """Done once every earlier owner of one of its numbers is fenced: their open transactions abort, and any
        later write of theirs fails. Its own id first, the others after: two writers whose ranges meet (a stale
        owner starting late, and the new one) then cannot both stay live. Whichever fences the other's id last
        does so after its own start, so the other's own start came before that fence, and it is fenced. Started
        together, each could fence the other's id before the other's own start went through."""
        await _fence(self.producer)
        await asyncio.gather(*(_fence(other, stop=True) for other in self.fencers))

    def parts(self) -> list[Owned]:
        """The partitions with a part in the open transaction."""
        return [owned for owned in self.members.values() if owned.txn is not None]

    async def open(self, owned: Owned) -> None:
        """Begins a transaction if none is open, its first request the consumed offset of `owned`'s part.
        Called after deciding: the broker has had that long to finish the last commit's markers, which a new
        transaction's first request otherwise waits out in 1 ms retries."""
        if self.opened is not None:
            return
        await self.producer.begin_transaction()
        self.opened = time.monotonic()
        # offsets first: the transaction's first request then retries after retry_backoff_ms
        await self.producer.send_offsets_to_transaction({owned.tp: owned.txn.next_offset}, self.group)
        owned.txn.offsets_sent_to = owned.txn.next_offset

    async def commit(self) -> list[tuple[Owned, Transaction]]:
        """Commits the open transaction with the consumed offset of every part; returns the parts, detached.
        Raises as the producer does, the parts then still attached (see `abandon`)."""
        parts = self.parts()
        if self.opened is None or not parts:
            return []
        grown = {o.tp: o.txn.next_offset for o in parts if o.txn.offsets_sent_to != o.txn.next_offset}
        if grown:  # partitions that joined, or grew, after the transaction began
            await self.producer.send_offsets_to_transaction(grown, self.group)
        await self.producer.commit_transaction()
        return self._detach()

    async def abandon(self) -> list[tuple[Owned, Transaction]]:
        """Detaches every part of the open transaction, nothing of it applied, and waits for its sends to settle."""
        done = self._detach()
        await asyncio.gather(*(batch.ack for _, txn in done for batch in txn.sent), return_exceptions=True)
        return done

    def _detach(self) -> list[tuple[Owned, Transaction]]:
        done = [(owned, owned.txn) for owned in self.parts()]
        for owned, _ in done:
            owned.txn = None
        self.opened = None
        return done

    async def abort(self) -> None:
        try:
            await self.producer.abort_transaction()
        except Exception:
            log.debug("abort failed", exc_info=True)


async def _fence(producer, stop: bool = False) -> None:
    try:
        await producer.start()
        await producer.begin_transaction()  # waits for the producer id: the earlier holder of the id is fenced now
        await producer.abort_transaction()
    finally:
        if stop:
            await stop_quietly(producer, "a fencing producer")
