"""Thin shells around the aggregates: decode a command, decide, send the events, keep the state.

A decider's state is the fold of its events partition, loaded the first time a command from that
partition arrives after an assignment. Events are durable before the state moves on, so the state
can never run ahead of the log; a crash replays commands whose duplicate events carry the same
aggregate/seq, which every reader (and `evolve`) skips.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..codec import Codec
from ..domain import agent, task
from ..domain.commands import AgentCommand, TaskCommand
from ..exceptions import CodecError
from ..topics import partition_for
from .deadletter import send_to_deadletter

log = logging.getLogger(__name__)
SOURCE = "/hive-streams/worker"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Aggregate:
    """One aggregate family: its command type, initial state, decide and evolve."""
    command_type: type
    initial: Callable
    decide: Callable
    evolve: Callable


def task_aggregate() -> Aggregate:
    return Aggregate(TaskCommand, task.TaskState, task.decide, task.evolve)


def agent_aggregate(timeout_ms: int) -> Aggregate:
    return Aggregate(AgentCommand, agent.AgentState,
                     lambda cmd, state, now: agent.decide(cmd, state, now, timeout_ms), agent.evolve)


class Decider:
    def __init__(self, codec: Codec, aggregate: Aggregate, bootstrap: str, events_topic, deadletter_topic):
        self.codec = codec
        self.aggregate = aggregate
        self.bootstrap = bootstrap
        self.events_topic = events_topic
        self.deadletter_topic = deadletter_topic
        self.states: dict[int, dict[bytes, object]] = {}  # partition -> aggregate id -> state

    def forget(self, partitions) -> None:
        for p in partitions:
            self.states.pop(p, None)

    async def handle(self, message) -> int:
        """Returns the number of events emitted; bad records are dead-lettered, never raised."""
        try:
            command = self.codec.decode(message.value)
        except CodecError as exc:
            await send_to_deadletter(self.deadletter_topic, message, f"undecodable: {exc}")
            return 0
        reason = self._misfit(message, command)
        if reason:
            await send_to_deadletter(self.deadletter_topic, message, reason)
            return 0
        states = self.states.get(message.partition)
        if states is None:
            states = self.states[message.partition] = await self._load(message.partition)
        key = message.key
        state = states.get(key) or self.aggregate.initial(key.decode())
        try:
            events = self.aggregate.decide(command, state, now_ms())
        except Exception as exc:  # a bug must not stop the partition: park the command
            log.exception("decide failed for %s", type(command).__name__)
            await send_to_deadletter(self.deadletter_topic, message, f"decide failed: {exc!r}")
            return 0
        for event in events:
            k, v, headers = self.codec.message(event, SOURCE, causation_id=command.command_id)
            await (await self.events_topic.send(key=k, value=v, headers=headers, partition=message.partition))
            state = self.aggregate.evolve(state, event)
        states[key] = state
        return len(events)

    def _misfit(self, message, command) -> str:
        if not isinstance(command, self.aggregate.command_type):
            return f"not a command for this topic: {type(command).__name__}"
        key = self.codec.key(command)
        if message.key != key:
            return f"key {message.key!r} is not the aggregate id {key!r}"
        if message.partition != partition_for(key, self.events_topic.partitions):
            return f"partition {message.partition} is not the default partitioner's for key {key!r}"
        return ""

    async def _load(self, partition: int) -> dict[bytes, object]:
        started = time.monotonic()
        states: dict[bytes, object] = {}
        tp = TopicPartition(self.events_topic.get_topic_name(), partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            count = 0
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=1000, max_records=5000)).get(tp, []):
                    try:
                        event = self.codec.decode(record.value)
                    except CodecError:
                        continue
                    state = states.get(record.key) or self.aggregate.initial(record.key.decode())
                    states[record.key] = self.aggregate.evolve(state, event)
                    count += 1
        finally:
            await consumer.stop()
        log.info("%s[%d]: %d aggregates from %d events in %.2fs", tp.topic, partition, len(states), count,
                 time.monotonic() - started)
        return states
