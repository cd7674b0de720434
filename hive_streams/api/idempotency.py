"""Idempotency keys, pure: a key's scope, the command and task ids derived from it, a request's digest.

A key is scoped to the caller and the route (method and path). The ids of the commands a keyed
request creates are derived from that scope, so a request sent twice, to any API process, writes
the same commands twice and the deciders, which skip a command id already applied, act once.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from urllib.parse import parse_qsl, urlencode

from .errors import RequestError

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
ID_LENGTH = 32


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise RequestError(422, HEADER, f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return key


def scope_of(caller: str, route: str, key: str) -> str:
    """One hex digest per (caller, route, key); no two different triples share it."""
    return hashlib.sha256(json.dumps([caller, route, key]).encode()).hexdigest()


def derived_id(scope: str, kind: str, index: int = 0) -> str:
    return hashlib.sha256(f"{scope}/{kind}/{index}".encode()).hexdigest()[:ID_LENGTH]


def request_digest(body: bytes, query: str = "") -> str:
    """Equal for the same request sent again: JSON bodies compare by value, others byte for byte."""
    params = urlencode(sorted(parse_qsl(query, keep_blank_values=True)))
    return hashlib.sha256(params.encode() + b"\n" + _canonical(body)).hexdigest()


def _canonical(body: bytes) -> bytes:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class CommandIds:
    """The ids of the commands one request creates: derived from its key's scope, else random."""

    def __init__(self, scope: str | None = None):
        self.scope = scope

    def command_id(self, index: int = 0) -> str:
        return derived_id(self.scope, "command", index) if self.scope else uuid.uuid4().hex

    def task_id(self, index: int = 0) -> str:
        return derived_id(self.scope, "task", index) if self.scope else uuid.uuid4().hex
