"""The settings the Kafka clients are built with, where a guarantee or a figure rests on them (no broker needed)."""
from __future__ import annotations

from hive_streams.kafka.access import KafkaAccess
from hive_streams.kafka.clients import RETRY_BACKOFF_MS, TXN_RETRY_BACKOFF_MS, transactional_producer

KAFKA = KafkaAccess("127.0.0.1:1", "worker", "unused")


async def test_a_deciders_producer_retries_its_transaction_soon_but_asks_for_metadata_no_faster_than_the_others():
    made = transactional_producer(KAFKA, "t-0")
    assert made._sender._retry_backoff == TXN_RETRY_BACKOFF_MS / 1000 == 0.001
    assert made.client._retry_backoff == RETRY_BACKOFF_MS / 1000 > made._sender._retry_backoff
    assert made._txn_manager.transactional_id == "t-0"

