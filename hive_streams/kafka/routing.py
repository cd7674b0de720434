"""Which topic each command goes to, and a sender that every command producer shares."""
from __future__ import annotations

import asyncio

from ..domain.callback import CallbackCommand
from ..domain.commands import AgentCommand, LedgerCommand, TaskCommand
from ..domain.execution_records import ExecutionCommand
from ..domain.schedule import ScheduleCommand
from ..domain.trigger import TriggerCommand
from ..topics import Topics
from ..tracing import current_traceparent
from .access import KafkaAccess
from .clients import producer
from .seal import Sealer


def command_topic(topics: Topics, command) -> str:
    if isinstance(command, TaskCommand):
        return topics.task_commands
    if isinstance(command, AgentCommand):
        return topics.agent_commands
    if isinstance(command, LedgerCommand):
        return topics.ledger_commands
    if isinstance(command, ExecutionCommand):
        return topics.execution_commands
    if isinstance(command, ScheduleCommand):
        return topics.schedule_commands
    if isinstance(command, TriggerCommand):
        return topics.trigger_commands
    if isinstance(command, CallbackCommand):
        return topics.callback_commands
    raise TypeError(f"{type(command).__name__} is not a command")


class CommandSender:
    """Encodes commands and sends them to their topics, keyed by aggregate id, sealed when it has a sealer."""

    def __init__(self, kafka: KafkaAccess, topics: Topics, codec, source: str, linger_ms: int = 0,
                 sealer: Sealer | None = None):
        self.topics = topics
        self.sealer = sealer
        self.codec = codec
        self.source = source
        self.kafka = kafka
        self.linger_ms = linger_ms
        self.producer = None

    async def start(self) -> None:
        self.producer = producer(self.kafka, linger_ms=self.linger_ms,
                                 client_id=self.source.strip("/").replace("/", "-"))
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    def message(self, command, **ids):
        """(key, value, headers); the trace context is the current span's unless `traceparent` is given."""
        ids.setdefault("traceparent", current_traceparent())
        return self.codec.message(command, self.source, **ids)

    async def send(self, command, *, extra_headers=(), **ids) -> asyncio.Future:
        """Queues the command; the returned future resolves when the broker acknowledged it."""
        key, value, headers = self.message(command, **ids)
        headers += extra_headers
        if self.sealer is not None:
            headers.append(self.sealer.header(value, headers))
        return await self.producer.send(command_topic(self.topics, command), value, key=key, headers=headers)

    async def send_and_wait(self, command, **ids):
        return await (await self.send(command, **ids))

    async def send_all(self, commands, **ids) -> None:
        await asyncio.gather(*[await self.send(command, **ids) for command in commands])
