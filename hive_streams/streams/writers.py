"""The deciders' writers: one fenced transactional producer per partition number, and the open transaction
the families' partitions of that number decide into.

The group's range assignment gives partition p of every command topic to one worker (they all have the same
partition count; the ledger's single partition goes with every topic's partition 0), so one producer, its id
tied to p, serves every family's partition p. Starting it fences every earlier holder of that id.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from ..codec import header
from ..kafka.batches import last_offset
from .deciders import Decided, PartitionState
from .snapshots import Snapshots

log = logging.getLogger(__name__)
ASSIGNOR = RangePartitionAssignor  # partition p of every command topic to one worker: its writer of number p


def writer_id(group: str, partition: int) -> str:
    """The transactional id of a group's writer for partition number `partition` of every command topic."""
    return f"{group}.deciders.{partition}"


@dataclass
class Transaction:
    """What one partition put in its writer's open transaction: nothing of it is visible, or applied to the
    state, before the commit."""
    first_offset: int
    next_offset: int = -1
    offsets_sent_to: int = -1
    commands: int = 0
    decided: Decided = field(default_factory=Decided)
    sent: list = field(default_factory=list)  # batches.Sent

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
    """The fenced producer of one partition number, shared by the families' partitions of that number.
    Hold `lock` to decide into its transaction, commit it or abort it."""

    def __init__(self, partition: int, producer, group: str):
        self.partition = partition
        self.producer = producer
        self.group = group  # whose consumed offsets its transactions commit
        self.lock = asyncio.Lock()  # FIFO: decisions waiting while a commit is in flight go into the next one
        self.members: dict[TopicPartition, Owned] = {}
        self.opened: float | None = None  # when the open transaction began; None: none is open
        self.fenced: asyncio.Task | None = None  # starting the producer: every earlier owner is fenced once done

    async def fence(self) -> None:
        await self.producer.start()
        await self.producer.begin_transaction()  # waits for the producer id: every earlier owner is fenced now
        await self.producer.abort_transaction()

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
