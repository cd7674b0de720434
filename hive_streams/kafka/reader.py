"""Reading partitions from a position to the end that was committed when the read began."""
from __future__ import annotations

import time
from typing import AsyncIterator

from aiokafka import TopicPartition

from .access import KafkaAccess
from .clients import consumer

EMPTY_FETCHES_AT_MARKER = 3  # a partition ending in a transaction marker may leave the position one short
WINDOW_SECONDS = 60.0


async def end_offsets(kafka: KafkaAccess, parts: list[TopicPartition],
                      client_id: str = "hive-reader") -> dict[TopicPartition, int]:
    """The end offset of each partition now (committed records only)."""
    reader = consumer(kafka, client_id=client_id)
    await reader.start()
    try:
        return await reader.end_offsets(parts)
    finally:
        await reader.stop()


async def read_to_end(kafka: KafkaAccess, starts: dict[TopicPartition, int | None],
                      max_records: int = 10_000, stops: dict[TopicPartition, int] | None = None) -> AsyncIterator[list]:
    """Batches of committed records from each start (None: the beginning) to the end seen at the start, or to
    the partition's offset in `stops` if that comes first (records at or after it are left out)."""
    if not starts:
        return
    reader = consumer(kafka, client_id="hive-reader")
    await reader.start()
    try:
        reader.assign(list(starts))
        for tp, offset in starts.items():
            if offset is None:
                await reader.seek_to_beginning(tp)
            else:
                reader.seek(tp, offset)
        ends = await reader.end_offsets(list(starts))
        if stops:
            ends = {tp: min(end, stops.get(tp, end)) for tp, end in ends.items()}
        empty: dict[TopicPartition, int] = {}
        pending = [tp for tp in starts if await reader.position(tp) < ends[tp]]
        while pending:
            got = await reader.getmany(*pending, timeout_ms=200, max_records=max_records)
            for tp in pending:
                records = got.get(tp)
                if records and stops and records[-1].offset >= ends[tp]:
                    records = [r for r in records if r.offset < ends[tp]]
                empty[tp] = 0 if records else empty.get(tp, 0) + 1
                if records:
                    yield records
            pending = [tp for tp in pending if not await _done(reader, tp, ends[tp], empty.get(tp, 0))]
    finally:
        await reader.stop()


async def _done(reader, tp: TopicPartition, end: int, empty_fetches: int) -> bool:
    position = await reader.position(tp)
    return position >= end or (position == end - 1 and empty_fetches >= EMPTY_FETCHES_AT_MARKER)


async def read_window(kafka: KafkaAccess, tp: TopicPartition, back: int, stop: int | None = None) -> list:
    """The committed records among the `back` offsets before `stop` (None: the partition's end)."""
    reader = consumer(kafka, client_id="hive-reader")
    await reader.start()
    try:
        reader.assign([tp])
        end = stop if stop is not None else (await reader.end_offsets([tp]))[tp]
        start = max(0, end - back)
        if start >= end:
            return []
        reader.seek(tp, start)
        out, empty = [], 0
        deadline = time.monotonic() + WINDOW_SECONDS  # a busy loop may see empty fetches: bound by time, not count
        while not await _done(reader, tp, end, empty) and time.monotonic() < deadline:
            got = (await reader.getmany(tp, timeout_ms=200)).get(tp, [])
            empty = 0 if got else empty + 1
            out += [r for r in got if r.offset < end]
        return out
    finally:
        await reader.stop()
