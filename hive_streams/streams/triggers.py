"""The worker's view of the triggers, for its task deciders: which task events match which trigger.

Every worker folds the trigger events topic (all partitions) in the background. A task decider asks it,
for each event it writes, which triggers the event matches, and writes a NoteTriggerMatch command for
each in the same transaction as the event: a match is noted exactly when its event is committed, and its
command id (from the event's id) makes a repeat count once. A trigger created a moment ago may miss an
event decided before this view has read it.
"""
from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition

from ..codec import Codec
from ..domain import trigger as t
from ..domain.tenancy import task_tenant
from ..exceptions import CodecError
from ..kafka import consumer
from ..kafka.clients import FIXED_FETCH_WAIT_MS
from ..topics import Topics

log = logging.getLogger(__name__)


class TriggerWatch:
    def __init__(self, kafka, codec: Codec, topics: Topics, client_id: str = "hive-trigger-watch"):
        self.kafka, self.codec, self.topics, self.client_id = kafka, codec, topics, client_id
        self.by_tenant: dict[str, dict[str, t.TriggerState]] = {}

    def observe(self, event) -> None:
        if isinstance(event, t.TriggerEvent):
            triggers = self.by_tenant.setdefault(task_tenant(event.trigger_id), {})
            state = t.evolve(triggers.get(event.trigger_id) or t.TriggerState(event.trigger_id), event)
            if state.active:
                triggers[event.trigger_id] = state
            else:
                triggers.pop(event.trigger_id, None)

    def matches(self, event, task_state) -> list[t.NoteTriggerMatch]:
        triggers = self.by_tenant.get(task_tenant(getattr(event, "task_id", "")))
        if not triggers:
            return []
        return [m for trigger in triggers.values() for m in t.matches(trigger, event, task_state)]

    async def run(self) -> None:
        reader = consumer(self.kafka, client_id=self.client_id, fetch_wait_ms=FIXED_FETCH_WAIT_MS)
        try:
            await reader.start()
            await reader.topics()
            topic = self.topics.trigger_events
            count = len(reader.partitions_for_topic(topic) or ()) or self.topics.partitions
            tps = [TopicPartition(topic, i) for i in range(count)]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            while True:
                batch = await reader.getmany(timeout_ms=100, max_records=2000)
                for records in batch.values():
                    for record in records:
                        try:
                            self.observe(self.codec.decode(record.value))
                        except CodecError:
                            pass  # strays on event topics are the audit connector's to report
        finally:
            await reader.stop()

    async def serve(self) -> None:
        """Runs until cancelled; a failed read starts again."""
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trigger watch stopped; starting it again")
                await asyncio.sleep(1)
