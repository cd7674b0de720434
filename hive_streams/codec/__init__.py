"""Where schemas and domain types meet: Avro single-object records, CloudEvents headers, keys."""
from __future__ import annotations

from functools import lru_cache

from ..settings import load
from .avro import AvroCodec
from .cloudevents import aggregate_id, event_id, header, headers
from .registry import SchemaRegistry

__all__ = ["AvroCodec", "SchemaRegistry", "Codec", "default_codec", "aggregate_id", "event_id", "header", "headers"]


class Codec(AvroCodec):
    """Encodes a domain object into (key, value, headers) for Kafka, and back."""

    def key(self, obj) -> bytes:
        return aggregate_id(obj).encode()

    def headers(self, obj, source: str, correlation_id: str | None = None, causation_id: str | None = None,
                traceparent: str | None = None):
        return headers(obj, self.registry.entry_for(obj).name, source, correlation_id, causation_id, traceparent)

    def message(self, obj, source: str, **ids) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        return self.key(obj), self.encode(obj), self.headers(obj, source, **ids)


@lru_cache(maxsize=4)
def default_codec(schemas_dir: str | None = None) -> Codec:
    return Codec(SchemaRegistry(schemas_dir or load().schemas_dir))
