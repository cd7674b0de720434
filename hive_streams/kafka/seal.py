"""Seals on commands: who may send which command, checked by the deciders whatever the broker let through.

Kafka's ACLs grant a role whole topics, so an executor that may write its own reports to the task
commands topic could also write `AssignTask`, and a producer could name any principal. A command
that no executor signs therefore carries a seal: an HMAC-SHA256 over its principal and its record
value, under a key derived from the deployment's service secret.

- `service:` seals are made with the secret itself, which only the fabric's own processes hold
  (API, worker, CLI tools run by an operator); they may send any command for any principal.
- `producer:` seals are made with a key derived from the secret for one principal
  (`producer_key`), handed to that principal (`hive-streams producer-key`, `POST /api/producer-keys`);
  they may submit that principal's tasks and nothing else.

The seal is a header (`hive_seal: <scope>:<hex>`), so the record's bytes stay as they were.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ..exceptions import ConfigError
from .principal import PRINCIPAL_HEADER

SEAL_HEADER = "hive_seal"
SERVICE, PRODUCER = "service", "producer"
SECRET_FILE = "service-secret"
MIN_SECRET_BYTES = 32


def _mac(key: bytes, principal: str, value: bytes) -> str:
    return hmac.new(key, principal.encode() + b"\0" + value, hashlib.sha256).hexdigest()


def producer_key(secret: bytes, principal: str) -> bytes:
    """The key that lets `principal`, and only it, submit its tasks straight to Kafka."""
    return hmac.new(secret, b"producer\0" + principal.encode(), hashlib.sha256).digest()


def principal_of(headers) -> str:
    for name, value in headers or ():
        if name == PRINCIPAL_HEADER:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


class Sealer:
    """Makes the seal header of the commands one process sends."""

    def __init__(self, scope: str, key: bytes):
        self.scope, self.key = scope, key

    @classmethod
    def service(cls, secret: bytes) -> "Sealer":
        return cls(SERVICE, secret)

    @classmethod
    def producer(cls, key: bytes) -> "Sealer":
        return cls(PRODUCER, key)

    def header(self, value: bytes, headers) -> tuple[str, bytes]:
        return SEAL_HEADER, f"{self.scope}:{_mac(self.key, principal_of(headers), value)}".encode()


class SealCheck:
    """Which scope a command's seal proves, or None when it has none or a wrong one."""

    def __init__(self, secret: bytes, cache: int = 4096):
        self.secret = secret
        self.cache = cache
        self._producer_keys: dict[str, bytes] = {}

    def scope(self, value: bytes, headers) -> str | None:
        seal = principal = None
        for name, raw in headers or ():
            if name == SEAL_HEADER:
                seal = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            elif name == PRINCIPAL_HEADER:
                principal = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        if not seal or ":" not in seal:
            return None
        scope, mac = seal.split(":", 1)
        principal = principal or ""
        if scope == SERVICE:
            key = self.secret
        elif scope == PRODUCER and principal:
            key = self._producer_key(principal)
        else:
            return None
        return scope if hmac.compare_digest(mac, _mac(key, principal, value)) else None

    def _producer_key(self, principal: str) -> bytes:
        key = self._producer_keys.get(principal)
        if key is None:
            if len(self._producer_keys) >= self.cache:
                self._producer_keys.clear()
            key = self._producer_keys[principal] = producer_key(self.secret, principal)
        return key


def service_secret(configured: str, home: str | Path, create: bool = False) -> bytes:
    """HIVE_SERVICE_SECRET, else the one kept in $HIVE_HOME/keys (made there on first use when `create`)."""
    if configured:
        if len(configured.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"HIVE_SERVICE_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        return configured.encode()
    path = Path(home) / "keys" / SECRET_FILE
    if not path.exists():
        if not create:
            raise ConfigError(f"no service secret: set HIVE_SERVICE_SECRET or run `hive-streams up` once "
                              f"(it keeps one in {path})")
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
        draft.write_text(secrets.token_hex(32))
        draft.chmod(0o600)
        try:
            os.link(draft, path)  # atomic: of processes starting together, one makes it and all read that one
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()
