"""The matcher: folds the task, agent and ledger event logs into a Market and proposes placements.

It runs on the worker that owns the ledger's single command partition, so there is normally one
leader. Its proposals are commands, advisory by nature: the agent aggregate reserves a slot only
if the agent has one free and the ledger holds escrow only if the requester can pay, each under its
own fenced writer. So a deposed matcher that proposes once more can cost a refusal (and a refund),
never a double booking; its writer is a plain idempotent producer, which keeps a proposal one
acknowledgement away from the slot instead of a transaction.

It starts from its newest snapshot (matcher_snapshot.py) or, without a valid one, from the beginning, folds the
committed events to the end and proposes only once it has caught up. Every offer carries
its round's id, `<matcher instance>/<round time>/<next offset of each partition it had read>`, and the agent
and ledger record it in their answers: the log then says at which moment and over which events each decision
was taken, which the shadow replay (domain/shadow.py) needs to repeat the decisions exactly.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace

from aiokafka import TopicPartition
from opentelemetry.trace import SpanKind

from ..codec import Codec, header
from ..domain import events as e
from ..domain.matching import Market
from ..exceptions import CodecError
from ..kafka import CommandSender, access_for, consumer, now_ms, stop_quietly
from ..metrics import FabricStats
from ..topics import Topics
from .alerting import Alerter
from .matcher_snapshot import MatcherSnapshots
from .matcher_state import AlertInputs, Folded, Position
from ..tracing import TRACEPARENT, hop

log = logging.getLogger(__name__)
SOURCE = "/hive-streams/matcher"
ROUND_EVERY = 1.0  # seconds: a round for what time alone changes (backoffs, liveness)
ROUND_SHARE = 4  # a round waits at least this many times as long as the last one's work took. A round reads the
# queue's front and the tasks not yet noted busy (domain/queue.py), so it is short; many tasks no agent can take are
# looked at in every round, and this keeps such a round from taking the worker's CPU from its deciders


class Matcher:
    def __init__(self, codec: Codec, topics: Topics, settings, timeout_ms: int, retry_ms: int = 5000,
                 alerter: Alerter | None = None, sealer=None):
        self.alerter = alerter
        self.sealer = sealer
        self.codec = codec
        self.topics = topics
        self.settings = settings
        self.timeout_ms = timeout_ms
        self.retry_ms = retry_ms
        self.market = Market()
        self.stats = FabricStats()
        self.caught_up = asyncio.Event()
        self.last_round = 0.0
        self.round_took = 0.0  # seconds of work (not of waiting for acknowledgements) the last round took
        self.correlations: dict[str, str] = {}  # task id -> the correlation id of the request that submitted it
        self.traces: dict[str, str] = {}  # task id -> the trace of its latest task event: proposals are its children
        self.parts: list[TopicPartition] = []
        self.seen: dict[TopicPartition, int] = {}  # the next offset of each partition: what the rounds decide over
        self.checks: dict[TopicPartition, str] = {}  # the ce_id of the event before each of those offsets
        self.folded = 0  # events folded by this run
        self.instance = ""

    async def run(self) -> None:
        self.market = Market()
        self.stats = FabricStats()
        self.correlations = {}
        self.traces = {}
        self.seen = {}
        self.checks = {}
        self.folded = 0
        self.instance = uuid.uuid4().hex[:12]
        self.caught_up.clear()
        kafka = access_for(self.settings, "worker")
        reader = consumer(kafka, client_id=f"{self.settings.worker_id}-matcher")
        writer = CommandSender(kafka, self.topics, self.codec, SOURCE, sealer=self.sealer)
        snapshots = MatcherSnapshots(kafka, self.topics.matcher_snapshots, self.settings)
        await reader.start()
        await writer.start()
        if self.alerter is not None:
            await self.alerter.start()
        try:
            await snapshots.start()
            parts = self.parts = input_partitions(self.topics)
            reader.assign(parts)
            started = time.monotonic()
            state, ends, source = await snapshots.load(reader, parts)
            if state is None:
                await reader.seek_to_beginning(*parts)
            else:
                self._restore(state)
                for tp in parts:
                    reader.seek(tp, self.seen.get(tp, 0))
            log.info("matcher from %s (read in %.2fs)", source, time.monotonic() - started)
            while True:
                batch = await reader.getmany(timeout_ms=100, max_records=5000)
                for records in batch.values():
                    for record in records:
                        self.observe(record)
                    self.folded += len(records)
                if not self.caught_up.is_set() and await _reached(reader, ends):
                    log.info("matcher caught up: %d agents, %d waiting", len(self.market.agents),
                             len(self.market.waiting))
                    self.caught_up.set()
                if self.caught_up.is_set() and self._due():
                    await self._propose(writer)
                if self.caught_up.is_set() and self.alerter is not None:
                    await self.alerter.flush(now_ms())
                if self.caught_up.is_set() and snapshots.due(self.folded):  # a long catch-up is due at once
                    await snapshots.write(self.snapshot(), self.folded)
        finally:
            await snapshots.stop()
            if self.alerter is not None:
                await self.alerter.stop()
            await reader.stop()
            await stop_quietly(writer, "the matcher writer")

    def snapshot(self) -> Folded:
        self.market.forget_ended()
        alerts = AlertInputs.of(self.alerter.alerting) if self.alerter is not None and self.alerter.ready else None
        positions = tuple(Position(tp.topic, tp.partition, self.seen.get(tp, 0), self.checks.get(tp, ""))
                          for tp in self.parts)
        return Folded(positions, self.market, self.stats, self.correlations, self.traces, alerts)

    def _restore(self, state: Folded) -> None:
        """A new leader starts from a market folded from the log alone (the shadow replay assumes it): the old
        leader's offers are forgotten. A reason its round noted stays; it only decides whether a NoteWaiting is sent."""
        self.market, self.stats = state.market, state.stats
        self.market.waiting = {k: replace(w, proposed_to=None, proposed_at=0) for k, w in self.market.waiting.items()}
        self.market.dirty = True
        self.correlations, self.traces = state.correlations, state.traces
        for p in state.positions:
            if p.offset > 0:
                tp = TopicPartition(p.topic, p.partition)
                self.seen[tp], self.checks[tp] = p.offset, p.check_id
        if self.alerter is not None and self.alerter.ready and state.alerts is not None:
            state.alerts.into(self.alerter.alerting)  # without them, it knows the tail only, as after a failed start

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self.last_round < ROUND_SHARE * self.round_took:
            return False  # a short queue's rounds take microseconds: this holds back only long ones
        if self.market.dirty or now - self.last_round >= ROUND_EVERY:
            self.market.dirty = False
            self.last_round = now
            return True
        return False

    def observe(self, record) -> None:
        tp = TopicPartition(record.topic, record.partition)
        self.seen[tp] = record.offset + 1
        self.checks[tp] = header(record.headers, "ce_id") or ""
        try:
            event = self.codec.decode(record.value)
            self.market.observe(event)
            self.stats.observe(event)
            if self.alerter is not None:
                self.alerter.observe(event)
            task_id = getattr(event, "task_id", None)
            if isinstance(event, e.TERMINAL_TASK_EVENTS):
                self.correlations.pop(task_id, None)  # nothing more is proposed for it
                self.traces.pop(task_id, None)
                return
            # from the task's own events only: they share one partition, so what is kept does not depend on which
            # partition was read first, and an agent's or the ledger's event read after the end adds nothing back
            if isinstance(event, e.TaskEvent):
                if correlation := header(record.headers, "ce_correlationid"):
                    self.correlations.setdefault(task_id, correlation)
                if traceparent := header(record.headers, TRACEPARENT):
                    self.traces[task_id] = traceparent
        except CodecError:
            pass  # strays on event topics are reported by the audit connector
        except Exception:
            log.exception("matcher could not fold an event; skipping it")

    async def _propose(self, writer) -> None:
        started, now = time.monotonic(), now_ms()
        try:
            commands = self.market.proposals(now, self.timeout_ms, self.retry_ms, self.round_id(now))
        except Exception:  # a bug in a policy must not take the worker down with it
            log.exception("matcher round failed; retrying on the next batch")
            return
        acks = []
        for command in commands:
            task_id = getattr(command, "task_id", "")
            correlation = self.correlations.get(task_id)
            with hop(f"match {type(command).__name__}", self.traces.get(task_id), correlation, SpanKind.INTERNAL):
                acks.append(await writer.send(command, correlation_id=correlation))
        self.round_took = time.monotonic() - started
        await asyncio.gather(*acks)

    def round_id(self, now: int) -> str:
        return f"{self.instance}/{now}/" + ",".join(str(self.seen.get(tp, 0)) for tp in self.parts)


def input_partitions(topics: Topics) -> list[TopicPartition]:
    """What the matcher folds: every partition of the task, agent and ledger events."""
    layout = topics.layout()
    return [TopicPartition(t, p) for t in (topics.task_events, topics.agent_events, topics.ledger_events)
            for p in range(layout[t][0])]


async def _reached(reader, ends) -> bool:
    for tp, end in ends.items():
        if await reader.position(tp) < end - 1:
            return False
    return True
