"""A small metrics HTTP port for the processes other than the API, and consumer lag for any consumer."""
from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer
from prometheus_client import start_http_server

from .registry import CONSUMER_LAG

log = logging.getLogger(__name__)


def serve(port: int, host: str = "127.0.0.1") -> bool:
    """Serves /metrics on host:port in a thread; port 0 means off."""
    if not port:
        return False
    start_http_server(port, addr=host)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True


async def record_lag(consumer: AIOKafkaConsumer, group: str, partitions) -> None:
    """Sets the lag gauge of each partition from the consumer's position and the last committed offset it knows."""
    for tp in partitions:
        end = consumer.last_stable_offset(tp)
        if end is None:
            end = consumer.highwater(tp)
        if end is None:
            continue
        try:
            position = await consumer.position(tp)
        except Exception:  # no position yet (paused while loading, being revoked): nothing to say
            continue
        CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(0, end - position))


def forget_lag(group: str, partitions) -> None:
    for tp in partitions:
        try:
            CONSUMER_LAG.remove(group, tp.topic, str(tp.partition))
        except KeyError:
            pass
