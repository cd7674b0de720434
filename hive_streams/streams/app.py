"""The Faust worker: topics and agents wired to the deciders, relays and matcher."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import faust

from ..codec import Codec, default_codec
from ..domain.commands import AgentCommand, LedgerCommand, TaskCommand
from ..settings import Settings
from ..topics import Topics
from .deciders import Decider, agent_aggregate, ledger_aggregate, task_aggregate
from .matcher import Matcher
from .relays import Relay

log = logging.getLogger(__name__)


def _raw_topic(app: faust.App, name: str, partitions: int):
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions)


BATCH, BATCH_WITHIN = 500, 0.005  # commands decided together; seconds to wait for a batch to fill


def _consume(handler):
    """A Faust agent body: a batch at a time; Faust acknowledges its offsets after the body returns."""
    async def consume(stream):
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN):
            await handler.handle_batch([event.message for event in batch])
    return consume


def create_app(settings: Settings, codec: Codec | None = None) -> faust.App:
    codec = codec or default_codec(settings.schemas_dir)
    topics = Topics.from_settings(settings)
    n = topics.partitions
    datadir = Path(settings.home) / "faust" / f"{settings.worker_id}-{settings.worker_web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        datadir=str(datadir),
        web_port=settings.worker_web_port,
        web_host="127.0.0.1",
        topic_partitions=n,
        topic_replication_factor=1,
        producer_acks=-1,
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        broker_session_timeout=10.0,  # a crashed worker's partitions move on within seconds
        broker_heartbeat_interval=2.0,
    )
    task_commands = _raw_topic(app, topics.task_commands, n)
    task_events = _raw_topic(app, topics.task_events, n)
    agent_commands = _raw_topic(app, topics.agent_commands, n)
    agent_events = _raw_topic(app, topics.agent_events, n)
    ledger_commands = _raw_topic(app, topics.ledger_commands, 1)
    ledger_events = _raw_topic(app, topics.ledger_events, 1)
    deadletter = _raw_topic(app, topics.deadletter, 1)

    timeout_ms = int(settings.agent_timeout_seconds * 1000)
    task_decider = Decider(codec, task_aggregate(), settings.bootstrap, task_commands, task_events, deadletter)
    agent_decider = Decider(codec, agent_aggregate(timeout_ms), settings.bootstrap, agent_commands, agent_events,
                            deadletter)
    ledger_decider = Decider(codec, ledger_aggregate(), settings.bootstrap, ledger_commands, ledger_events, deadletter)
    deciders = {topics.task_commands: task_decider, topics.agent_commands: agent_decider,
                topics.ledger_commands: ledger_decider}

    @app.on_partitions_revoked.connect
    async def _forget(app, revoked, **kwargs):
        for topic, decider in deciders.items():
            decider.forget(tp.partition for tp in revoked if tp.topic == topic)

    @app.on_partitions_assigned.connect
    async def _own(app, assigned, **kwargs):
        for topic, decider in deciders.items():
            decider.assigned(tp.partition for tp in assigned if tp.topic == topic)

    @app.timer(interval=settings.sweep_seconds)
    async def sweep():
        for decider in deciders.values():
            await decider.sweep()

    relay = Relay(codec, {TaskCommand: task_commands, AgentCommand: agent_commands, LedgerCommand: ledger_commands},
                  settings.platform_fee_bps)
    matcher = Matcher(codec, topics, settings.bootstrap, timeout_ms, is_leader=app.is_leader)

    handlers = {"decide_tasks": (task_commands, task_decider), "decide_agents": (agent_commands, agent_decider),
                "decide_ledger": (ledger_commands, ledger_decider), "relay_task_events": (task_events, relay),
                "relay_agent_events": (agent_events, relay), "relay_ledger_events": (ledger_events, relay)}
    for name, (topic, handler) in handlers.items():
        app.agent(topic, name=name, concurrency=1)(_consume(handler))

    @app.task
    async def run_matcher():
        await matcher.run(asyncio.Event())  # cancelled when the worker stops

    app.hive_matcher = matcher
    return app
