"""Every Kafka client hive-streams builds, with the settings its guarantees rest on.

Each client connects as a role (`access.py`): SASL/SCRAM with that role's credentials, and the
broker's ACLs decide what it may read and write.
Readers see committed records only (`read_committed`): a deposed decider's aborted batch never
reaches a fold, a feed or the audit log. Writers wait for every in-sync replica and are
idempotent; a decider's writer is transactional, its id tied to the input partition number it owns.
"""
from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from ..topics import partitioner
from .access import KafkaAccess

log = logging.getLogger(__name__)
FETCH_WAIT_MS = 100  # a quiet fetch's long poll; a commit ends it at once (the broker wakes it), but aiokafka sends no
# other fetch to that broker while one is in flight, so it also bounds how long a just-resumed or drained partition waits:
# 10 ms kept an idle fabric at 0.74 cores (every consumer polling 100 times a second), 100 ms at 0.20
FIXED_FETCH_WAIT_MS = 1000  # a reader whose partitions are fixed at its start and never paused: a commit ends its long
# poll at once and nothing else waits behind it, so a longer one costs no latency, only fewer fetches of an idle fabric
RETRY_BACKOFF_MS = 5
TXN_RETRY_BACKOFF_MS = 1  # a new transaction right after a commit often meets CONCURRENT_TRANSACTIONS for a millisecond
# or two while the broker writes the last one's markers: a decider retries that soon (its transaction's p50 6.4-6.8 ms
# instead of 11.7-13.3 at 5 ms, python -m bench transactions); its client still waits RETRY_BACKOFF_MS between metadata
# attempts, so a broker that is down is not asked a thousand times a second
MAX_REQUEST_BYTES = 4 * 1024 * 1024
BATCH_BYTES = 1024 * 1024  # a decider's writer: aiokafka keeps one open batch a partition and makes a send wait while
# it is full; at its default of 16 KiB a decided batch of 1,000 events took ~25 produce round trips, one after another
# (the buffer grows with what is appended: an idle partition's batch is small). Plain producers keep the default: the
# wait is the only thing that slows the matcher's writer, and without it its waiting notes (a command each) took the
# deciders' CPU (pipeline 3,225 and 3,540 commands/s against 4,403 and 5,149, interleaved runs)


def producer(kafka: KafkaAccess, *, linger_ms: int = 0, client_id: str | None = None, **options) -> AIOKafkaProducer:
    return AIOKafkaProducer(**kafka.options(), acks="all", enable_idempotence=True, linger_ms=linger_ms,
                            retry_backoff_ms=RETRY_BACKOFF_MS, max_request_size=MAX_REQUEST_BYTES,
                            partitioner=partitioner, client_id=client_id or "hive-streams", **options)


def transactional_producer(kafka: KafkaAccess, transactional_id: str, *, timeout_ms: int = 20_000) -> AIOKafkaProducer:
    """Starting it fences every earlier producer with the same id: their open transactions abort."""
    made = AIOKafkaProducer(**kafka.options(), transactional_id=transactional_id,
                            transaction_timeout_ms=timeout_ms, retry_backoff_ms=RETRY_BACKOFF_MS, linger_ms=0,
                            max_request_size=MAX_REQUEST_BYTES, max_batch_size=BATCH_BYTES, partitioner=partitioner,
                            client_id=transactional_id)
    made._sender._retry_backoff = TXN_RETRY_BACKOFF_MS / 1000  # the transactional requests' retries only
    return made


def consumer(kafka: KafkaAccess, *, group_id: str | None = None, client_id: str | None = None,
             fetch_wait_ms: int = FETCH_WAIT_MS, **options) -> AIOKafkaConsumer:
    """A committed-only reader; with a group it commits nothing by itself."""
    return AIOKafkaConsumer(**kafka.options(), group_id=group_id, client_id=client_id or "hive-streams",
                            enable_auto_commit=False, isolation_level="read_committed",
                            auto_offset_reset="earliest", fetch_max_wait_ms=fetch_wait_ms,
                            max_partition_fetch_bytes=MAX_REQUEST_BYTES, **options)


def admin(kafka: KafkaAccess, *, client_id: str = "hive-streams", **options) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**kafka.options(), client_id=client_id, **options)


async def stop_quietly(client, what: str) -> None:
    """Stops a client that may be broken already (fenced, cut off): it is gone either way."""
    try:
        await client.stop()
    except Exception:
        log.debug("%s did not stop cleanly", what, exc_info=True)
