"""Avro single-object encoding: C3 01, the schema's CRC-64-AVRO fingerprint, the body.

Records of the current schemas are read and written by functions generated once per schema and domain
class (`compiled.py`); older versions, which need schema resolution, and values of unusual types go through
fastavro and the generic `to_record`/`from_record`, which give the same results."""
from __future__ import annotations

import collections.abc
import dataclasses
import io
import struct
import types
import typing
from functools import lru_cache, partial

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from ..exceptions import CodecError, TruncatedRecordError, UnknownSchemaError
from . import compiled
from .registry import Entry, SchemaRegistry

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
# what a generated writer raises for a value of another type than it was made for: the generic path decides
_NOT_GENERATED = (TypeError, ValueError, AttributeError, OverflowError, struct.error)


class AvroCodec:
    def __init__(self, registry: SchemaRegistry):
        self.registry = registry
        self._readers: dict[bytes, typing.Callable] = {}  # header -> read(data, pos, length) -> (obj, pos)
        self._writers: dict[type, tuple] = {}  # class -> (entry, header, write(obj, out) or None)

    def encode(self, obj) -> bytes:
        writer = self._writers.get(obj.__class__) or self._writer_for(obj)
        entry, head, write = writer
        if write is not None:
            out = bytearray(head)
            try:
                write(obj, out)
                return bytes(out)
            except _NOT_GENERATED:
                pass
        buf = io.BytesIO()
        buf.write(head)
        try:
            schemaless_writer(buf, entry.schema, to_record(obj))
        except (ValueError, TypeError) as exc:
            raise CodecError(f"cannot encode {entry.name}: {exc}") from None
        return buf.getvalue()

    def _writer_for(self, obj) -> tuple:
        entry = self.registry.entry_for(obj)
        writer = (entry, MAGIC + entry.fingerprint, compiled.writer(entry.schema, entry.cls))
        self._writers[entry.cls] = writer
        return writer

    def decode(self, data: bytes):
        read = self._readers.get(data[:HEADER_LEN]) if data.__class__ is bytes else None
        if read is None:
            data, read = self._reader_for(data)
        size = len(data)
        try:
            obj, end = read(data, HEADER_LEN, size)
        except SchemaResolutionError as exc:
            entry = self._entry(data)
            raise CodecError(f"{entry.name}: version {entry.fingerprint.hex()} does not resolve to the current schema ({exc})") from None
        except (EOFError, StopIteration, IndexError, struct.error) as exc:
            raise TruncatedRecordError(f"{self._entry(data).name}: truncated body ({type(exc).__name__})") from None
        except (ValueError, TypeError, UnicodeDecodeError, OverflowError) as exc:
            raise CodecError(f"{self._entry(data).name}: malformed body ({exc})") from None
        if end != size:
            raise CodecError(f"{self._entry(data).name}: {size - end} trailing bytes")
        return obj

    def _entry(self, data: bytes) -> Entry:
        return self.registry.by_fingerprint[data[2:HEADER_LEN]]

    def _reader_for(self, data) -> tuple[bytes, typing.Callable]:
        """The record as bytes and the reader of its schema, made on first use; or why it cannot be read."""
        if data is None or len(data) < HEADER_LEN:
            raise TruncatedRecordError(f"record of {0 if data is None else len(data)} bytes is shorter than the header")
        data = bytes(data)
        if data[:2] != MAGIC:
            raise CodecError(f"not Avro single-object encoding (starts with {data[:2].hex()})")
        read = self._readers.get(data[:HEADER_LEN])
        if read is None:
            entry = self.registry.by_fingerprint.get(data[2:HEADER_LEN])
            if entry is None:
                raise UnknownSchemaError(f"unknown schema fingerprint {data[2:HEADER_LEN].hex()}")
            # a released older version needs resolution into the current schema: fastavro does that
            read = compiled.reader(entry.schema, entry.cls) if entry.reader is None else None
            read = self._readers[data[:HEADER_LEN]] = read or partial(_read_generic, entry)
        return data, read


def _read_generic(entry: Entry, data: bytes, pos: int, size: int):
    buf = io.BytesIO(data)
    buf.seek(pos)
    record = schemaless_reader(buf, entry.schema, entry.reader)
    end = buf.tell()
    if end != size:
        return None, end
    try:
        return from_record(entry.cls, record), end
    except TypeError as exc:  # e.g. the schema lacks a field the class requires
        raise CodecError(f"{entry.name}: does not fit {entry.cls.__name__} ({exc})") from None


_RECORDERS: dict[type, typing.Callable] = {}
_BUILDERS: dict[type, typing.Callable] = {}


def to_record(obj):
    """The Avro record of a domain object: dataclasses as dicts, tuples and lists as lists, frozensets sorted."""
    cls = obj.__class__
    if cls in compiled.PLAIN:
        return obj
    recorder = _RECORDERS.get(cls)
    if recorder is None:
        if isinstance(obj, type):  # a class itself: never kept by its metaclass
            return _to_record_generic(obj)
        if not dataclasses.is_dataclass(cls):  # tuples, lists, maps, sets: asked once a type
            recorder = _to_record_generic
        else:
            try:
                recorder = compiled.recorder(cls, to_record)
            except Exception:  # hints that do not resolve, say: the generic path handles any dataclass
                recorder = _to_record_generic
        _RECORDERS[cls] = recorder
    return recorder(obj)


def _to_record_generic(obj):
    if isinstance(obj, (tuple, list)):
        return [to_record(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_record(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj):
        return {f.name: to_record(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, frozenset):
        return sorted(obj)
    if isinstance(obj, collections.abc.Mapping):
        return {k: to_record(v) for k, v in obj.items()}
    return obj


def from_record(cls: type, record: dict):
    """Builds a domain object; fields missing from an older record take the dataclass default."""
    builder = _BUILDERS.get(cls)
    if builder is None:
        try:
            builder = compiled.builder(cls, _from_record_generic, from_record)
        except Exception:  # not a dataclass, say: the generic path raises what it always raised
            builder = None
        builder = _BUILDERS[cls] = builder or partial(_from_record_generic, cls)
    return builder(record)


def _from_record_generic(cls: type, record: dict):
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
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        args = typing.get_args(hint)
        if len(args) == 2 and dataclasses.is_dataclass(args[1]):  # e.g. the ledger's escrows
            value = args[1]
            return lambda v: {k: from_record(value, x) for k, x in v.items()}
    return None
