"""Thin shells around the aggregates: decode a command, decide, send the events, keep the state."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..codec import Codec
from ..domain import agent, task
from ..domain.commands import AgentCommand, TaskCommand
from ..exceptions import CodecError
from .deadletter import send_to_deadletter

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
    def __init__(self, codec: Codec, aggregate: Aggregate, table, events_topic, deadletter_topic):
        self.codec = codec
        self.aggregate = aggregate
        self.table = table
        self.events_topic = events_topic
        self.deadletter_topic = deadletter_topic

    async def handle(self, message) -> int:
        """Returns the number of events emitted; bad records are dead-lettered, never raised."""
        try:
            command = self.codec.decode(message.value)
        except CodecError as exc:
            await send_to_deadletter(self.deadletter_topic, message, f"undecodable: {exc}")
            return 0
        if not isinstance(command, self.aggregate.command_type):
            await send_to_deadletter(self.deadletter_topic, message, f"not a command for this topic: {type(command).__name__}")
            return 0
        key = self.codec.key(command)
        if message.key != key:
            await send_to_deadletter(self.deadletter_topic, message, f"key {message.key!r} is not the aggregate id {key!r}")
            return 0
        stored = self.table.get(key)
        state = self.codec.decode(stored) if stored else self.aggregate.initial(key.decode())
        events = self.aggregate.decide(command, state, now_ms())
        if not events:
            return 0
        causation = command.command_id
        for event in events:
            k, v, headers = self.codec.message(event, SOURCE, causation_id=causation)
            await (await self.events_topic.send(key=k, value=v, headers=headers))
            state = self.aggregate.evolve(state, event)
        # events are durable before the state moves on: a crash in between replays the command,
        # and the duplicate events carry the same aggregate/seq, which every reader skips
        self.table[key] = self.codec.encode(state)
        return len(events)
