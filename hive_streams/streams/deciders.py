"""Thin shells around the aggregates: decode a command, decide, send the events, keep the state.

A decider's state is the fold of its events partition, loaded the first time a command from that
partition arrives after an assignment. Events are durable before the state moves on, so the state
can never run ahead of the log; a crash replays commands whose duplicate events carry the same
aggregate/seq, which every reader (and `evolve`) skips.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..codec import Codec
from ..domain import agent, ledger, task
from ..domain.commands import AgentCommand, ExpireAgent, ExpireTask, LedgerCommand, TaskCommand
from ..exceptions import CodecError
from ..topics import partition_for
from .deadletter import send_to_deadletter
from .verify import screen

log = logging.getLogger(__name__)
SOURCE = "/hive-streams/worker"


def now_ms() -> int:
    return int(time.time() * 1000)


RESEND_MS = 5000


@dataclass
class Aggregate:
    """One aggregate family: its command type, initial state, decide, evolve, and what a clock may trigger."""
    command_type: type
    initial: Callable
    decide: Callable
    evolve: Callable
    due: Callable  # (state, now) -> a command the sweep should send, or None
    screen: Callable = lambda command, state: command  # checks at the door that need more than the domain


def _task_due(state: task.TaskState, now: int):
    if state.deadline_at is not None and now >= state.deadline_at and state.status != "new" and not state.terminal:
        return ExpireTask(state.task_id, f"expire:{state.task_id}:{now}", now)
    return None


def task_aggregate() -> Aggregate:
    return Aggregate(TaskCommand, task.TaskState, task.decide, task.evolve, _task_due, screen)


def ledger_aggregate() -> Aggregate:
    return Aggregate(LedgerCommand, lambda _: ledger.LedgerState(), ledger.decide, ledger.evolve, lambda s, now: None)


def agent_aggregate(timeout_ms: int) -> Aggregate:
    def due(state: agent.AgentState, now: int):
        if state.status == "online" and now - state.last_seen > timeout_ms:
            return ExpireAgent(state.agent_id, f"expire:{state.agent_id}:{now}", now)
        return None
    return Aggregate(AgentCommand, agent.AgentState,
                     lambda cmd, state, now: agent.decide(cmd, state, now, timeout_ms), agent.evolve, due)


class Decider:
    def __init__(self, codec: Codec, aggregate: Aggregate, bootstrap: str, commands_topic, events_topic,
                 deadletter_topic):
        self.codec = codec
        self.aggregate = aggregate
        self.bootstrap = bootstrap
        self.commands_topic = commands_topic
        self.events_topic = events_topic
        self.deadletter_topic = deadletter_topic
        self.states: dict[int, dict[bytes, object]] = {}  # partition -> aggregate id -> state
        self.owned: set[int] = set()
        self.locks: dict[int, asyncio.Lock] = {}
        self.requested: dict[bytes, int] = {}  # what the sweep asked for, and when

    def assigned(self, partitions) -> None:
        self.owned |= set(partitions)

    def forget(self, partitions) -> None:
        for p in partitions:
            self.owned.discard(p)
            self.states.pop(p, None)

    async def states_for(self, partition: int) -> dict[bytes, object]:
        lock = self.locks.setdefault(partition, asyncio.Lock())
        async with lock:
            if partition not in self.states:
                self.states[partition] = await self._load(partition)
            return self.states[partition]

    async def sweep(self) -> int:
        """Sends the commands the clock calls for (deadlines, silent agents) for owned partitions."""
        now = now_ms()
        sent = 0
        for partition in sorted(self.owned):
            for key, state in list((await self.states_for(partition)).items()):
                command = self.aggregate.due(state, now)
                if command is None or now - self.requested.get(key, 0) < RESEND_MS:
                    continue
                self.requested[key] = now
                k, v, headers = self.codec.message(command, SOURCE)
                await self.commands_topic.send(key=k, value=v, headers=headers, partition=partition)
                sent += 1
        return sent

    async def handle(self, message) -> int:
        return await self.handle_batch([message])

    async def handle_batch(self, messages) -> int:
        """Decides a batch, produces its events, then waits once for every acknowledgement.

        Returns the number of events emitted; bad records are dead-lettered, never raised. If a
        send fails, the touched partitions' states are dropped (they reload from the log), so a
        state never stays ahead of what the broker acknowledged; Faust commits the batch's
        offsets only after this returns.
        """
        acks, touched = [], set()
        try:
            for message in messages:
                touched.add(message.partition)
                acks += await self._decide(message)
            await asyncio.gather(*acks)
        except BaseException:
            for partition in touched:
                self.states.pop(partition, None)
            raise
        return len(acks)

    async def _decide(self, message) -> list:
        """The acknowledgements to wait for, one per event produced."""
        try:
            command = self.codec.decode(message.value)
        except CodecError as exc:
            await send_to_deadletter(self.deadletter_topic, message, f"undecodable: {exc}")
            return []
        reason = self._misfit(message, command)
        if reason:
            await send_to_deadletter(self.deadletter_topic, message, reason)
            return []
        states = await self.states_for(message.partition)
        key = message.key
        state = states.get(key) or self.aggregate.initial(key.decode())
        try:
            command = self.aggregate.screen(command, state)
            events = self.aggregate.decide(command, state, now_ms())
        except Exception as exc:  # a bug must not stop the partition: park the command
            log.exception("decide failed for %s", type(command).__name__)
            await send_to_deadletter(self.deadletter_topic, message, f"decide failed: {exc!r}")
            return []
        acks = []
        for event in events:
            k, v, headers = self.codec.message(event, SOURCE, causation_id=command.command_id)
            acks.append(await self.events_topic.send(key=k, value=v, headers=headers, partition=message.partition))
            state = self.aggregate.evolve(state, event)
        states[key] = state
        return acks

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
