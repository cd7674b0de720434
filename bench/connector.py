"""9. The audit connector's cost per record, and PostgreSQL's.

The records of N no-op task lives (TaskSubmitted, SlotReserved, TaskAssigned, TaskCompleted, SlotReleased: the
five events a task writes in the tasks section), encoded as the worker writes them, go through the connector's
own path (`to_log_record`, then `apply_batch` with the chain heads and read-model states it keeps) in batches of
BATCH on a fresh database. No broker: the figure is the store's side of every event, which the tasks section's
`connect` and `postgresql` CPU carry at load.
"""
from __future__ import annotations

import os
import time
import uuid

from connectors.audit import to_log_record
from hive_streams.audit.rows import LogRecord
from hive_streams.codec import default_codec
from hive_streams.domain import agent, task
from hive_streams.domain import commands as c
from hive_streams.domain.model import Capability, NodeOutput, NodeSpec, result_digest
from hive_streams.infra import postgres
from hive_streams.store import apply_batch, create_schema, make_engine
from hive_streams.store.projection import StateCache
from hive_streams.topics import Topics, partition_for

from .common import Context, summary

BATCH = 100  # records a transaction: the connector's batches at ~160 tasks/s (up to 500, 100 ms of fetch wait)
PARTITIONS = 4
AGENTS = 2


class Lives:
    """Decides no-op task lives with the domain and keeps their events as the records the worker writes."""

    def __init__(self, topics: Topics):
        self.topics, self.codec = topics, default_codec()
        self.records: list = []
        self.offsets: dict[tuple[str, int], int] = {}
        self.agents: dict[str, agent.AgentState] = {}

    def emit(self, event, topic: str) -> None:
        key, value, headers = self.codec.message(event, "/hive-streams/worker", causation_id=uuid.uuid4().hex,
                                                 correlation_id=uuid.uuid4().hex)
        headers += [("hive_command_offset", b"0"), ("hive_principal", b"system:/hive-streams/worker")]
        partition = partition_for(key, PARTITIONS)
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        self.records.append(_Record(topic, partition, offset, key, value, headers))

    def agent(self, command) -> None:
        state = self.agents.get(command.agent_id) or agent.AgentState(command.agent_id)
        for event in agent.decide(command, state, command.at, 60_000):
            state = agent.evolve(state, event)
            self.emit(event, self.topics.agent_events)
        self.agents[command.agent_id] = state

    def task(self, command, state: task.TaskState) -> task.TaskState:
        for event in task.decide(command, state, command.at):
            state = task.evolve(state, event)
            self.emit(event, self.topics.task_events)
        return state

    def live(self, i: int, now: int) -> None:
        task_id, agent_id, output = f"t{i}-{uuid.uuid4().hex[:8]}", f"ex-{i % AGENTS}", '"hi"'
        state = self.task(c.SubmitTask(task_id, f"s{i}", now, name="noop", requester="bench",
                                       nodes=(NodeSpec("n", "echo"),)), task.TaskState(task_id))
        self.agent(c.ReserveSlot(agent_id, f"rs{i}", now + 1, task_id=task_id))
        state = self.task(c.AssignTask(task_id, f"a{i}", now + 2, agent_id=agent_id), state)
        self.task(c.ReportTaskResult(task_id, f"r{i}", now + 3, agent_id=agent_id, attempt=1, signature="",
                                     digest=result_digest(task_id, 1, {"n": output}),
                                     nodes=(NodeOutput("n", output),)), state)
        self.agent(c.ReleaseSlot(agent_id, f"rl{i}", now + 4, task_id=task_id))


class _Record:
    __slots__ = ("topic", "partition", "offset", "key", "value", "headers")

    def __init__(self, topic, partition, offset, key, value, headers):
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value, self.headers = key, value, headers


def lives(n: int) -> Lives:
    made = Lives(Topics(f"bench{uuid.uuid4().hex[:6]}", PARTITIONS))
    now = int(time.time() * 1000)
    for agent_id in (f"ex-{i}" for i in range(AGENTS)):
        made.agent(c.RegisterAgent(agent_id, f"reg-{agent_id}", now, name=agent_id,
                                   capabilities=(Capability("echo"),), slots=64))
    for i in range(n):
        made.live(i, now)
    return made


def _backend_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connector_run(pg_server: str, tasks: int) -> dict:
    made = lives(tasks)
    codec, name = default_codec(), f"bench_connector_{uuid.uuid4().hex[:8]}"
    engine = make_engine(postgres.create_database(pg_server, name), pool_size=1, max_overflow=0)
    try:
        create_schema(engine)
        with engine.connect() as conn:
            backend = conn.exec_driver_sql("select pg_backend_pid()").scalar()
        heads: dict = {}
        states = StateCache()
        pg_before, cpu_before, wall_before = _backend_cpu(backend), time.process_time(), time.perf_counter()
        for i in range(0, len(made.records), BATCH):
            batch: list[LogRecord] = [to_log_record(codec, r) for r in made.records[i:i + BATCH]]
            next_offsets = {(r.topic, r.partition): r.offset + 1 for r in batch}
            heads.update(apply_batch(engine, "bench", batch, next_offsets, int(time.time() * 1000), known=dict(heads),
                                     states=states))
        wall, cpu = time.perf_counter() - wall_before, time.process_time() - cpu_before
        pg = _backend_cpu(backend) - pg_before
    finally:
        engine.dispose()
        postgres.drop_database(pg_server, name)
    n = len(made.records)
    return {"tasks": tasks, "records": n, "records_per_s": n / wall, "connector_cpu_us_per_record": cpu / n * 1e6,
            "postgresql_cpu_us_per_record": pg / n * 1e6, "wall_us_per_record": wall / n * 1e6,
            "cpu_ms_per_task": (cpu + pg) / tasks * 1e3}


def run(ctx: Context) -> dict:
    tasks = ctx.sizes["connector"]
    runs = [connector_run(ctx.pg_server, tasks) for _ in range(ctx.sizes["repeats"])]
    keys = ("records_per_s", "connector_cpu_us_per_record", "postgresql_cpu_us_per_record", "wall_us_per_record",
            "cpu_ms_per_task")
    return {"command": ctx.cmd("connector"), "tasks_per_run": tasks, "batch": BATCH, "partitions": PARTITIONS,
            "runs": runs, **{k: summary([r[k] for r in runs]) for k in keys}}
