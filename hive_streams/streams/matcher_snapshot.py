"""The matcher's snapshots on their compacted topic (one partition): written every N events or T seconds, loaded at
start so that only the tail of the event log is folded.

A snapshot's chunks and then its manifest (`snapshots.records`) go through one idempotent producer to the one
partition, so they keep their order. A deposed leader may still write a snapshot older than the new leader's:
loading it later is still right, as it is consistent with its own offsets and the tail after them is folded on it.
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import TopicPartition

from ..exceptions import CodecError
from ..kafka import KafkaAccess, producer, stop_quietly
from .matcher_state import Folded, assemble, decode, encode_pieces
from .snapshots import event_id_before, newest, records

log = logging.getLogger(__name__)
SHARE = 10  # a snapshot waits at least this many times as long as the last one took: rounds keep most of the time
TURN_SECONDS = 0.002  # of encoding between two turns of the loop


class MatcherSnapshots:
    def __init__(self, kafka: KafkaAccess, topic: str, settings):
        self.kafka = kafka
        self.tp = TopicPartition(topic, 0)
        self.every_events = settings.snapshot_every_events
        self.every_seconds = settings.snapshot_every_seconds
        self.client_id = f"{settings.worker_id}-matcher-snapshots"
        self.writer = None
        self.sending: asyncio.Task | None = None
        self.at = (time.monotonic(), 0)  # when the last snapshot was taken, and the events folded by then
        self.took = 0.0  # seconds the last one took

    async def start(self) -> None:
        self.at = (time.monotonic(), 0)
        self.writer = producer(self.kafka, client_id=self.client_id)
        await self.writer.start()

    async def stop(self) -> None:
        if self.sending is not None:  # a snapshot begun is ended, else its chunks would hide the one before
            await asyncio.gather(self.sending, return_exceptions=True)
        if self.writer is not None:
            await stop_quietly(self.writer, "the matcher snapshot writer")
            self.writer = None

    def due(self, folded: int) -> bool:
        at, before = self.at
        since = time.monotonic() - at
        return since >= SHARE * self.took and (folded - before >= self.every_events or (
            folded > before and since >= self.every_seconds))

    async def write(self, state: Folded, folded: int) -> None:
        """A failed write is logged; the next is tried after N more events or T seconds, matching goes on."""
        self.at = (time.monotonic(), folded)
        value, encoding = await encoded(state)
        sending = time.monotonic()
        self.sending = asyncio.create_task(self._send(value))
        try:
            await asyncio.shield(self.sending)
        except Exception:
            log.warning("writing the matcher snapshot failed", exc_info=True)
            return
        finally:
            self.took = encoding + time.monotonic() - sending
        log.info("matcher snapshot: %d agents, %d waiting at %s, %d bytes, %.2fs to encode and send",
                 len(state.market.agents), len(state.market.waiting), _offsets(state), len(value), self.took)

    async def _send(self, value: bytes) -> None:
        acks = [await self.writer.send(self.tp.topic, chunk, key=key, partition=0) for key, chunk in records(0, value)]
        await asyncio.gather(*acks)

    async def load(self, reader, parts: list[TopicPartition]) -> tuple[Folded | None, dict, str]:
        """The newest snapshot if it fits the log (else None, with a warning), the end offsets of `parts`, and where
        the matcher starts from."""
        try:
            latest = await newest(self.kafka, self.tp)
            state = None if latest is None else decode(latest[1])
        except CodecError as exc:
            latest, state, problem = None, None, str(exc)
        else:
            problem = ""
        ends = await reader.end_offsets(parts)  # after the snapshot: a newer one could pass the ends read before it
        if state is not None:
            problem = await mismatch(self.kafka, state, ends)
        if problem:
            log.warning("%s[%d]: ignoring the newest matcher snapshot (%s); folding from the beginning", self.tp.topic,
                        self.tp.partition, problem)
            return None, ends, "the beginning (snapshot ignored)"
        if state is None:
            return None, ends, "the beginning (no snapshot)"
        return state, ends, f"snapshot at offset {latest[0]} of {self.tp.topic}: events at {_offsets(state)}"


async def mismatch(kafka: KafkaAccess, state: Folded, ends: dict[TopicPartition, int]) -> str:
    """Why the snapshot does not fit the log, or empty: other partitions, an offset past the end, or an event
    before an offset that is not the one the snapshot names."""
    at = {TopicPartition(p.topic, p.partition): p for p in state.positions}
    if set(at) != set(ends) or len(at) != len(state.positions):
        return "it is of other partitions"
    for tp, p in at.items():
        if p.offset > ends[tp]:
            return f"{tp.topic}[{tp.partition}] at offset {p.offset}, past the end {ends[tp]}"
    checked = [p for p in state.positions if p.offset > 0]
    found_ids = await asyncio.gather(*(event_id_before(kafka, TopicPartition(p.topic, p.partition), p.offset)
                                       for p in checked))
    for p, found in zip(checked, found_ids):
        if found != p.check_id:
            return f"{p.topic}[{p.partition}]: the event before offset {p.offset} is {found}, not {p.check_id}"
    return ""


def _offsets(state: Folded) -> str:
    return ",".join(str(p.offset) for p in state.positions)


async def encoded(state: Folded) -> tuple[bytes, float]:
    """The snapshot, and the seconds spent encoding it. The loop is given back every TURN_SECONDS of encoding, so
    deciders run meanwhile however many tasks are queued; their turns are not counted. The matcher awaits this, so
    its state does not change until the last piece."""
    pieces, spent, began = [], 0.0, time.perf_counter()
    for piece in encode_pieces(state):
        pieces.append(piece)
        if time.perf_counter() - began >= TURN_SECONDS:
            spent += time.perf_counter() - began
            await asyncio.sleep(0)
            began = time.perf_counter()
    value = assemble(pieces)
    return value, spent + time.perf_counter() - began
