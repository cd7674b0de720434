"""Avro's binary primitives that the generated readers and writers call on their slow paths."""
from __future__ import annotations

import struct
from functools import lru_cache

DOUBLE = struct.Struct("<d")
FLOAT = struct.Struct("<f")
_INT64 = 1 << 63


def _zigzag(n: int) -> bytes:
    if not -_INT64 <= n < _INT64:
        raise OverflowError("Python int too large to convert to C long")
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


SMALL = tuple(_zigzag(n) for n in range(-64, 64))  # SMALL[n + 64]: one-byte longs
LENGTHS = tuple(_zigzag(n) for n in range(4096))  # LENGTHS[n]: the length prefixes of most strings


_wide = lru_cache(maxsize=4096)(_zigzag)  # mostly timestamps: a batch's events share theirs


def write_long(n: int) -> bytes:
    if -64 <= n < 64:
        return SMALL[n + 64]
    return _wide(n)


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def bad_length(n: int) -> Exception:
    return ValueError(f"negative length {n}") if n < 0 else EOFError("length beyond the end of the record")
