"""What a decider knows of one partition, and how it turns a batch of commands into records.

A partition's state is the fold of its events partition (committed records only). Each event
carries the id of the command that caused it and that command's offset, so the fold also knows
which command ids each aggregate has applied and how far the command partition was decided:
a redelivered command emits nothing new, and a new owner resumes after the last command whose
events are in the log, whatever the group's committed offset says.

Deciding never changes `states` or `asleep`: a batch returns its records and the states they lead
to, and the engine applies them only after its transaction committed. An idle aggregate kept
encoded is decoded to decide on it and stays asleep unless the batch changed it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from ..codec import Codec, event_id, header
from ..codec.inbox import seal_to
from ..domain import agent, callback, execution, ledger, schedule, task, trigger
from ..domain import execution_records as x
from ..domain.events import AgentEvent, LedgerEvent, TaskEvent
from ..domain.commands import (EXECUTOR_COMMANDS, AgentCommand, ExpireAgent, ExpireTask, LedgerCommand, RegisterAgent,
                               TaskCommand)
from ..exceptions import CodecError
from ..schedules.cron import CronError, check, next_slot, plan
from ..kafka.principal import AGENT, PRINCIPAL_HEADER, SYSTEM, principal_header
from ..kafka.routing import command_topic
from ..kafka.seal import SealCheck, Sealer
from ..settings import Settings
from ..topics import Topics, partition_for
from ..workflows.checks import CHECKS
from ..tracing import TRACEPARENT, current_traceparent, hop
from .deadletter import deadletter_headers
from .door import Door, edge_door, executor_door, ledger_door, open_door, seal_door
from ..codec.strays import oversized, stray_reason
from .callbacks import schedule_callbacks, task_callbacks
from .relays import follow_up
from .verify import screen

log = logging.getLogger(__name__)
SOURCE = "/hive-streams/worker"
COMMAND_OFFSET = "hive_command_offset"  # header: offset of the command that caused the event
CAUSATION = "ce_causationid"
CORRELATION = "ce_correlationid"
INBOX_HEADERS = ("ce_type", CORRELATION, TRACEPARENT)  # what an inbox record says in clear: the rest is sealed


def acting_principal(command, message) -> str:
    """Who an event's command acted for: the agent whose signature the door checked (whatever header an executor
    adds), the principal the edge named, or the system process that sent it (the sweep, the matcher, a follow-up)."""
    if isinstance(command, EXECUTOR_COMMANDS):
        return f"{AGENT}{command.agent_id}"
    named = header(message.headers, PRINCIPAL_HEADER)
    if named:
        return named
    return f"{SYSTEM}{header(message.headers, 'ce_source') or 'unknown'}"


@dataclass
class Aggregate:
    """One aggregate family: its command type, initial state, decide, evolve, and what a clock may trigger."""
    command_type: type
    initial: Callable
    decide: Callable
    evolve: Callable
    due: Callable  # (state, now) -> a command the sweep should send, or None
    screen: Callable = lambda command, state: command  # checks at the door that need more than the domain
    door: Door = open_door  # (command, state, message) -> why the command is refused, or ""
    event_type: type = object  # what every record of its events topic must be
    deliver: Callable = lambda event, state: None  # (event, state before it) -> (agent id, its key) to copy it to
    watch: Callable = lambda event, before, after: []  # (event, state before and after it) -> commands it causes
    idle: Callable = lambda state: False  # nothing acts on it until a command or event arrives: it may stay encoded


def _task_due(state: task.TaskState, now: int):
    if state.deadline_at is not None and now >= state.deadline_at and state.status != "new" and not state.terminal:
        return ExpireTask(state.task_id, f"expire:{state.task_id}:{state.deadline_at}", now)
    return None


def task_aggregate(default_deadline_ms: int = 0, triggers: Callable | None = None) -> Aggregate:
    """With `default_deadline_ms`, a task submitted without a deadline gets one that far from its submission.
    `triggers`: (event, task state) -> the trigger matches it makes (the worker's view of the triggers)."""
    def decide(command, state, now):
        return task.decide(task.with_default_deadline(command, default_deadline_ms), state, now)

    def watch(event, before, after):
        return (triggers(event, after) if triggers else []) + task_callbacks(event, before, after)
    return Aggregate(TaskCommand, task.TaskState, decide if default_deadline_ms else task.decide, task.evolve,
                     _task_due, screen, executor_door(task.signing_key), TaskEvent, deliver=task.delivery,
                     watch=watch, idle=lambda state: state.terminal)


def ledger_aggregate(fee_bps: int = Settings.platform_fee_bps) -> Aggregate:
    return Aggregate(LedgerCommand, lambda _: ledger.LedgerState(), ledger.decide, ledger.evolve, lambda s, now: None,
                     door=ledger_door(fee_bps), event_type=LedgerEvent)


def agent_aggregate(timeout_ms: int) -> Aggregate:
    def due(state: agent.AgentState, now: int):
        if state.status == "online" and now - state.last_seen > timeout_ms:
            return ExpireAgent(state.agent_id, f"expire:{state.agent_id}:{state.last_seen}", now)
        return None
    signed = executor_door(agent.signing_key)

    def door(command, state, message) -> str:
        """Signed by the agent, and an offer the market can work with (no NaN, infinite or absurd values)."""
        why = signed(command, state, message)
        if not why and isinstance(command, RegisterAgent):
            why = agent.offer_problem(command)
        return why
    return Aggregate(AgentCommand, agent.AgentState,
                     lambda cmd, state, now: agent.decide(cmd, state, now, timeout_ms), agent.evolve, due,
                     door=door, event_type=AgentEvent)


def execution_aggregate() -> Aggregate:
    def due(state: x.ExecutionState, now: int):
        if state.deadline_at is not None and now >= state.deadline_at and state.status in ("running", "interrupted"):
            return x.ExpireExecution(state.execution_id, f"expire:{state.execution_id}:{state.deadline_at}", now)
        return None
    return Aggregate(x.ExecutionCommand, x.ExecutionState,
                     lambda cmd, state, now: execution.decide(cmd, state, now, CHECKS), execution.evolve, due,
                     event_type=x.ExecutionEvent)


def _schedule_problem(command) -> str:
    if not isinstance(command, schedule.CreateSchedule):
        return ""
    try:
        check(command.cron, command.timezone)
    except CronError as exc:
        return str(exc)
    return schedule.creation_problem(command)


def schedule_aggregate(grace_ms: int) -> Aggregate:
    def due(state: schedule.ScheduleState, now: int):
        if not state.active:
            return None
        try:
            upcoming = next_slot(state.cron, state.timezone, state.last_slot_at)
            if upcoming is None or upcoming > now:
                return None
            chosen = plan(state.cron, state.timezone, state.catchup, state.last_slot_at, now, grace_ms)
        except CronError:  # checked at the API: only a schedule written around it gets here
            log.warning("schedule %s has a bad cron or zone; it never fires", state.schedule_id)
            return None
        if not chosen.through:
            return None
        return schedule.FireSchedule(state.schedule_id, f"fire:{state.schedule_id}:{chosen.through}", now,
                                     chosen.fire, chosen.skip, chosen.through)
    door = edge_door((schedule.CreateSchedule, schedule.DeleteSchedule), (schedule.FireSchedule,), _schedule_problem)
    return Aggregate(schedule.ScheduleCommand, schedule.ScheduleState, schedule.decide, schedule.evolve, due,
                     door=door, watch=schedule_callbacks, event_type=schedule.ScheduleEvent)


def callback_aggregate(base_ms: int, cap_ms: int) -> Aggregate:
    return Aggregate(callback.CallbackCommand, callback.CallbackState,
                     lambda cmd, state, now: callback.decide(cmd, state, now, base_ms, cap_ms), callback.evolve,
                     lambda s, now: None, door=edge_door((), callback.CALLBACK_COMMANDS), event_type=callback.CallbackEvent)


def trigger_aggregate() -> Aggregate:
    door = edge_door((trigger.CreateTrigger, trigger.DeleteTrigger), (trigger.NoteTriggerMatch,),
                     lambda cmd: trigger.creation_problem(cmd) if isinstance(cmd, trigger.CreateTrigger) else "")
    return Aggregate(trigger.TriggerCommand, trigger.TriggerState, trigger.decide, trigger.evolve, lambda s, now: None,
                     door=door, event_type=trigger.TriggerEvent)


def family_aggregates(topics: Topics, settings: Settings,
                      triggers: Callable | None = None) -> list[tuple[str, str, Aggregate]]:
    """(commands topic, events topic, aggregate) of every decider family, as the worker runs them and replay folds
    them. `triggers`: the worker's view of the triggers (deciding only; folding does not need it)."""
    t, timeout_ms = topics, int(settings.agent_timeout_seconds * 1000)
    return [(t.task_commands, t.task_events, task_aggregate(int(settings.default_deadline_seconds * 1000), triggers)),
            (t.agent_commands, t.agent_events, agent_aggregate(timeout_ms)),
            (t.ledger_commands, t.ledger_events, ledger_aggregate(settings.platform_fee_bps)),
            (t.execution_commands, t.execution_events, execution_aggregate()),
            (t.schedule_commands, t.schedule_events, schedule_aggregate(int(settings.schedule_grace_seconds * 1000))),
            (t.trigger_commands, t.trigger_events, trigger_aggregate()),
            (t.callback_commands, t.callback_events,
             callback_aggregate(settings.callback_backoff_ms, settings.callback_backoff_max_ms))]


class Out(NamedTuple):
    """One record a batch writes: an event, a follow-up command or a dead letter."""
    topic: str
    key: bytes | None
    value: bytes
    headers: list
    partition: int | None = None


class Unread(NamedTuple):
    """A follow-up command decided in the transaction that writes it, before it is read back: it has no offset."""
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: list
    offset: None = None


@dataclass
class Decided:
    records: list[Out] = field(default_factory=list)
    states: dict = field(default_factory=dict)
    applied: dict = field(default_factory=dict)
    decided_to: int = -1
    events: int = 0


class PartitionState:
    """One command partition's aggregates, folded from the matching events partition."""

    def __init__(self, codec: Codec, aggregate: Aggregate, topics: Topics, events_topic: str, partition: int,
                 partitions: int, fee_bps: int = 0, record_limit: int = Settings.record_max_kb * 1024,
                 sealer: Sealer | None = None, seal: SealCheck | None = None):
        self.codec = codec
        self.record_limit = record_limit  # larger commands are dead-lettered, larger events never written
        self.sealer = sealer  # seals its follow-up commands
        self.seal_door = seal_door(seal) if seal is not None else open_door
        self.aggregate = aggregate
        self.topics = topics
        self.events_topic = events_topic
        self.partition = partition
        self.partitions = partitions
        self.fee_bps = fee_bps
        self.states: dict[bytes, object] = {}
        self.asleep: dict[bytes, bytes] = {}  # idle aggregates still encoded: decoded when a command or event needs them
        self.applied: dict[bytes, set[str]] = {}
        self.decided_to = -1  # the highest command offset whose events are in the log
        self.strays = 0
        self.touched: set[bytes] = set()  # aggregates changed since the last snapshot
        self.events_end = 0  # the events offset after the last event folded or written
        self.last_event_id = ""

    # fold ---------------------------------------------------------------------------------

    def observe(self, record) -> None:
        """Folds one record of the events partition; a stray (the audit connector dead-letters it) is skipped."""
        try:
            event = self.codec.decode(record.value) if not oversized(record.value, self.record_limit) else None
        except CodecError:
            event = None
        reason = stray_reason(self.codec, self.aggregate.event_type, record.key, record.value, self.record_limit,
                              event)
        key = record.key
        if not reason:
            try:
                self.states[key] = self.aggregate.evolve(self._state(key), event)
                self.asleep.pop(key, None)
            except Exception as exc:  # an event its aggregate cannot take must not stop the load
                reason = f"evolve failed: {exc!r}"
        if reason:
            self.strays += 1
            log.warning("%s[%d]@%d skipped: %s", self.events_topic, self.partition, record.offset, reason)
            return
        self.touched.add(key)
        self.events_end, self.last_event_id = record.offset + 1, header(record.headers, "ce_id") or ""
        cause = header(record.headers, CAUSATION)
        if cause:
            self.applied.setdefault(key, set()).add(cause)
        offset = header(record.headers, COMMAND_OFFSET)
        if offset and offset.isdigit():
            self.decided_to = max(self.decided_to, int(offset))

    def _state(self, key: bytes, pending: dict | None = None):
        if pending and key in pending:
            return pending[key]
        state = self.states.get(key)
        if state is not None:
            return state
        raw = self.asleep.get(key)
        return self._decoded(key, raw) if raw is not None else self.aggregate.initial(key.decode())

    def _decoded(self, key: bytes, raw: bytes):
        state = self.codec.decode(raw)
        if self.codec.key(state) != key:
            raise CodecError(f"the state kept under {key!r} is of {self.codec.key(state)!r}")
        return state

    def _wake(self, key: bytes) -> None:
        self.states[key] = self._decoded(key, self.asleep.pop(key))
        self.touched.add(key)  # encoded again at the next snapshot

    def count(self) -> int:
        """Aggregates known, decoded or not."""
        return len(self.states) + len(self.asleep)

    def wake_all(self) -> dict:
        """Every aggregate's state, decoded."""
        for key in list(self.asleep):
            self._wake(key)
        return self.states

    def settle(self, encoded: dict[bytes, bytes]) -> None:
        """Keeps idle aggregates only in their encoding (`encoded`: every decoded state's, up to date), which
        it takes over: memory and the sweep then grow with live aggregates, not with every one ever decided."""
        idle = self.aggregate.idle
        for key in [k for k, s in self.states.items() if idle(s)]:
            self.asleep[key] = encoded.pop(key)
            del self.states[key]

    def apply(self, decided: Decided, last_event: tuple[int, str] | None = None) -> None:
        """Takes a committed batch in; `last_event` is the offset and id of its last event."""
        self.states.update(decided.states)
        self.touched.update(decided.states)
        for key in decided.states:
            self.asleep.pop(key, None)  # changed: decoded from now on, encoded again at the next snapshot
        if last_event is not None:
            self.events_end, self.last_event_id = last_event[0] + 1, last_event[1]
        for key, ids in decided.applied.items():
            self.applied.setdefault(key, set()).update(ids)
        self.decided_to = max(self.decided_to, decided.decided_to)

    # decide -------------------------------------------------------------------------------

    def decide(self, messages, now: int, into: Decided | None = None) -> Decided:
        """Decides on top of `into` (an open transaction's decisions so far), which it extends and returns."""
        out = into if into is not None else Decided()
        for message in messages:
            if message.offset is not None:
                out.decided_to = max(out.decided_to, message.offset)
            # a child span of the command's (none for an untraced one): what it causes carries it on
            correlation, parent = header(message.headers, CORRELATION), header(message.headers, TRACEPARENT)
            name = f"decide {header(message.headers, 'ce_type') or 'command'}" if parent else "decide"  # named if traced
            with hop(name, parent, correlation, **{"messaging.destination.name": message.topic,
                                                   "messaging.kafka.offset": message.offset}):
                self._decide_one(message, now, out, correlation)
        return out

    def decide_follow_up(self, command: Out, now: int, into: Decided) -> bool:
        """Decides a follow-up command that a partition of the same writer put in the open transaction, as if it
        had been read: its events join that transaction. Kept only if it led to events; a refusal, or nothing,
        is left to its reading in its place. When it is read, its id is applied and it emits nothing. Its
        events name no command offset (it has none yet), so a new owner reads it again, and skips it too."""
        records, events = len(into.records), into.events
        self.decide([Unread(command.topic, self.partition, command.key, command.value, command.headers)], now, into)
        if into.events == events:
            del into.records[records:]
            return False
        return True

    def _decide_one(self, message, now: int, out: Decided, correlation: str | None) -> None:
        too_big = oversized(message.value, self.record_limit)
        if too_big:
            out.records.append(self._deadletter(message, too_big))
            return
        try:
            if message.value is None:
                raise CodecError("no value (a tombstone)")
            command = self.codec.decode(message.value)
        except CodecError as exc:
            out.records.append(self._deadletter(message, f"undecodable: {exc}"))
            return
        reason = self._misfit(message, command)
        if reason:
            out.records.append(self._deadletter(message, reason))
            return
        key = message.key
        if command.command_id in self.applied.get(key, ()) or command.command_id in out.applied.get(key, ()):
            return  # its events are in the log already
        try:
            state = self._state(key, out.states)
            refusal = self.seal_door(command, state, message) or self.aggregate.door(command, state, message)
            if refusal:
                out.records.append(self._deadletter(message, f"refused: {refusal}"))
                return
            records, events, state = self._records_of(command, message, state, now, correlation)
        except Exception as exc:  # a bug, or an event that cannot be encoded, must not stop the partition
            if message.offset is not None:  # an unread follow-up's failure is rolled back, and said when read
                log.exception("decide failed for %s", type(command).__name__)
            out.records.append(self._deadletter(message, f"decide failed: {exc!r}"))
            return
        if not events:
            return
        out.records += records
        out.events += events
        out.states[key] = state
        out.applied.setdefault(key, set()).add(command.command_id)

    def _records_of(self, command, message, state, now: int,
                    correlation: str | None) -> tuple[list[Out], int, object]:
        """The records one command writes, how many are events, and the state they lead to."""
        events = self.aggregate.decide(self.aggregate.screen(command, state), state, now)
        if not events:
            return [], 0, state
        extra = [(COMMAND_OFFSET, str(message.offset).encode())] if message.offset is not None else []
        extra.append(principal_header(acting_principal(command, message)))
        traceparent = current_traceparent()  # the decide span's: what this command writes carries it on
        records = []
        for event in events:
            k, v, headers = self.codec.message(event, SOURCE, causation_id=command.command_id,
                                               correlation_id=correlation, traceparent=traceparent)
            if len(v) > self.record_limit:  # the broker would refuse it, and the partition would stop on it
                raise ValueError(f"its {type(event).__name__} would be {len(v)} bytes, over the limit of "
                                 f"{self.record_limit}")
            records.append(Out(self.events_topic, k, v, headers + extra, self.partition))
            delivery = self.aggregate.deliver(event, state)
            if delivery is not None:
                records.append(self._delivery(delivery, v, headers))
            before, state = state, self.aggregate.evolve(state, event)
            records += self._commands(follow_up(event, self.fee_bps), event, correlation, traceparent)
            records += self._commands(self.aggregate.watch(event, before, state), event, correlation, traceparent)
        return records, len(events), state

    def _delivery(self, to: tuple[str, str], value: bytes, headers) -> Out:
        """The event, sealed to the agent that acts on it, on the executors' inbox (in the same transaction)."""
        agent_id, agent_key = to
        key = agent_id.encode()
        kept = [(name, raw) for name, raw in headers if name in INBOX_HEADERS]
        return Out(self.topics.executor_inbox, key, seal_to(agent_key, value), kept,
                   partition_for(key, self.topics.partitions))

    def _commands(self, commands, event, correlation: str | None, traceparent: str | None) -> list[Out]:
        """Commands to other aggregates (follow-ups, and what a watch calls for), written in the same transaction
        as the event that calls for them; they carry the request's correlation id on."""
        records = []
        for command in commands:
            k, v, headers = self.codec.message(command, SOURCE, causation_id=event_id(event),
                                               correlation_id=correlation, traceparent=traceparent)
            if self.sealer is not None:
                headers.append(self.sealer.header(v, headers))
            records.append(Out(command_topic(self.topics, command), k, v, headers))
        return records

    def _misfit(self, message, command) -> str:
        if not isinstance(command, self.aggregate.command_type):
            return f"not a command for this topic: {type(command).__name__}"
        key = self.codec.key(command)
        if message.key != key:
            return f"key {message.key!r} is not the aggregate id {key!r}"
        if message.partition != partition_for(key, self.partitions):
            return f"partition {message.partition} is not the default partitioner's for key {key!r}"
        return ""

    def _deadletter(self, message, reason: str) -> Out:
        if message.offset is not None:  # an unread follow-up's is rolled back, and said when the command is read
            log.warning("dead-lettering %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)
        return Out(self.topics.deadletter, message.key, message.value, deadletter_headers(message, reason))

    # clock --------------------------------------------------------------------------------

    def due(self, now: int) -> list:
        """What the clock calls for; an idle aggregate has nothing by definition, so those asleep are skipped."""
        return [cmd for state in self.states.values() if (cmd := self.aggregate.due(state, now)) is not None]
