"""The launched broker as each role, for tests that play a process or read the whole log (the admin)."""
from __future__ import annotations

import os
import secrets

from hive_streams import settings as settings_mod
from hive_streams.infra import kafka
from hive_streams.kafka.access import KafkaAccess
from hive_streams.kafka.acls import Grant, grants
from hive_streams.kafka.seal import Sealer, producer_key
from hive_streams.topics import Topics


# the fabric's service secret for this test session: in-process workers and every stack's processes inherit it
SERVICE_SECRET = os.environ.setdefault("HIVE_SERVICE_SECRET", secrets.token_hex(32)).encode()


def service_sealer() -> Sealer:
    """Seals commands as the API or the worker does: for tests that play one of them."""
    return Sealer.service(SERVICE_SECRET)


def producer_sealer(principal: str) -> Sealer:
    return Sealer.producer(producer_key(SERVICE_SECRET, principal))


def as_role(role: str) -> KafkaAccess:
    return kafka.access(settings_mod.load(), role)


def credentials() -> str:
    """The launched broker's credentials file, for Settings built by hand (the session fixture exports it)."""
    return os.environ["HIVE_KAFKA_CREDENTIALS"]


def grant(topics: Topics, worker_id: str) -> list[Grant]:
    """The production ACLs, for a test's own topic prefix and worker id."""
    kafka.grant(settings_mod.load(), topics, worker_id)
    return grants(topics, worker_id)


def revoke(topics: Topics, worker_id: str) -> None:
    kafka.revoke(settings_mod.load(), topics, worker_id)
