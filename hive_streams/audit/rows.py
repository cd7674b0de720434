"""What an audit row says, derived from its record's bytes alone: the connector writes it, `audit verify`
derives it again from the log and from the row's own bytes and compares."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from ..codec import Codec, aggregate_id, event_id
from ..codec.avro import to_record
from ..exceptions import CodecError
from ..kafka.principal import PRINCIPAL_HEADER
from .chain import canonical_headers

UNDECODABLE = "undecodable"
CORRELATION = "ce_correlationid"
log = logging.getLogger("hive_streams.audit")


@dataclass(frozen=True)
class LogRecord:
    """One committed record of an event topic, decoded (event None when it is not decodable)."""
    topic: str
    partition: int
    offset: int
    event: object
    event_type: str  # e.g. "hive.v1.TaskSubmitted"
    headers: dict[str, str]
    key: bytes | None = None
    raw_headers: tuple = ()  # (name, bytes) pairs in the record's order
    value: bytes | None = None


def log_record(codec: Codec, topic: str, partition: int, offset: int, key: bytes | None, headers, value) -> LogRecord:
    """Every record becomes one: an undecodable one is audited with event None and projected nowhere."""
    raw_headers = tuple((name, None if v is None else bytes(v)) for name, v in headers or ())
    try:
        if value is None:
            raise CodecError("no value (a tombstone)")
        event = codec.decode(value)
        event_type = codec.registry.entry_for(event).name
    except CodecError as exc:
        log.warning("undecodable record %s[%d]@%d: audited, not projected (%s)", topic, partition, offset, exc)
        event, event_type = None, UNDECODABLE
    return LogRecord(topic, partition, offset, event, event_type, _text_headers(raw_headers), key, raw_headers, value)


def from_consumer_record(codec: Codec, record) -> LogRecord:
    return log_record(codec, record.topic, record.partition, record.offset, record.key, record.headers, record.value)


def _text_headers(headers) -> dict[str, str]:
    return {k: "" if v is None else v.decode(errors="replace") for k, v in headers}


def _header(headers, name: str) -> str | None:
    return next((None if v is None else v.decode(errors="replace") for k, v in headers if k == name), None)


def _identity(event) -> tuple[str | None, str | None]:
    try:
        return event_id(event), aggregate_id(event)
    except (TypeError, AttributeError):
        return None, None


def _text(value: str | None) -> str | None:
    """Text a SQL column can hold (no NUL); the record's own bytes are kept beside it."""
    return None if value is None else value.replace("\x00", "\ufffd")


def _text_map(headers: dict[str, str]) -> dict[str, str]:
    """The headers as text a SQL column can hold: the same dict when none has a NUL (nearly always)."""
    if "\x00" in "".join(headers) or "\x00" in "".join(headers.values()):
        return {_text(k): _text(v) for k, v in headers.items()}
    return headers


def _named(r: LogRecord, name: str) -> str | None:
    """The first header of that name as text (None when absent or without a value): from the decoded headers when
    no name repeats and the value is not empty (nearly always), else from the record's own."""
    if len(r.headers) != len(r.raw_headers):
        return _header(r.raw_headers, name)
    value = r.headers.get(name)
    return _header(r.raw_headers, name) if value == "" else value


class JsonPayload(dict):
    """A payload with the strict JSON text it was checked as (`json_text`): the store writes that text as it is."""
    __slots__ = ("json_text",)


def _holdable(payload: dict | None) -> dict | None:
    """The decoded event as strict JSON, or None when it is not (NaN, infinities, NUL): the bytes still are kept."""
    try:
        text = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if "\\u0000" in text:
        return None
    held = JsonPayload(payload)
    held.json_text = text
    return held


def audit_fields(r: LogRecord) -> dict:
    """Every column of the row but its hash, duplicate flag and recorded_at."""
    ev = r.event
    eid, aid = _identity(ev) if ev is not None else (None, None)
    if aid is None and r.key is not None:
        aid = r.key.decode(errors="replace")
    seq, at = getattr(ev, "seq", None), getattr(ev, "at", None)
    return dict(event_id=_text(eid), aggregate_id=_text(aid), seq=seq if _long(seq) else None,
                event_type=r.event_type, topic=r.topic, partition=r.partition, offset=r.offset,
                occurred_at=at if _long(at) else None, payload=_holdable(to_record(ev)) if ev is not None else None,
                headers=_text_map(r.headers), principal=_text(_named(r, PRINCIPAL_HEADER)),
                correlation_id=_text(_named(r, CORRELATION)),
                record_key=r.key, record_headers=canonical_headers(r.raw_headers), record_value=r.value)


def _long(value) -> bool:
    return isinstance(value, int) and -(1 << 63) <= value < (1 << 63)
