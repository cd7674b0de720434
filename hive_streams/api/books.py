"""A fold of one small aggregate family's events (schedules, triggers), kept by each API process to answer reads."""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from aiokafka import TopicPartition

from ..cancelling import cancel_and_wait
from ..codec import aggregate_id
from ..exceptions import CodecError
from ..kafka import consumer
from ..kafka.clients import FIXED_FETCH_WAIT_MS

log = logging.getLogger(__name__)
WAIT_SECONDS = 5.0  # an aggregate just created reaches the book a moment later
POLL_SECONDS = 0.1


class Book:
    def __init__(self, codec, topic: str, partitions: int, event_type: type, initial: Callable, evolve: Callable,
                 client_id: str):
        self.codec, self.topic, self.partitions = codec, topic, partitions
        self.event_type, self.initial, self.evolve, self.client_id = event_type, initial, evolve, client_id
        self.states: dict[str, object] = {}
        self._consumer = None
        self._task: asyncio.Task | None = None

    async def start(self, kafka) -> None:
        self._consumer = consumer(kafka, client_id=self.client_id, fetch_wait_ms=FIXED_FETCH_WAIT_MS)
        await self._consumer.start()
        await self._consumer.topics()
        count = len(self._consumer.partitions_for_topic(self.topic) or ()) or self.partitions
        tps = [TopicPartition(self.topic, i) for i in range(count)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run(), name=self.client_id)

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
            except Exception:
                log.exception("%s: reading failed; retrying", self.client_id)
                await asyncio.sleep(1)
                continue
            for records in batch.values():
                for record in records:
                    self._observe(record)

    def _observe(self, record) -> None:
        try:
            event = self.codec.decode(record.value)
        except CodecError:
            return
        if isinstance(event, self.event_type):
            key = aggregate_id(event)
            self.states[key] = self.evolve(self.states.get(key) or self.initial(key), event)

    async def find(self, key: str, wait: bool):
        waited = 0.0
        while (state := self.states.get(key)) is None and wait and waited < WAIT_SECONDS:
            await asyncio.sleep(POLL_SECONDS)
            waited += POLL_SECONDS
        return state
