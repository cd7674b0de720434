"""The executor process: registers an agent, beats, takes assignments and runs their DAGs."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
import uuid
from collections import deque
from dataclasses import dataclass, field, fields, replace

from aiokafka import TopicPartition

from ..cancelling import cancel_all
from ..codec import Codec, default_codec, event_id, header
from ..domain import commands as c
from ..domain.blobs import looks_like_reference, reference_of
from ..domain import events as e
from ..domain.model import Capability, Hardware, NodeOutput, node_digest, result_digest
from ..domain.task import EXECUTOR_STOPS
from ..exceptions import BlobError, CodecError
from ..kafka import access_for, consumer, now_ms
from ..kafka.clients import FIXED_FETCH_WAIT_MS
from ..kafka.blobs import BlobWriter, read_blob
from ..metrics import EXECUTOR_RUNNING, EXECUTOR_TASK_SECONDS, export
from ..settings import Settings
from ..topics import Topics, partition_for
from ..tracing import TRACEPARENT, current_traceparent, hop
from .dagrun import run_dag
from .gpu import Gpus
from .errors import NodeError
from .runners import NodeRunner
from .sandbox import Limits
from .signing import Signer, SigningSender

log = logging.getLogger(__name__)


STOP_EVENTS = EXECUTOR_STOPS
RESPONSE_WINDOW = 10  # completed tasks whose mean run time the heartbeat reports
REPORT_LINGER = 0.05  # seconds a report may wait for the next one, to travel together
WATCHED_TYPES = {f"hive.v1.{cls.__name__}" for cls in (e.TaskAssigned, *STOP_EVENTS)}  # others are skipped before decoding


def host_load() -> dict[str, float]:
    """CPU from the load average, memory from /proc/meminfo; zeros where the host does not say."""
    cpu = min(100.0, 100.0 * os.getloadavg()[0] / (os.cpu_count() or 1))
    try:
        info = dict(line.split(":", 1) for line in open("/proc/meminfo"))
        total, available = (float(info[k].split()[0]) for k in ("MemTotal", "MemAvailable"))
        memory = 100.0 * (1 - available / total)
    except (OSError, KeyError, ValueError):
        memory = 0.0
    return {"cpu_percent": round(cpu, 1), "memory_percent": round(memory, 1)}


@dataclass(frozen=True)
class AgentOffer:
    agent_id: str
    name: str
    capabilities: tuple[Capability, ...]
    slots: int = 2
    endpoint: str = ""
    model: str = ""
    hardware: Hardware = field(default_factory=Hardware)
    price: float = 0.0
    targets: dict[str, float] = field(default_factory=dict)

    def register(self, public_key: str) -> dict:
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "agent_id"}, "public_key": public_key}


class Reporter:
    """Turns DAG progress into commands for the task's decider.

    Reports wait up to REPORT_LINGER before they are sent together, in order, and a batch that
    ends with the result becomes that one result carrying the outputs of its nodes: a fast task
    crosses Kafka once, as one command and one event, while a slow node still shows as started
    within the linger. The first node's report starts the task; there is no separate start.
    """

    def __init__(self, executor: "Executor", assigned: e.TaskAssigned, correlation: str | None = None):
        self.ex = executor
        self.task_id = assigned.task_id
        self.attempt = assigned.attempt
        self.causation = event_id(assigned)
        self.correlation = correlation  # the request that caused the assignment: every report carries it
        self.traceparent = current_traceparent()  # the span of the run, whatever task sends the reports
        self.outputs = {o.node_id: o.output_json for o in assigned.completed}  # exactly as the fabric recorded them
        self.pending: list = []
        self.flusher: asyncio.TimerHandle | None = None
        self.sending: asyncio.Task | None = None

    def ids(self) -> dict:
        return {"task_id": self.task_id, "command_id": uuid.uuid4().hex, "at": now_ms(),
                "agent_id": self.ex.offer.agent_id, "attempt": self.attempt}

    def queue(self, command) -> None:
        self.pending.append(command)
        if self.flusher is None:
            self.flusher = asyncio.get_running_loop().call_later(REPORT_LINGER, self._flush_soon)

    def _flush_soon(self) -> None:
        self.flusher = None
        previous = self.sending
        self.sending = asyncio.ensure_future(self._send(previous, self._take()))

    def _take(self) -> list:
        taken, self.pending = self.pending, []
        if taken and isinstance(taken[-1], c.ReportTaskResult):  # the rest is about nodes the result covers
            carried = tuple(NodeOutput(cmd.node_id, cmd.output_json) for cmd in taken
                            if isinstance(cmd, c.ReportNodeCompleted))
            if sum(len(o.output_json) for o in carried) <= self.ex.inline_bytes:  # else one record each
                return [replace(taken[-1], nodes=carried)]
        return [self._signed(cmd) if isinstance(cmd, c.ReportNodeCompleted) else cmd for cmd in taken]

    def _signed(self, report: c.ReportNodeCompleted) -> c.ReportNodeCompleted:
        """A node's own digest and signature, made only when its report travels without the result."""
        digest = node_digest(self.task_id, self.attempt, report.node_id, report.output_json)
        return replace(report, digest=digest, signature=self.ex.signer.sign(digest))

    async def _send(self, previous: asyncio.Task | None, commands: list) -> None:
        if previous is not None:
            await asyncio.shield(previous)  # keep reports in order
        await self.ex.send_all(commands, self.causation, self.correlation, self.traceparent)

    async def flush(self) -> None:
        """Sends what is queued and waits until every report so far is acknowledged."""
        if self.flusher is not None:
            self.flusher.cancel()
            self.flusher = None
        previous, commands = self.sending, self._take()
        self.sending = None
        await self._send(previous, commands)

    async def started(self, node_id: str) -> None:
        self.queue(c.ReportNodeStarted(**self.ids(), node_id=node_id))

    async def progress(self, node_id: str, fraction: float, message: str = "") -> None:
        self.queue(c.ReportNodeProgress(**self.ids(), node_id=node_id, progress=fraction, message=message))

    async def completed(self, node_id: str, output) -> None:
        output_json = json.dumps(output)
        # the task's events carry every inline output together: they share the limit (ASCII: chars are bytes)
        room = self.ex.inline_bytes - sum(len(v) for k, v in self.outputs.items() if k != node_id)
        if len(output_json) > room or looks_like_reference(output):
            try:
                output_json = (await self.ex.blobs.put(output_json.encode(), self.ex.signer.sign)).to_json()
            except Exception as exc:  # the broker's error: the node fails, the task does not hang
                error = f"its output of {len(output_json)} bytes could not be written to the blob topic: {exc!r}"
                await self.failed(node_id, error)
                raise NodeError(error, node_id=node_id) from exc
        self.outputs[node_id] = output_json
        self.queue(c.ReportNodeCompleted(**self.ids(), node_id=node_id, output_json=output_json, digest="", signature=""))

    async def result(self) -> None:
        digest = result_digest(self.task_id, self.attempt, self.outputs)
        self.queue(c.ReportTaskResult(**self.ids(), digest=digest, signature=self.ex.signer.sign(digest)))
        await self.flush()

    async def failed(self, node_id: str, error: str) -> None:
        self.queue(c.ReportNodeFailed(**self.ids(), node_id=node_id, error=error))
        await self.flush()


