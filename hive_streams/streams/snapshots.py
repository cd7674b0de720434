"""Snapshots of a decider's partition state on a compacted topic, so start-up folds only the tail.

A snapshot holds every aggregate state (each in the wire schemas' single-object encoding, with its key
and whether it is idle: a restore keeps idle ones encoded until they are needed), the command ids each
aggregate applied, the command offset decided to, and the events offset it
reflects, with the id of the event just before that offset. A snapshot whose check event is not
in the log where it says is ignored, and the partition is folded from the beginning.
"""
from __future__ import annotations

import io
import json
import logging
import zlib

from aiokafka import TopicPartition
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from ..codec import header
from ..exceptions import CodecError
from ..kafka.access import KafkaAccess
from ..kafka.reader import read_window
from .deciders import PartitionState

log = logging.getLogger(__name__)
MAGIC = b"HSNAP2"  # HSNAP1 (states without keys) is refused: the partition is folded once more
MANIFEST = b"HSNAPM1"
CHUNK_BYTES = 768 * 1024  # under the broker's default record limit (1 MiB)
SCHEMA = parse_schema({
    "type": "record", "name": "PartitionSnapshot", "namespace": "hive.snapshot.v1", "fields": [
        {"name": "events_topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "events_offset", "type": "long"},
        {"name": "check_event_id", "type": "string"},
        {"name": "decided_to", "type": "long"},
        {"name": "states", "type": {"type": "array", "items": {
            "type": "record", "name": "State", "fields": [
                {"name": "key", "type": "bytes"}, {"name": "state", "type": "bytes"}, {"name": "idle", "type": "boolean"}]}}},
        {"name": "applied", "type": {"type": "array", "items": {
            "type": "record", "name": "Applied", "fields": [
                {"name": "key", "type": "bytes"},
                {"name": "command_ids", "type": {"type": "array", "items": "string"}}]}}},
    ]})


class Snapshots:
    """Keeps each decoded aggregate's encoded state between snapshots: only what changed is encoded again."""

    def __init__(self, codec):
        self.codec = codec
        self.encoded: dict[bytes, bytes] = {}

    def encode(self, state: PartitionState, changed, events_offset: int, check_event_id: str) -> bytes:
        encoded, idle = self.encoded, state.aggregate.idle
        for key in changed:
            if key in state.states:
                encoded[key] = self.codec.encode(state.states[key])
        entries = [{"key": k, "state": encoded[k], "idle": idle(s)} for k, s in state.states.items()]
        entries += [{"key": k, "state": raw, "idle": True} for k, raw in state.asleep.items()]
        buf = io.BytesIO()
        buf.write(MAGIC)
        schemaless_writer(buf, SCHEMA, {
            "events_topic": state.events_topic, "partition": state.partition, "events_offset": events_offset,
            "check_event_id": check_event_id, "decided_to": state.decided_to,
            "states": entries,
            "applied": [{"key": k, "command_ids": sorted(ids)} for k, ids in state.applied.items()],
        })
        return buf.getvalue()

    def restore(self, state: PartitionState, value: bytes) -> dict:
        """Fills `state` from a snapshot; returns its header fields. Raises CodecError if it does not decode."""
        if not value or not value.startswith(MAGIC):
            raise CodecError("not a partition snapshot")
        try:
            record = schemaless_reader(io.BytesIO(value[len(MAGIC):]), SCHEMA, None)
        except Exception as exc:
            raise CodecError(f"snapshot does not decode: {exc!r}") from None
        if record["events_topic"] != state.events_topic or record["partition"] != state.partition:
            raise CodecError(f"snapshot of {record['events_topic']}[{record['partition']}]")
        for entry in record["states"]:
            key, raw = entry["key"], entry["state"]
            if entry["idle"]:
                state.asleep[key] = raw
                continue
            aggregate = self.codec.decode(raw)
            if self.codec.key(aggregate) != key:
                raise CodecError(f"a state under key {key!r} is of {self.codec.key(aggregate)!r}")
            state.states[key] = aggregate
            self.encoded[key] = raw
        state.applied = {a["key"]: set(a["command_ids"]) for a in record["applied"]}
        state.decided_to = record["decided_to"]
        return record


def records(partition: int, snapshot: bytes) -> list[tuple[bytes, bytes]]:
    """(key, value) records of one snapshot: compressed chunks, then a manifest naming them.

    Chunk keys are per index and the manifest's key per partition, so compaction keeps the newest
    snapshot whole; the manifest is written last, in the same transaction as its chunks.
    """
    packed = zlib.compress(snapshot, 1)
    snapshot_id = f"{zlib.crc32(packed):08x}-{len(packed)}"
    chunks = [packed[i:i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)] or [b""]
    out = [(f"{partition}/{i}".encode(), snapshot_id.encode() + b"\n" + chunk) for i, chunk in enumerate(chunks)]
    manifest = {"id": snapshot_id, "chunks": len(chunks), "bytes": len(snapshot)}
    return out + [(str(partition).encode(), MANIFEST + json.dumps(manifest).encode())]


async def newest(kafka: KafkaAccess, tp: TopicPartition) -> tuple[int, bytes] | None:
    """The offset of the newest manifest and the snapshot it names, reassembled. CodecError if broken."""
    tail = await read_window(kafka, tp, back=4)  # past any transaction marker
    manifests = [r for r in tail if r.key == str(tp.partition).encode()]
    if not manifests:
        if tail:
            raise CodecError(f"the newest record at offset {tail[-1].offset} is not a snapshot manifest")
        return None
    head = manifests[-1]
    if not head.value.startswith(MANIFEST):
        raise CodecError("not a snapshot manifest")
    try:
        manifest = json.loads(head.value[len(MANIFEST):])
        snapshot_id, count = manifest["id"].encode(), int(manifest["chunks"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CodecError(f"manifest does not decode: {exc!r}") from None
    before = await read_window(kafka, tp, back=2 * count + 4, stop=head.offset)
    chunks = {r.key: r.value for r in before if r.value and r.value.split(b"\n", 1)[0] == snapshot_id}
    keys = [f"{tp.partition}/{i}".encode() for i in range(count)]
    if any(k not in chunks for k in keys):
        raise CodecError(f"snapshot {manifest['id']} misses chunks")
    try:
        return head.offset, zlib.decompress(b"".join(chunks[k].split(b"\n", 1)[1] for k in keys))
    except zlib.error as exc:
        raise CodecError(f"snapshot {manifest['id']} does not decompress: {exc}") from None


async def load(kafka: KafkaAccess, snapshots: Snapshots, state: PartitionState, snapshot_tp: TopicPartition) -> tuple[int, str]:
    """Restores the newest valid snapshot into `state`; returns the events offset to fold from and how."""
    try:
        latest = await newest(kafka, snapshot_tp)
        if latest is None:
            return 0, "no snapshot"
        at, value = latest
        found = snapshots.restore(state, value)
    except CodecError as exc:
        log.warning("%s: ignoring the newest snapshot (%s); folding from the beginning", snapshot_tp, exc)
        _reset(state, snapshots)
        return 0, "snapshot ignored"
    offset = found["events_offset"]
    events_tp = TopicPartition(state.events_topic, state.partition)
    if offset > 0 and await event_id_before(kafka, events_tp, offset) != found["check_event_id"]:
        log.warning("%s: snapshot at offset %d says event %s is before %d, the log disagrees; folding from the "
                    "beginning", snapshot_tp, at, found["check_event_id"], offset)
        _reset(state, snapshots)
        return 0, "snapshot ignored"
    return offset, f"snapshot at events offset {offset}"


async def event_id_before(kafka: KafkaAccess, tp: TopicPartition, offset: int) -> str | None:
    """The `ce_id` of the last committed record before `offset` (what a snapshot names as its check), or None."""
    before = await read_window(kafka, tp, back=4, stop=offset)
    return (header(before[-1].headers, "ce_id") or "") if before else None


def _reset(state: PartitionState, snapshots: Snapshots) -> None:
    state.states.clear()
    state.asleep.clear()
    state.applied.clear()
    state.decided_to = -1
    snapshots.encoded.clear()

