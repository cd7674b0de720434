"""Traces across hops: a W3C trace context carried from the HTTP request through every command and event.

A record of a traced request (a client's `traceparent`, or a trace the API starts when spans are
exported) carries its span's context in `ce_traceparent` (the CloudEvents distributed-tracing
extension, Kafka binary mode). Each process that handles a record (API request, decider, matcher,
executor) opens a child span of the record's context, and what it writes carries that child's
context on, so one trace id runs from `POST /api/tasks` to `TaskCompleted`. Spans are exported
over OTLP/HTTP only when HIVE_OTLP_ENDPOINT is set; without it a client's trace is still carried
on (its spans made, their ids travel, and dropped), and a request without one starts none. The
span and the correlation id of the record being handled are also in the context that JSON log
lines read (`logs.py`).
"""
from __future__ import annotations

import contextvars
import random
import re

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

TRACEPARENT = "ce_traceparent"  # record header
HTTP_TRACEPARENT = "traceparent"  # request header
EXPORT_DELAY_MS = 1000
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")

correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar("hive_correlation", default=None)
# the traceparent of the hop being handled when spans are not recorded: no OpenTelemetry context then
_unrecorded: contextvars.ContextVar[str | None] = contextvars.ContextVar("hive_hop", default=None)
_provider: TracerProvider | None = None
_tracer_of_process: trace.Tracer | None = None
_exporting = False  # without an exporter a hop makes only a span context: its ids travel, nothing is recorded


def setup(settings, service: str) -> TracerProvider:
    """This process's tracer provider (once): spans with real ids, exported when an endpoint is set."""
    global _provider, _tracer_of_process, _exporting
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service}))
        _exporting = bool(settings.otlp_endpoint)
        if _exporting:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
            _provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_DELAY_MS))
        _tracer_of_process = _provider.get_tracer("hive_streams")  # made once: getting one costs more than a span
    return _provider


def exporting() -> bool:
    """Whether this process exports its spans (HIVE_OTLP_ENDPOINT set). Without it a request that came without a
    trace starts none: ids nobody records would ride on every record of the task (bench/FINDINGS.md)."""
    _tracer()
    return _exporting


def shutdown() -> None:
    """Exports what is still queued (the provider also does it at exit)."""
    if _provider is not None:
        _provider.shutdown()


def _tracer() -> trace.Tracer:
    if _tracer_of_process is None:
        from .settings import load
        setup(load(), "hive-streams")
    return _tracer_of_process


def _valid(value: str | bytes | None) -> tuple[str, str, str] | None:
    """A valid W3C traceparent's trace id and span id (lower-case hex) and sampled flag ("01" or "00"), else None
    (unknown versions read as 00)."""
    if not value:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode(errors="replace")
    found = _TRACEPARENT.fullmatch(value.strip().lower())
    if not found:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, "01" if int(flags, 16) & 1 else "00"


def _ids(value: str | bytes | None) -> tuple[int, int, int] | None:
    """A valid W3C traceparent's (trace id, span id, sampled flag), else None (unknown versions read as 00)."""
    return _as_ints(_valid(value))


def _as_ints(parts: tuple[str, str, str] | None) -> tuple[int, int, int] | None:
    return None if parts is None else (int(parts[0], 16), int(parts[1], 16), int(parts[2], 16))


def parse(value: str | bytes | None) -> SpanContext | None:
    """A valid W3C traceparent's span context, else None (unknown versions are read as version 00)."""
    ids = _ids(value)
    return None if ids is None else SpanContext(ids[0], ids[1], is_remote=True, trace_flags=TraceFlags(ids[2]))


def format_traceparent(context: SpanContext) -> str:
    return _format(context.trace_id, context.span_id, int(context.trace_flags))


def _format(trace_id: int, span_id: int, flags: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def current_ids() -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of the span being handled now, recorded or not; None outside any."""
    held = _unrecorded.get()
    if held is not None:
        return int(held[3:35], 16), int(held[36:52], 16), int(held[53:55], 16)
    context = trace.get_current_span().get_span_context()
    return (context.trace_id, context.span_id, int(context.trace_flags)) if context.is_valid else None


def current_traceparent() -> str | None:
    """The traceparent of the span being handled now, for what this hop writes."""
    held = _unrecorded.get()
    if held is not None:
        return held  # made once a hop, not once a record it writes
    ids = current_ids()
    return None if ids is None else _format(*ids)


class hop:
    """A child span of `parent` while the block runs, current for what it writes and logs. Without a valid
    parent, a new trace when `start` (the API's requests, when spans are exported), else no span (None): a record
    nobody traced stays so.

    A class rather than a generator: a decider enters one for every command it decides."""
    __slots__ = ("name", "parent", "correlation_id", "kind", "start", "attributes", "_token", "_held", "_recording")

    def __init__(self, name: str, parent: str | bytes | None, correlation_id: str | None = None,
                 kind: SpanKind = SpanKind.CONSUMER, start: bool = False, **attributes):
        self.name, self.parent, self.correlation_id, self.kind, self.start = name, parent, correlation_id, kind, start
        self.attributes = attributes
        self._token = self._held = self._recording = None

    def __enter__(self):
        self._held = self._recording = None
        parts = _valid(self.parent)
        self._token = correlation.set(self.correlation_id)
        try:
            if parts is None and not self.start:
                return None
            tracer = _tracer()
            if not _exporting:  # the same ids a recorded span would get, kept in a context variable of our own
                trace_id, flags = parts[0::2] if parts else (f"{_nonzero(128):032x}", "01")
                self._held = _unrecorded.set(f"00-{trace_id}-{_nonzero(64):016x}-{flags}")
                return trace.INVALID_SPAN  # takes attributes and records nothing, as a recorded span's caller expects
            ids = _as_ints(parts)
            context = SpanContext(ids[0], ids[1], is_remote=True, trace_flags=TraceFlags(ids[2])) if ids else None
            parent_context = trace.set_span_in_context(NonRecordingSpan(context)) if context else None
            attrs = {k: v for k, v in self.attributes.items() if v is not None}
            if self.correlation_id:
                attrs["hive.correlation_id"] = self.correlation_id
            self._recording = tracer.start_as_current_span(self.name, context=parent_context, kind=self.kind,
                                                           attributes=attrs)
            return self._recording.__enter__()
        except BaseException:
            correlation.reset(self._token)
            raise

    def __exit__(self, *exc_info) -> bool | None:
        try:
            if self._held is not None:
                _unrecorded.reset(self._held)
            elif self._recording is not None:
                return self._recording.__exit__(*exc_info)
            return None
        finally:
            correlation.reset(self._token)


def _nonzero(bits: int) -> int:
    return random.getrandbits(bits) or 1
