"""Large node outputs stay in the log: a 20 MiB output completes its task, is served by the API and
survives a replay that reads nothing but Kafka."""
from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from aiokafka import TopicPartition
from cryptography.hazmat.primitives import serialization

from hive_streams.codec import default_codec
from hive_streams.domain import task
from hive_streams.domain.blobs import BlobRef, digest_of, looks_like_reference, reference_of
from hive_streams.kafka import read_to_end
from hive_streams.processes import wait_until
from hive_streams.kafka.blobs import CHUNK_BYTES, chunks, read_blob
from hive_streams.streams.verify import signature_valid

from .roles import as_role
from .stack import Stack

MIB = 1024 * 1024
LINE = "0123456789abcdef\n"
BIG = 20 * MIB
DEFAULT_DEADLINE = 20  # seconds: short, so a test sees a task without a deadline end


def test_a_reference_round_trips_and_nothing_else_reads_as_one():
    ref = BlobRef("sha256:" + "ab" * 32, 3, "cd", 1, 7)
    assert reference_of(ref.to_json()) == ref
    assert reference_of(json.dumps({"stdout": "x"})) is None
    assert reference_of('{"$blob": {"digest": "md5:1"}}') is None
    assert looks_like_reference({"$blob": 1}) and not looks_like_reference({"blob": 1})
    assert digest_of(b"") == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_chunks_cover_the_bytes_in_order():
    data = bytes(range(256)) * (CHUNK_BYTES // 100)
    parts = chunks(data)
    assert b"".join(parts) == data and all(len(p) <= CHUNK_BYTES for p in parts) and len(parts) == 3
    assert chunks(b"") == [b""]


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("blobs"),
              HIVE_DEFAULT_DEADLINE_SECONDS=str(DEFAULT_DEADLINE))
    s.start({"big": ("echo,shell", 2)})
    s.wait_for_agents(1)
    yield s
    s.stop()


def _fold_from_kafka(stack: Stack, task_id: str) -> task.TaskState:
    """The task's state from its events alone, with the domain's own evolve."""
    codec, state = default_codec(), task.TaskState(task_id)

    async def read():
        nonlocal state
        starts = {TopicPartition(stack.topics.task_events, p): None for p in range(stack.topics.partitions)}
        async for records in read_to_end(as_role("analyst"), starts):
            for record in records:
                if record.key == task_id.encode():
                    state = task.evolve(state, codec.decode(record.value))
    asyncio.run(read())
    return state


