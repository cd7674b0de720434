"""Avro object container files of the log: one file per event type, written with the type's current schema.

Each file embeds its schema (self-contained, named types inlined), so any Avro reader opens it without
this project. Records of older schema versions are resolved into the current one when decoded.
"""
from __future__ import annotations

from pathlib import Path

from fastavro.write import Writer

from ..codec.avro import to_record

CODEC = "deflate"  # in every Avro implementation, unlike snappy or zstandard


class AvroFiles:
    """Opens `<dir>/<Type>.avro` on the first record of each type; `close()` flushes them all."""

    def __init__(self, directory: Path, registry, metadata: dict[str, str] | None = None):
        self.dir = Path(directory)
        self.registry = registry
        self.metadata = metadata or {}
        self.files: dict[str, tuple] = {}  # type -> (file, writer)
        self.counts: dict[str, int] = {}

    def write(self, obj) -> None:
        entry = self.registry.entry_for(obj)
        name = type(obj).__name__
        if name not in self.files:
            self.dir.mkdir(parents=True, exist_ok=True)
            fo = open(self.dir / f"{name}.avro", "wb")
            self.files[name] = (fo, Writer(fo, entry.source, codec=CODEC, metadata=self.metadata))
        self.files[name][1].write(to_record(obj))
        self.counts[name] = self.counts.get(name, 0) + 1

    def close(self) -> None:
        for fo, writer in self.files.values():
            writer.flush()
            fo.close()

    def __enter__(self) -> "AvroFiles":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
