"""Feeds: the items a client should see from a position, first from the log, then from the hub.

A client older than the hub's memory is caught up from Kafka; once its reader reaches what the
hub holds, it subscribes and takes the held items after its position, all in one step with no
await in between, so nothing falls between the two and nothing comes twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from aiokafka import TopicPartition

from ..domain.events import TERMINAL_TASK_EVENTS
from .catchup import CatchUp
from .hub import Hub
from .positions import TaskPosition, VectorCodec
from .records import LOOKBACK, Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedSpec:
    name: str
    match: Callable[[Item], bool]
    lookback: int = LOOKBACK


async def items(hub: Hub, spec: FeedSpec, positions: dict[TopicPartition, int]) -> AsyncIterator[Item]:
    """Every fresh matching item at or after `positions`, which it advances past each item it yields."""
    if any(offset < hub.held_from.get(tp, 0) for tp, offset in positions.items()):
        # Every partition of the feed, not only the lagging ones: while this reads, the hub moves on
        # and may forget what another partition still needs.
        async with CatchUp(hub.bootstrap, hub.codec, dict(positions), spec.lookback) as reader:
            while True:
                behind = [tp for tp in positions if reader.pos[tp] < hub.held_from.get(tp, 0)]
                if not behind:
                    for tp, offset in reader.pos.items():
                        positions[tp] = max(positions[tp], offset)
                    sub = hub.subscribe(spec.name, spec.match)  # no await since the check above
                    backlog = hub.since(positions, spec.match)
                    break
                for item in await reader.read(behind):
                    if item.offset >= positions[item.tp] and spec.match(item):
                        positions[item.tp] = item.offset + 1
                        yield item
    else:
        sub = hub.subscribe(spec.name, spec.match)
        backlog = hub.since(positions, spec.match)
    try:
        for item in backlog:
            if item.offset >= positions[item.tp]:
                positions[item.tp] = item.offset + 1
                yield item
        while not sub.dropped:
            item = await sub.queue.get()
            if item.offset >= positions.get(item.tp, 1 << 62):
                positions[item.tp] = item.offset + 1
                yield item
    finally:
        hub.unsubscribe(sub)


async def task_frames(hub: Hub, tp: TopicPartition, task_id: str, start: int, last_seq: int) -> AsyncIterator[dict]:
    """One task's events from `start` until it ends; ids are `partition:offset:seq`."""
    spec = FeedSpec(f"task {task_id}", lambda item: getattr(item.event, "task_id", None) == task_id
                    and item.tp == tp, lookback=0)
    async for item in items(hub, spec, {tp: start}):
        if item.event.seq <= last_seq:
            continue  # the client has it: a duplicate, or a frame sent before a reconnect
        last_seq = item.event.seq
        yield {"event": item.kind, "id": str(TaskPosition(tp.partition, item.offset, last_seq)), "data": item.data}
        if isinstance(item.event, TERMINAL_TASK_EVENTS):
            return


async def vector_frames(hub: Hub, vectors: VectorCodec, spec: FeedSpec,
                        positions: dict[TopicPartition, int]) -> AsyncIterator[dict]:
    """Frames of a feed over every partition; each id is the vector of next offsets after it."""
    async for item in items(hub, spec, positions):
        yield {"event": item.kind, "id": vectors.encode(positions), "data": item.data}


def agent_match(agent_id: str) -> Callable[[Item], bool]:
    """The agent's own events and the task events that name it."""
    return lambda item: getattr(item.event, "agent_id", None) == agent_id


def types_match(types: frozenset[str]) -> Callable[[Item], bool]:
    if not types:
        return lambda item: True
    return lambda item: item.kind in types
