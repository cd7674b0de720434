"""The audit chain: each record's hash covers the previous hash of its partition and the record's bytes.

    hash = sha256(prev || offset || key || canonical headers || value)

with every part length-prefixed, so no two records share an encoding. The first record of a
partition links to GENESIS. Everything here is pure: the connector and `audit verify` share it.
"""
from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from typing import Iterable

GENESIS = "0" * 64
_NONE = struct.pack(">i", -1)
_LENGTH = struct.Struct(">i").pack


def _field(data: bytes | None) -> bytes:
    return _NONE if data is None else struct.pack(">i", len(data)) + data


@lru_cache(maxsize=256)
def _name_field(name: str) -> bytes:
    return _field(name.encode())


def canonical_headers(headers: Iterable[tuple[str, bytes | None]]) -> bytes:
    """Kafka headers in their order, each name and value length-prefixed."""
    parts = []
    for name, value in headers or ():
        parts.append(_name_field(name))
        parts.append(_NONE if value is None else _LENGTH(len(value)) + value)
    return b"".join(parts)


def link(prev: str, offset: int, key: bytes | None, headers: bytes, value: bytes | None) -> str:
    """The hex hash of one record chained to `prev` (the hex hash of the row before it, or GENESIS)."""
    digest = hashlib.sha256(bytes.fromhex(prev))
    digest.update(struct.pack(">q", offset))
    for part in (key, headers, value):
        digest.update(_field(part))
    return digest.hexdigest()


def parse_headers(data: bytes) -> list[tuple[str, bytes | None]]:
    """The inverse of canonical_headers."""
    out, i = [], 0

    def take() -> bytes | None:
        nonlocal i
        (size,) = struct.unpack_from(">i", data, i)
        i += 4
        if size < 0:
            return None
        part = data[i:i + size]
        i += size
        return part

    while i < len(data):
        name = take()
        out.append(((name or b"").decode(), take()))
    return out
