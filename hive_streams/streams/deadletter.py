"""Records that cannot be processed go to the dead-letter topic, reason in the headers."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def deadletter_headers(message, reason: str) -> list[tuple[str, bytes]]:
    original = [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in (message.headers or [])]
    return original + [
        ("dlq_reason", reason.encode()),
        ("dlq_topic", message.topic.encode()),
        ("dlq_partition", str(message.partition).encode()),
        ("dlq_offset", str(message.offset).encode()),
    ]


async def send_to_deadletter(topic, message, reason: str) -> None:
    log.warning("dead-lettering %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)
    fut = await topic.send(key=message.key, value=message.value, headers=deadletter_headers(message, reason))
    await fut