class Executor:
    reporter = Reporter

    def __init__(self, settings: Settings, offer: AgentOffer, codec: Codec | None = None):
        self.nodes = NodeRunner.from_settings(settings, [cap.name for cap in offer.capabilities])  # raises ConfigError first
        self.settings = settings
        self.offer = offer
        self.codec = codec or default_codec(settings.schemas_dir)
        self.topics = Topics.from_settings(settings)
        self.running: dict[str, asyncio.Task] = {}
        self.seen: set[str] = set()
        self.gpus = Gpus()
        self.run_seconds: deque[float] = deque(maxlen=RESPONSE_WINDOW)
        self.kafka = access_for(settings, "executor")
        export("executor")
        EXECUTOR_RUNNING.set_function(lambda: len(self.running))
        self.signer = Signer.load_or_create(Path(settings.home) / "keys" / f"{offer.agent_id}.pem")
        self.opener = self.signer.inbox_opener()
        # every command it sends is signed: the deciders refuse an executor command that is not
        self.sender = SigningSender(self.kafka, self.topics, self.codec,
                                    f"/hive-streams/executor/{offer.agent_id}", signer=self.signer)
        self.inline_bytes = Limits.from_settings(settings).inline_bytes
        self.blobs = BlobWriter(self.kafka, self.topics, client_id=f"executor-{offer.agent_id}-blobs")

    async def send(self, command, causation: str | None = None) -> None:
        await self.sender.send_and_wait(command, causation_id=causation)

    async def send_all(self, commands, causation: str | None = None, correlation: str | None = None,
                       traceparent: str | None = None) -> None:
        await self.sender.send_all(commands, causation_id=causation, correlation_id=correlation,
                                   traceparent=traceparent)

    def _agent_cmd(self, cls, **fields):
        return cls(agent_id=self.offer.agent_id, command_id=uuid.uuid4().hex, at=now_ms(), **fields)

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        reader = consumer(self.kafka, client_id=f"executor-{self.offer.agent_id}", fetch_wait_ms=FIXED_FETCH_WAIT_MS)
        await self.sender.start()
        await self.blobs.start()
        await reader.start()
        try:
            # its own records of the inbox: one partition, the one its agent id is keyed to
            mine = self.offer.agent_id.encode()
            parts = [TopicPartition(self.topics.executor_inbox, partition_for(mine, self.topics.partitions))]
            reader.assign(parts)
            await reader.seek_to_end(*parts)
            for tp in parts:
                await reader.position(tp)  # fix the start before anyone can assign us work
            # a new process is a new incarnation: what an earlier one held is lost, and retried elsewhere
            # (a key made just now was never registered, so there is no earlier incarnation to end)
            if not self.signer.created:
                await self.send(self._agent_cmd(c.DeregisterAgent, reason="a new executor process took over"))
            await self.send(self._agent_cmd(c.RegisterAgent, **self.offer.register(self.signer.public_key)))
            beat = asyncio.create_task(self._heartbeats(stop))
            if ready:
                ready.set()
            log.info("executor %s ready", self.offer.agent_id)
            while not stop.is_set():
                batch = await reader.getmany(timeout_ms=200, max_records=500)
                for records in batch.values():
                    for record in records:
                        if record.key == mine and header(record.headers, "ce_type") in WATCHED_TYPES:
                            self._on_delivery(record.value, header(record.headers, "ce_correlationid"),
                                              header(record.headers, TRACEPARENT))
            beat.cancel()
        finally:
            await cancel_all(list(self.running.values()))
            try:
                await self.send(self._agent_cmd(c.DeregisterAgent, reason="executor stopped"))
            finally:
                await reader.stop()
                await self.blobs.stop()
                await self.sender.stop()

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.send(self._agent_cmd(c.Heartbeat, running=len(self.running), **host_load(),
                                            **self.gpus.read(), response_seconds=self.response_seconds()))
            await asyncio.sleep(self.settings.heartbeat_seconds)

    def response_seconds(self) -> float | None:
        """Mean run time of the last completed tasks; None before the first."""
        return round(sum(self.run_seconds) / len(self.run_seconds), 3) if self.run_seconds else None

    def _on_delivery(self, sealed: bytes, correlation: str | None = None, traceparent: str | None = None) -> None:
        try:
            event = self.codec.decode(self.opener.open(sealed))
        except CodecError as exc:
            log.warning("skipping an inbox record: %s", exc)
            return
        if isinstance(event, e.TaskAssigned) and event.agent_id == self.offer.agent_id:
            key = f"{event.task_id}/{event.attempt}"
            if key not in self.seen:
                self.seen.add(key)
                self.running[event.task_id] = asyncio.create_task(self._execute(event, correlation, traceparent))
        elif isinstance(event, STOP_EVENTS) and event.agent_id == self.offer.agent_id and event.task_id in self.running:
            log.info("stopping task %s: %s", event.task_id, type(event).__name__)
            self.running[event.task_id].cancel()

    async def _earlier_outputs(self, assigned: e.TaskAssigned, report: Reporter) -> dict:
        """Earlier attempts' outputs as their dependants see them: a large one read back from the blob topic."""
        done = {}
        for o in assigned.completed:
            ref = reference_of(o.output_json)
            try:
                done[o.node_id] = json.loads(o.output_json if ref is None else
                                             await read_blob(self.kafka, self.topics, ref))
            except BlobError as exc:  # the attempt fails, and the task retries or ends: it never hangs
                finished = {earlier.node_id for earlier in assigned.completed}
                waiting = next((n.id for n in assigned.nodes if n.id not in finished), o.node_id)
                await report.failed(waiting, f"the output of {o.node_id} cannot be read: {exc}")
                raise NodeError(str(exc), node_id=waiting) from exc
        return done

    async def _execute(self, assigned: e.TaskAssigned, correlation: str | None = None,
                       traceparent: str | None = None) -> None:
        # a child span of the assignment's for the whole run: every report carries it
        with hop("execute task", traceparent, correlation, **{"hive.task_id": assigned.task_id,
                                                            "hive.attempt": assigned.attempt}):
            await self._run(assigned, correlation)

    async def _run(self, assigned: e.TaskAssigned, correlation: str | None) -> None:
        report = self.reporter(self, assigned, correlation)
        started, outcome = time.monotonic(), "crashed"
        try:
            done = await self._earlier_outputs(assigned, report)
            await run_dag(assigned.nodes, done, report, runner=self.nodes)
            await report.result()
            outcome = "completed"
            log.info("task %s attempt %s done", assigned.task_id, assigned.attempt)
        except NodeError as exc:
            outcome = "failed"
            log.info("task %s failed: %s", assigned.task_id, exc)
        except asyncio.CancelledError:
            outcome = "stopped"
            log.info("task %s stopped", assigned.task_id)
        except Exception:
            log.exception("task %s crashed in the executor", assigned.task_id)
        finally:
            self.running.pop(assigned.task_id, None)
            if outcome == "completed":
                self.run_seconds.append(time.monotonic() - started)
            EXECUTOR_TASK_SECONDS.labels(outcome).observe(time.monotonic() - started)