def test_a_20_mib_output_completes_is_served_and_survives_a_replay(stack):
    expected = (LINE * (BIG // len(LINE) + 1))[:BIG]
    definition = {"name": "big-output", "max_retries": 0, "deadline_seconds": 600, "nodes": [
        {"id": "big", "kind": "shell", "command": f"yes {LINE.strip()} | head -c {BIG}"},
        {"id": "small", "kind": "echo", "value": "inline", "depends_on": ["big"]}]}
    response = stack.client.submit(definition)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    frames = list(stack.client.follow(task_id, timeout=300))
    assert frames[-1].event == "TaskCompleted", [f.event for f in frames]

    outputs = {o["node_id"]: o["output_json"] for o in frames[-1].data["outputs"]}
    ref = reference_of(outputs["big"])
    assert ref is not None and ref.size > BIG  # the event carries a reference: digest, size, signature
    assert json.loads(outputs["small"]) == "inline"
    pem = (Path(stack.fabric.env["HIVE_HOME"]) / "keys" / "big.pem").read_bytes()
    public = serialization.load_pem_private_key(pem, None).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    assert signature_valid(public, ref.digest, ref.signature)

    wait_until(lambda: (stack.client.task(task_id) or {}).get("status") == "completed", 60, what="the read model")
    served = stack.client.http.get(f"/api/tasks/{task_id}/nodes/big/output", timeout=120)
    assert served.status_code == 200, served.text[:500]
    assert served.headers["X-Hive-Blob-Digest"] == ref.digest and digest_of(served.content) == ref.digest
    assert json.loads(served.content)["stdout"] == expected
    small = stack.client.http.get(f"/api/tasks/{task_id}/nodes/small/output")
    assert small.status_code == 200 and small.json() == "inline"
    missing = stack.client.http.get(f"/api/tasks/{task_id}/nodes/nope/output")
    assert missing.status_code == 404 and missing.json()["field"] == "node_id"

    replayed = _fold_from_kafka(stack, task_id)
    assert replayed.status == "completed" and reference_of(replayed.outputs["big"]) == ref
    assert asyncio.run(read_blob(as_role("analyst"), stack.topics, ref)) == served.content


def test_the_output_route_is_guarded_like_the_task(stack):
    response = stack.client.submit({"name": "guarded", "nodes": [{"id": "a", "kind": "echo", "value": 1}]})
    task_id = response.json()["task_id"]
    assert list(stack.client.follow(task_id, timeout=120))[-1].event == "TaskCompleted"
    wait_until(lambda: (stack.client.task(task_id) or {}).get("status") == "completed", 60, what="the read model")
    path = f"/api/tasks/{task_id}/nodes/a/output"
    assert stack.client_as("viewer").http.get(path).status_code == 200
    assert stack.client_as("viewer", tenant="elsewhere").http.get(path).status_code in (403, 404)
    assert httpx.get(stack.base_url + path).status_code == 401


class _Failures:
    def __init__(self):
        self.reported = []

    async def failed(self, node_id: str, error: str) -> None:
        self.reported.append((node_id, error))


async def test_a_retry_reads_earlier_outputs_back_from_the_blob_topic(topics, kafka_bootstrap, tmp_path):
    from hive_streams.domain import events as e
    from hive_streams.domain.model import Capability, NodeOutput, NodeSpec
    from hive_streams.executor.errors import NodeError
    from hive_streams.executor.runtime import AgentOffer, Executor
    from hive_streams.kafka.blobs import BlobWriter
    from hive_streams.settings import Settings
    from .roles import credentials
    settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_credentials=credentials(), home=str(tmp_path),
                        topic_prefix=topics.prefix, partitions=topics.partitions)
    executor = Executor(settings, AgentOffer("a1", "a1", (Capability("echo"),)))
    output = {"stdout": "x" * (CHUNK_BYTES + 10)}
    writer = BlobWriter(as_role("executor"), topics)
    await writer.start()
    try:
        ref = await writer.put(json.dumps(output).encode(), executor.signer.sign)
    finally:
        await writer.stop()
    nodes = (NodeSpec("big", "echo"), NodeSpec("next", "echo", depends_on=("big",)))

    def assigned(*completed):
        return e.TaskAssigned("tests:t", 3, 1, "a1", 2, nodes, completed)

    report = _Failures()
    done = await executor._earlier_outputs(assigned(NodeOutput("big", ref.to_json())), report)
    assert done == {"big": output} and report.reported == []
    gone = BlobRef(ref.digest, ref.size, ref.signature, ref.partition, ref.offset + 100)
    with pytest.raises(NodeError):
        await executor._earlier_outputs(assigned(NodeOutput("big", gone.to_json())), report)
    assert [node for node, _ in report.reported] == ["next"] and "cannot be read" in report.reported[0][1]


async def test_another_executor_reading_the_blob_topic_sees_ciphertext_only(topics):
    """The key travels in the task's events only: the blob topic, which every executor may read, holds no plaintext."""
    from dataclasses import replace
    from hive_streams.exceptions import BlobError
    from hive_streams.kafka.blobs import BlobWriter
    secret = b"another tenant's output " * (CHUNK_BYTES // 10)
    writer = BlobWriter(as_role("executor"), topics)
    await writer.start()
    try:
        ref = await writer.put(secret, lambda digest: "sig")
    finally:
        await writer.stop()
    raw = [r.value for r in await _raw_records(topics.blobs, ref.partition)]
    assert len(raw) == len(chunks(secret)) and not any(b"another tenant" in value for value in raw)
    assert len(ref.key) == 64 and await read_blob(as_role("executor"), topics, ref) == secret
    for wrong in ("", "00" * 32):
        with pytest.raises(BlobError):
            await read_blob(as_role("executor"), topics, replace(ref, key=wrong), timeout=10)


async def _raw_records(topic: str, partition: int) -> list:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    reader = AIOKafkaConsumer(**as_role("executor").options(), auto_offset_reset="earliest")
    await reader.start()
    try:
        tp = TopicPartition(topic, partition)
        reader.assign([tp])
        end = (await reader.end_offsets([tp]))[tp]
        out = []
        while await reader.position(tp) < end:
            out += (await reader.getmany(tp, timeout_ms=1000)).get(tp, [])
        return out
    finally:
        await reader.stop()


class _Blobs:
    def __init__(self):
        self.put_bytes = []

    async def put(self, data: bytes, sign) -> BlobRef:
        self.put_bytes.append(data)
        digest = digest_of(data)
        return BlobRef(digest, len(data), sign(digest), 0, len(self.put_bytes) - 1)


async def test_outputs_share_the_inline_limit_and_one_shaped_like_a_reference_is_moved_to_a_blob():
    from types import SimpleNamespace
    from hive_streams.domain import events as e
    from hive_streams.domain.model import NodeSpec
    from hive_streams.executor.runtime import Reporter
    blobs = _Blobs()
    executor = SimpleNamespace(inline_bytes=100, blobs=blobs, signer=SimpleNamespace(sign=lambda d: "sig:" + d),
                               offer=SimpleNamespace(agent_id="a1"))
    report = Reporter(executor, e.TaskAssigned("tests:t", 2, 1, "a1", 1, (NodeSpec("a", "echo"),)))
    await report.completed("a", "x" * 60)  # fits
    await report.completed("b", "y" * 60)  # alone it would fit, but not beside a
    await report.completed("c", {"$blob": {"digest": "sha256:" + "0" * 64}})  # a forged reference
    assert report.outputs["a"] == json.dumps("x" * 60)
    assert [reference_of(report.outputs[n]).size for n in ("b", "c")] == [62, len(blobs.put_bytes[1])]
    assert blobs.put_bytes[0] == json.dumps("y" * 60).encode()
    assert reference_of(report.outputs["b"]).signature == "sig:" + digest_of(blobs.put_bytes[0])
    if report.flusher is not None:
        report.flusher.cancel()


def test_a_task_without_a_deadline_gets_the_default_and_never_hangs(stack):
    response = stack.client.submit({"name": "endless", "max_retries": 0, "nodes": [
        {"id": "s", "kind": "sleep", "seconds": 600, "timeout_seconds": 900}]})
    task_id = response.json()["task_id"]
    frames = list(stack.client.follow(task_id, timeout=120))
    assert frames[-1].event == "TaskFailed" and frames[-1].data["reason"] == "deadline_exceeded"
    submitted = frames[0].data  # its deadline counts from the request, which came before this event
    assert frames[0].event == "TaskSubmitted" and submitted["deadline_at"] <= submitted["at"] + DEFAULT_DEADLINE * 1000
    after = stack.client.submit({"name": "after", "nodes": [{"id": "a", "kind": "echo", "value": 1}]}).json()
    assert list(stack.client.follow(after["task_id"], timeout=120))[-1].event == "TaskCompleted"
