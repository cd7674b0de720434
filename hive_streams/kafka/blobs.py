"""Large outputs on the blob topic: written as chunks keyed by their digest, read back from the log alone."""
from __future__ import annotations

import asyncio
import hashlib
import os

from aiokafka import TopicPartition
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..domain.blobs import PREFIX, BlobRef, digest_of
from ..exceptions import BlobError
from ..topics import Topics, partition_for
from .access import KafkaAccess
from .clients import consumer, producer

CHUNK_BYTES = 512 * 1024  # well under the broker's message size, headers included
INDEX = "hive_blob_chunk"
COUNT = "hive_blob_chunks"
SIZE = "hive_blob_size"
READ_SECONDS = 60.0


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")  # each key encrypts one blob, so a chunk's index is a unique nonce


def chunks(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]


class BlobWriter:
    """Writes blobs for one process; `put` returns once every chunk is acknowledged."""

    def __init__(self, kafka: KafkaAccess, topics: Topics, client_id: str = "hive-streams-blobs"):
        self.topic = topics.blobs
        self.partitions = topics.partitions
        self.kafka, self.client_id = kafka, client_id
        self.producer = None  # made in start: Kafka clients need the running loop

    async def start(self) -> None:
        self.producer = producer(self.kafka, client_id=self.client_id)
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def put(self, data: bytes, sign) -> BlobRef:
        """`sign(digest)` gives the signature the reference carries."""
        digest = digest_of(data)
        key = digest.encode()
        partition = partition_for(key, self.partitions)
        parts = chunks(data)
        secret = os.urandom(32)
        aead = AESGCM(secret)
        acks = []
        for index, part in enumerate(parts):
            headers = [(INDEX, str(index).encode()), (COUNT, str(len(parts)).encode()), (SIZE, str(len(data)).encode())]
            sealed = aead.encrypt(_nonce(index), part, key)
            acks.append(await self.producer.send(self.topic, sealed, key=key, headers=headers, partition=partition))
        first = (await asyncio.gather(*acks))[0]
        return BlobRef(digest, len(data), sign(digest), partition, first.offset, secret.hex())


async def read_blob(kafka: KafkaAccess, topics: Topics, ref: BlobRef, timeout: float = READ_SECONDS) -> bytes:
    """The blob's bytes, from its first chunk on; raises BlobError when they are missing or do not match."""
    key = ref.digest.encode()
    try:
        aead = AESGCM(bytes.fromhex(ref.key)) if ref.key else None
    except ValueError:
        raise BlobError(f"blob {ref.digest}: the reference's key is not an AES-256 key") from None
    tp = TopicPartition(topics.blobs, ref.partition)
    reader = consumer(kafka, client_id="hive-blob-reader")
    await reader.start()
    try:
        reader.assign([tp])
        end = (await reader.end_offsets([tp]))[tp]
        if ref.offset >= end:
            raise BlobError(f"blob {ref.digest} is not in the log (offset {ref.offset} >= end {end})")
        reader.seek(tp, ref.offset)
        parts: dict[int, bytes] = {}
        count = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while count is None or len(parts) < count:
            if await reader.position(tp) >= end or loop.time() > deadline:
                raise BlobError(f"blob {ref.digest}: {len(parts)} of {count or '?'} chunks found in the log")
            for record in (await reader.getmany(tp, timeout_ms=200)).get(tp, []):
                if record.key != key:
                    continue
                try:
                    headers = dict(record.headers or ())
                    index, count = int(headers[INDEX]), int(headers[COUNT])
                except (KeyError, ValueError):
                    continue  # not a chunk this writer made
                if index in parts:
                    continue
                try:
                    parts[index] = aead.decrypt(_nonce(index), record.value or b"", key) if aead else record.value or b""
                except InvalidTag:
                    continue  # the same bytes written again under another key (a retry elsewhere): not this one
    finally:
        await reader.stop()
    data = b"".join(parts[i] for i in range(count))
    if len(data) != ref.size or PREFIX + hashlib.sha256(data).hexdigest() != ref.digest:
        raise BlobError(f"blob {ref.digest}: the log's {len(data)} bytes do not match its digest and size")
    return data
