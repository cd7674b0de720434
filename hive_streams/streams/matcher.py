"""The matcher: folds the task and agent event logs into a Market and proposes placements.

Every worker folds; only Faust's leader proposes, so two workers do not race each other.

It reads every partition from the beginning with its own consumer (no group), so its view is
rebuilt from the log on every start, and proposes only once it has caught up.
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ..codec import Codec
from ..domain.commands import AgentCommand, LedgerCommand
from ..domain.matching import Market
from ..exceptions import CodecError
from ..topics import Topics

log = logging.getLogger(__name__)
SOURCE = "/hive-streams/matcher"


class Matcher:
    def __init__(self, codec: Codec, topics: Topics, bootstrap: str, timeout_ms: int, retry_ms: int = 5000,
                 is_leader=lambda: True):
        self.codec = codec
        self.topics = topics
        self.bootstrap = bootstrap
        self.timeout_ms = timeout_ms
        self.retry_ms = retry_ms
        self.is_leader = is_leader  # with several workers only the leader proposes; all of them fold
        self.market = Market()
        self.caught_up = asyncio.Event()
        self.last_round = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=2)
        await consumer.start()
        await producer.start()
        try:
            layout = self.topics.layout()
            parts = [TopicPartition(t, p) for t in (self.topics.task_events, self.topics.agent_events,
                                                    self.topics.ledger_events) for p in range(layout[t][0])]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=2000)
                for records in batch.values():
                    for record in records:
                        self._observe(record.value)
                if not self.caught_up.is_set() and await self._reached(consumer, ends):
                    log.info("matcher caught up: %d agents, %d waiting", len(self.market.agents), len(self.market.waiting))
                    self.caught_up.set()
                if self.caught_up.is_set() and self.is_leader() and self._due():
                    try:
                        await self._propose(producer)
                    except Exception:  # a bug in a policy must not take the worker down with it
                        log.exception("matcher round failed; retrying on the next batch")
        finally:
            await consumer.stop()
            await producer.stop()

    def _due(self) -> bool:
        """Propose when the market changed, and once a second for what time alone changes (backoffs, liveness)."""
        now = time.monotonic()
        if self.market.dirty or now - self.last_round >= 1.0:
            self.market.dirty = False
            self.last_round = now
            return True
        return False

    @staticmethod
    async def _reached(consumer, ends) -> bool:
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    def _observe(self, value: bytes) -> None:
        try:
            self.market.observe(self.codec.decode(value))
        except CodecError:
            pass  # strays on event topics are reported by the audit connector
        except Exception:
            log.exception("matcher could not fold an event; skipping it")

    async def _propose(self, producer: AIOKafkaProducer) -> None:
        now = int(time.time() * 1000)
        for command in self.market.proposals(now, self.timeout_ms, self.retry_ms):
            topic = (self.topics.agent_commands if isinstance(command, AgentCommand)
                     else self.topics.ledger_commands if isinstance(command, LedgerCommand) else self.topics.task_commands)
            key, value, headers = self.codec.message(command, SOURCE)
            await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
