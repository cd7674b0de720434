"""Avro single-object encoding: C3 01, the schema's CRC-64-AVRO fingerprint, the body."""
from __future__ import annotations

import collections.abc
import dataclasses
import io
import struct
import types
import typing
from functools import lru_cache

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from ..exceptions import CodecError, TruncatedRecordError, UnknownSchemaError
from .registry import SchemaRegistry

MAGIC = b"\xc3\x01"
HEADER_LEN = 10


class AvroCodec:
    def __init__(self, registry: SchemaRegistry):
        self.registry = registry

    def encode(self, obj) -> bytes:
        entry = self.registry.entry_for(obj)
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(entry.fingerprint)
        try:
            schemaless_writer(buf, entry.schema, to_record(obj))
        except (ValueError, TypeError) as exc:
            raise CodecError(f"cannot encode {entry.name}: {exc}") from None
        return buf.getvalue()

    def decode(self, data: bytes):
        if data is None or len(data) < HEADER_LEN:
            raise TruncatedRecordError(f"record of {0 if data is None else len(data)} bytes is shorter than the header")
        if data[:2] != MAGIC:
            raise CodecError(f"not Avro single-object encoding (starts with {data[:2].hex()})")
        entry = self.registry.by_fingerprint.get(bytes(data[2:HEADER_LEN]))
        if entry is None:
            raise UnknownSchemaError(f"unknown schema fingerprint {bytes(data[2:HEADER_LEN]).hex()}")
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            # reader is None for the current version: no resolution on the hot path
            record = schemaless_reader(buf, entry.schema, entry.reader)
        except SchemaResolutionError as exc:
            raise CodecError(f"{entry.name}: version {entry.fingerprint.hex()} does not resolve to the current schema ({exc})") from None
        except (EOFError, StopIteration, IndexError, struct.error) as exc:
            raise TruncatedRecordError(f"{entry.name}: truncated body ({type(exc).__name__})") from None
        except (ValueError, TypeError, UnicodeDecodeError, OverflowError) as exc:
            raise CodecError(f"{entry.name}: malformed body ({exc})") from None
        if buf.tell() != len(data):
            raise CodecError(f"{entry.name}: {len(data) - buf.tell()} trailing bytes")
        try:
            return from_record(entry.cls, record)
        except TypeError as exc:  # e.g. the schema lacks a field the class requires
            raise CodecError(f"{entry.name}: does not fit {entry.cls.__name__} ({exc})") from None


def to_record(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: to_record(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_record(v) for v in obj]
    if isinstance(obj, frozenset):
        return sorted(obj)
    if isinstance(obj, collections.abc.Mapping):
        return {k: to_record(v) for k, v in obj.items()}
    return obj


def from_record(cls: type, record: dict):
    """Builds a domain object; fields missing from an older record take the dataclass default."""
    converters = _converters(cls)
    return cls(**{name: conv(record[name]) if conv else record[name] for name, conv in converters if name in record})


@lru_cache(maxsize=None)
def _converters(cls: type) -> tuple:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))


def _converter(hint):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return lambda v: from_record(hint, v)
    if origin is tuple:
        inner = _converter(typing.get_args(hint)[0])
        return (lambda v: tuple(inner(x) for x in v)) if inner else tuple
    if origin is frozenset:
        return frozenset
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _converter(args[0])
        return (lambda v: None if v is None else inner(v)) if inner else None
    if hint is float:
        return float
    return None
