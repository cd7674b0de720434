"""The audit connector on the real broker and PostgreSQL: duplicates, garbage, restart."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connectors.audit import CONSUMER, run_audit
from hive_streams import settings as settings_mod
from hive_streams.codec import default_codec, event_id
from hive_streams.codec.avro import from_record
from hive_streams.domain import agent, task
from hive_streams.domain import commands as c
from hive_streams.domain.model import Capability, NodeSpec, node_digest, result_digest
from hive_streams.store import load_offsets, make_engine
from hive_streams.store.models import AgentRow, AuditRow, TaskRow
from hive_streams.store.queries import get_task

from .roles import as_role

pytestmark = pytest.mark.stack
T0 = 1_700_000_000_000
SOURCE = "tests/audit"


class Log:
    """Decides commands like the worker would and remembers where each produced record landed."""

    def __init__(self, producer: AIOKafkaProducer, topics):
        self.producer, self.topics, self.codec = producer, topics, default_codec()
        self.tasks: dict[str, task.TaskState] = {}
        self.agents: dict[str, agent.AgentState] = {}
        self.sent: list[tuple] = []  # (event or None, topic, partition, offset)

    async def task(self, cmd) -> list:
        state = self.tasks.get(cmd.task_id) or task.TaskState(cmd.task_id)
        events = task.decide(cmd, state, cmd.at)
        for ev in events:
            self.tasks[cmd.task_id] = task.evolve(self.tasks.get(cmd.task_id, state), ev)
            await self.send(ev, self.topics.task_events)
        return events

    async def agent(self, cmd) -> list:
        state = self.agents.get(cmd.agent_id) or agent.AgentState(cmd.agent_id)
        events = agent.decide(cmd, state, cmd.at, 10_000)
        for ev in events:
            self.agents[cmd.agent_id] = agent.evolve(self.agents.get(cmd.agent_id, state), ev)
            await self.send(ev, self.topics.agent_events)
        return events

    async def send(self, event, topic: str) -> None:
        key, value, headers = self.codec.message(event, SOURCE)
        meta = await self.producer.send_and_wait(topic, value, key=key, headers=headers)
        self.sent.append((event, topic, meta.partition, meta.offset))

    async def garbage(self, key: bytes) -> None:
        meta = await self.producer.send_and_wait(self.topics.task_events, b"\xc3\x01 not avro", key=key)
        self.sent.append((None, self.topics.task_events, meta.partition, meta.offset))

    def end_offsets(self) -> dict:
        ends: dict = {}
        for _, topic, partition, offset in self.sent:
            ends[(topic, partition)] = max(ends.get((topic, partition), 0), offset + 1)
        return ends

    def expected_audit(self) -> list[tuple]:
        """One row per record in log order; an event id seen before in its partition is a duplicate."""
        seen, rows = set(), []
        for ev, topic, partition, offset in sorted(self.sent, key=lambda s: s[1:]):
            eid = event_id(ev) if ev is not None else None
            rows.append((topic, partition, offset, eid, f"hive.v1.{type(ev).__name__}" if ev else "undecodable",
                         ev.seq if ev else None, ev.at if ev else None, (topic, partition, eid) in seen))
            if eid is not None:
                seen.add((topic, partition, eid))
        return rows


async def run_until_caught_up(settings, engine, ends: dict, timeout: float = 60) -> None:
    stop, ready = asyncio.Event(), asyncio.Event()
    runner = asyncio.create_task(run_audit(settings, stop, ready))
    try:
        async with asyncio.timeout(timeout):
            while True:
                if runner.done():
                    runner.result()  # raises what the connector died of
                    raise AssertionError("the connector stopped by itself")
                if ready.is_set():  # the schema exists from here on
                    stored = await asyncio.to_thread(load_offsets, engine, CONSUMER)
                    if {k: v for k, v in stored.items() if k in ends} == ends:
                        return
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await runner


def audit_rows(engine, topics) -> list[tuple]:
    with Session(engine) as s:
        rows = s.scalars(select(AuditRow).where(AuditRow.topic.in_([topics.task_events, topics.agent_events])))
        return sorted((r.topic, r.partition, r.offset, r.event_id, r.event_type, r.seq, r.occurred_at, r.duplicate)
                      for r in rows)


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request, tmp_path):
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'hive.db'}"


async def test_audits_every_record_projects_each_event_once_and_resumes(kafka_bootstrap, store_url, topics, caplog):
    caplog.set_level(logging.WARNING, logger="hive_streams.audit")
    settings = dataclasses.replace(settings_mod.load(), kafka_bootstrap=kafka_bootstrap, database_url=store_url,
                                   topic_prefix=topics.prefix, partitions=topics.partitions)
    engine = make_engine(store_url)
    run = uuid.uuid4().hex[:8]
    job, bad, box = f"job-{run}", f"cycle-{run}", f"agent-{run}"
    producer = AIOKafkaProducer(**as_role("worker").options())  # writes events as the worker does
    await producer.start()
    try:
        log = Log(producer, topics)
        # first run: two tasks, an agent, and an event produced twice in a row
        submitted, = await log.task(c.SubmitTask(job, "c1", T0, name="digest", requester="ann",
                                                           nodes=(NodeSpec("fetch", "http"),), priority=2))
        await log.send(submitted, topics.task_events)
        loop = (NodeSpec("a", "echo", depends_on=("b",)), NodeSpec("b", "echo", depends_on=("a",)))
        rejected_events = await log.task(c.SubmitTask(bad, "c2", T0 + 1, name="loop", requester="bob", nodes=loop))
        await log.agent(c.RegisterAgent(box, "c3", T0 + 2, name="box", capabilities=(Capability("http"),), slots=2))
        await log.agent(c.ReserveSlot(box, "c4", T0 + 3, task_id=job))
        await log.task(c.AssignTask(job, "c5", T0 + 4, agent_id=box))
        await run_until_caught_up(settings, engine, log.end_offsets())
        assert audit_rows(engine, topics) == log.expected_audit()

        # behind the connector's back: a row it already wrote disappears; a resumed run won't see it again
        with engine.begin() as conn:
            conn.execute(delete(AuditRow).where(AuditRow.event_id == f"{job}/1"))

        # second run: garbage, the rest of the task, a duplicate of an event from the first run
        await log.garbage(job.encode())
        await log.task(c.ReportNodeCompleted(job, "c6", T0 + 5, agent_id=box, attempt=1, node_id="fetch",
                                             output_json='{"pages": 3}',
                                             digest=node_digest(job, 1, "fetch", '{"pages": 3}')))
        await log.task(c.ReportTaskResult(job, "c6r", T0 + 5, agent_id=box, attempt=1, signature="",
                                          digest=result_digest(job, 1, {"fetch": '{"pages": 3}'})))
        await log.agent(c.ReleaseSlot(box, "c7", T0 + 6, task_id=job))
        await log.send(rejected_events[0], topics.task_events)
        await run_until_caught_up(settings, engine, log.end_offsets())
    finally:
        await producer.stop()

    expected = [row for row in log.expected_audit() if row[3] != f"{job}/1"]
    assert audit_rows(engine, topics) == expected
    # 4 + 2 task events, 4 agent events, 2 duplicates and the garbage, less the deleted event and its duplicate
    assert len(expected) == 11
    assert [row[3] for row in expected if row[7]] == [event_id(rejected_events[0])]
    assert [row[5:7] for row in expected if row[4] == "undecodable"] == [(None, None)]
    assert any("undecodable record" in r.getMessage() for r in caplog.records)

    first = next((p, o) for ev, _, p, o in log.sent if ev is submitted)
    with Session(engine) as s:
        got = get_task(s, job)
        assert got["tried"] == [box] and got["failures"] == 0 and got["waiting_on"] == []
        assert {k: got[k] for k in got if k not in ("tried", "failures", "waiting_on", "after", "max_retries",
                                                  "pinned_to", "not_before", "waiting_reason")} == {
            "task_id": job, "status": "completed", "name": "digest", "requester": "ann", "priority": 2,
            "agent_id": box, "attempt": 1, "seq": 4, "reason": "", "submitted_at": T0, "updated_at": T0 + 5,
            "deadline_at": None, "budget": None, "outputs": {"fetch": '{"pages": 3}'},
            "nodes": [{"id": "fetch", "kind": "http", "depends_on": [], "status": "completed"}],
            "first_partition": first[0], "first_offset": first[1]}
        replayed = task.fold([ev for ev, topic, *_ in log.sent
                              if topic == topics.task_events and ev is not None and ev.task_id == job], job)
        assert from_record(task.TaskState, s.get(TaskRow, job).state) == replayed  # the log is the truth
        rejected = s.get(TaskRow, bad)
        assert (rejected.status, rejected.seq) == ("rejected", 2) and "cycle" in rejected.reason
        box_row = s.get(AgentRow, box)
        assert (box_row.status, box_row.slots, box_row.holding, box_row.seq) == ("online", 2, 0, 4)
    stored = load_offsets(engine, CONSUMER)
    assert {k: v for k, v in stored.items() if k[0].startswith(topics.prefix)} == log.end_offsets()
    engine.dispose()
