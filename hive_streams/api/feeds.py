"""Feeds: the items a client should see from a position, first from the log, then from the hub.

Frames go out in batches, one write per batch of what is ready, pre-encoded. A client older than
the hub's memory is caught up from Kafka; once its reader reaches what the
hub holds, it subscribes and takes the held items after its position, all in one step with no
await in between, so nothing falls between the two and nothing comes twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Callable

from aiokafka import TopicPartition

from ..domain.events import TERMINAL_TASK_EVENTS
from .catchup import CatchUp
from .hub import ALL, Hub, visible
from .positions import TaskPosition, VectorCodec, VectorIds
from .records import LOOKBACK, Item

BATCH = 500  # items sent to one client in one write


@dataclass(frozen=True)
class FeedSpec:
    name: str
    match: Callable[[Item], bool]
    lookback: int = LOOKBACK
    tenant: str | None = ALL  # the tenant whose tasks it shows (with what concerns no task), or ALL
    task_id: str | None = None  # a feed of this task's items only

    def sees(self, item: Item) -> bool:
        return visible(item, self.tenant) and self.match(item)

    def data(self, item: Item) -> str:
        return item.data if self.tenant is ALL else item.public


def frame(kind: str, frame_id: str, data: str) -> str:
    return f"event: {kind}\r\nid: {frame_id}\r\ndata: {data}\r\n\r\n"


def _take(candidates, positions: dict[TopicPartition, int]) -> list[Item]:
    """The items at or after `positions`, which it advances past each of them."""
    out = []
    for item in candidates:
        if item.offset >= positions.get(item.tp, 1 << 62):
            positions[item.tp] = item.offset + 1
            out.append(item)
    return out


async def batches(hub: Hub, spec: FeedSpec, positions: dict[TopicPartition, int]) -> AsyncIterator[list[Item]]:
    """Every fresh matching item at or after `positions`, in batches of what is ready at once."""
    if any(offset < hub.held_from.get(tp, 0) for tp, offset in positions.items()):
        # Every partition of the feed, not only the lagging ones: while this reads, the hub moves on
        # and may forget what another partition still needs.
        async with CatchUp(hub.kafka, hub.codec, dict(positions), spec.lookback) as reader:
            while True:
                behind = [tp for tp in positions if reader.pos[tp] < hub.held_from.get(tp, 0)]
                if not behind:
                    for tp, offset in reader.pos.items():
                        positions[tp] = max(positions[tp], offset)
                    sub = hub.subscribe(spec.name, spec.match, spec.tenant, spec.task_id)  # no await since the check
                    backlog = hub.since(positions, spec.match, spec.tenant, spec.task_id)
                    break
                fresh = _take([item for item in await reader.read(behind) if spec.sees(item)], positions)
                if fresh:
                    yield fresh
    else:
        sub = hub.subscribe(spec.name, spec.match, spec.tenant, spec.task_id)
        backlog = hub.since(positions, spec.match, spec.tenant, spec.task_id)
    try:
        for start in range(0, len(backlog), BATCH):
            fresh = _take(backlog[start:start + BATCH], positions)
            if fresh:
                yield fresh
        while not sub.dropped:
            ready = [await sub.queue.get()]
            while len(ready) < BATCH and not sub.queue.empty():
                ready.append(sub.queue.get_nowait())
            fresh = _take(ready, positions)
            if fresh:
                yield fresh
    finally:
        hub.unsubscribe(sub)


async def task_frames(hub: Hub, tp: TopicPartition, task_id: str, start: int, last_seq: int) -> AsyncIterator[bytes]:
    """One task's events from `start` until it ends; ids are `partition:offset:seq`."""
    spec = FeedSpec(f"task {task_id}", lambda item: getattr(item.event, "task_id", None) == task_id
                    and item.tp == tp, lookback=0, task_id=task_id)
    async for batch in batches(hub, spec, {tp: start}):
        out, ended = [], False
        for item in batch:
            if item.event.seq <= last_seq:
                continue  # the client has it: a duplicate, or a frame sent before a reconnect
            last_seq = item.event.seq
            out.append(frame(item.kind, str(TaskPosition(tp.partition, item.offset, last_seq)), item.data))
            if isinstance(item.event, TERMINAL_TASK_EVENTS):
                ended = True
                break
        if out:
            yield "".join(out).encode()
        if ended:
            return


async def vector_frames(hub: Hub, vectors: VectorCodec, spec: FeedSpec,
                        positions: dict[TopicPartition, int]) -> AsyncIterator[bytes]:
    """Frames of a feed over every partition; each id is the vector of next offsets after it."""
    ids = VectorIds(vectors, positions)
    async for batch in batches(hub, spec, positions):
        yield "".join([frame(item.kind, ids.after(item.tp, item.offset), spec.data(item)) for item in batch]).encode()


def agent_match(agent_id: str) -> Callable[[Item], bool]:
    """The agent's own events and the task events that name it (those of the feed's tenant: see FeedSpec)."""
    return lambda item: getattr(item.event, "agent_id", None) == agent_id


def types_match(types: frozenset[str]) -> Callable[[Item], bool]:
    if not types:
        return lambda item: True
    return lambda item: item.kind in types
