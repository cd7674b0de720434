"""Who a process is on the broker: its bootstrap servers and its role's SASL/SCRAM credentials.

Every process connects as its role (`worker`, `api`, `executor`, `connector`, `producer`,
`analyst`, `admin`), and the broker's ACLs (`acls.py`) keep each role to what it must do.
The credentials come from `HIVE_KAFKA_USER` / `HIVE_KAFKA_PASSWORD` when a process is given its
own, otherwise from the role's entry in the credentials file (`HIVE_KAFKA_CREDENTIALS`, by
default the one the launched broker wrote at `$HIVE_HOME/kafka/credentials.json`).
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import InfraError

ROLES = ("admin", "worker", "api", "executor", "connector", "producer", "analyst")
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True)
class KafkaAccess:
    bootstrap: str
    username: str
    password: str = field(repr=False)
    mechanism: str = "SCRAM-SHA-256"
    security_protocol: str = "SASL_PLAINTEXT"

    def options(self) -> dict:
        """The connection keywords every aiokafka client (producer, consumer, admin) takes."""
        opts = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol,
                "sasl_mechanism": self.mechanism, "sasl_plain_username": self.username,
                "sasl_plain_password": self.password}
        if self.security_protocol == "SASL_SSL":
            from aiokafka.helpers import create_ssl_context
            opts["ssl_context"] = create_ssl_context()
        return opts


def credentials_path(settings) -> Path:
    return Path(settings.kafka_credentials or Path(settings.home) / "kafka" / "credentials.json")


def read_credentials(path: Path) -> dict[str, dict[str, str]]:
    """role -> {"username", "password"}."""
    try:
        users = json.loads(path.read_text())["users"]
    except FileNotFoundError:
        raise InfraError(f"no Kafka credentials at {path}: start the broker (`hive-streams kafka up`), "
                         "or set HIVE_KAFKA_CREDENTIALS, or HIVE_KAFKA_USER and HIVE_KAFKA_PASSWORD") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InfraError(f"unreadable Kafka credentials file {path}: {exc!r}") from None
    return users


def write_credentials(path: Path, mechanism: str) -> dict[str, dict[str, str]]:
    """A fresh password for every role, readable by this user only."""
    users = {role: {"username": role, "password": secrets.token_urlsafe(24)} for role in ROLES}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"mechanism": mechanism, "users": users}, f, indent=2)
    tmp.replace(path)
    return users


def access_for(settings, role: str) -> KafkaAccess:
    """The connection of a process acting as `role`."""
    if role not in ROLES:
        raise ValueError(f"unknown Kafka role {role!r}; one of {', '.join(ROLES)}")
    if settings.kafka_mechanism not in MECHANISMS:
        raise InfraError(f"HIVE_KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)}")
    if settings.kafka_security_protocol not in PROTOCOLS:
        raise InfraError(f"HIVE_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}")
    if settings.kafka_user:
        username, password = settings.kafka_user, settings.kafka_password
    else:
        entry = read_credentials(credentials_path(settings)).get(role)
        if not entry:
            raise InfraError(f"no Kafka credentials for role {role!r} in {credentials_path(settings)}")
        username, password = entry["username"], entry["password"]
    return KafkaAccess(settings.bootstrap, username, password, settings.kafka_mechanism,
                       settings.kafka_security_protocol)
