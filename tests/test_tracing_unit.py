"""Trace contexts: parsing, child spans per hop, and JSON log lines naming them."""
from __future__ import annotations

import json
import logging

from hive_streams import tracing
from hive_streams.codec import header, headers
from hive_streams.domain import commands as c
from hive_streams.logs import JsonFormatter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def test_valid_traceparents_parse_and_format_back():
    assert tracing.format_traceparent(tracing.parse(PARENT)) == PARENT
    assert tracing.parse(PARENT.encode()).trace_id == int(TRACE, 16)
    assert tracing.parse(f"01-{TRACE}-00f067aa0ba902b7-01-later-fields") is not None  # a later version's extras


def test_invalid_traceparents_are_none():
    for bad in (None, "", "garbage", f"ff-{TRACE}-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01",
                f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE}-00f067aa0ba902b7-01-extra", f"00-{TRACE[:-1]}-00f067aa0ba902b7-01"):
        assert tracing.parse(bad) is None, bad


def test_each_hop_is_a_child_span_of_the_record_it_handles():
    with tracing.hop("first", PARENT, "req-1"):
        first = tracing.current_traceparent()
        assert tracing.correlation.get() == "req-1"
        with tracing.hop("second", first, "req-1"):
            second = tracing.current_traceparent()
    assert first.split("-")[1] == second.split("-")[1] == TRACE
    assert len({PARENT.split("-")[2], first.split("-")[2], second.split("-")[2]}) == 3
    assert tracing.current_traceparent() is None and tracing.correlation.get() is None


def test_without_an_exporter_a_hop_records_nothing_but_still_carries_the_trace_on():
    assert not tracing._exporting  # no HIVE_OTLP_ENDPOINT in the unit tests
    with tracing.hop("decide", PARENT, "req-1", **{"messaging.kafka.offset": 7}) as span:
        child = tracing.parse(tracing.current_traceparent())
        span.set_attribute("ignored", 1)  # what callers do with the span still works
    assert not span.is_recording()
    assert child.trace_id == int(TRACE, 16) and child.span_id not in (0, int("00f067aa0ba902b7", 16))
    assert child.trace_flags.sampled  # the parent's flags travel on
    with tracing.hop("request", None, start=True):
        assert tracing.parse(tracing.current_traceparent()).trace_flags.sampled  # a new trace is sampled


def test_a_request_without_a_trace_starts_one_and_an_untraced_record_stays_untraced():
    with tracing.hop("request", None, start=True):
        started = tracing.parse(tracing.current_traceparent())
    assert started is not None and started.trace_id != int(TRACE, 16)
    with tracing.hop("record", "garbage") as span:
        assert span is None and tracing.current_traceparent() is None


def test_records_carry_the_trace_in_the_cloudevents_extension_header():
    command = c.CancelTask(task_id="t:1", command_id="c1", at=0, reason="")
    made = headers(command, "hive.v1.CancelTask", "/test", "req-1", None, PARENT)
    assert header(made, "ce_traceparent") == PARENT
    assert header(headers(command, "hive.v1.CancelTask", "/test"), "ce_traceparent") is None


def test_json_log_lines_name_the_trace_and_the_correlation_id():
    record = logging.LogRecord("hive", logging.INFO, __file__, 1, "task %s done", ("t:1",), None)
    with tracing.hop("execute task", PARENT, "req-1"):
        line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "task t:1 done" and line["level"] == "INFO"
    assert line["trace_id"] == TRACE and line["correlation_id"] == "req-1" and len(line["span_id"]) == 16
    outside = json.loads(JsonFormatter().format(record))
    assert "trace_id" not in outside and "correlation_id" not in outside


def test_an_unsampled_or_upper_case_parent_travels_on_as_it_was_sent():
    with tracing.hop("decide", f"00-{TRACE.upper()}-00F067AA0BA902B7-00 "):
        child = tracing.current_traceparent()
        ids = tracing.current_ids()
    assert child.startswith(f"00-{TRACE}-") and child.endswith("-00") and len(child) == 55
    assert ids[0] == int(TRACE, 16) and ids[1] == int(child.split("-")[2], 16) and ids[2] == 0


def test_a_hop_left_by_an_exception_puts_back_the_outer_hop_and_correlation():
    with tracing.hop("outer", PARENT, "req-1"):
        outer = tracing.current_traceparent()
        try:
            with tracing.hop("inner", outer, "req-2"):
                raise ValueError("refused")
        except ValueError:
            pass
        assert tracing.current_traceparent() == outer and tracing.correlation.get() == "req-1"
    assert tracing.current_traceparent() is None and tracing.correlation.get() is None


def test_with_an_exporter_a_hop_records_a_child_span_and_the_exception_that_left_it(monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(tracing, "_exporting", True)
    monkeypatch.setattr(tracing, "_tracer_of_process", provider.get_tracer("test"))
    try:
        with tracing.hop("decide SubmitTask", PARENT, "req-1", **{"messaging.kafka.offset": 7, "none": None}) as span:
            assert span.is_recording() and tracing.current_traceparent().split("-")[1] == TRACE
            raise ValueError("refused")
    except ValueError:
        pass
    (recorded,) = exported.get_finished_spans()
    assert recorded.name == "decide SubmitTask" and recorded.parent.span_id == int("00f067aa0ba902b7", 16)
    assert recorded.context.trace_id == int(TRACE, 16) and recorded.status.status_code == StatusCode.ERROR
    assert recorded.attributes["hive.correlation_id"] == "req-1" and "none" not in recorded.attributes
    assert [e.name for e in recorded.events] == ["exception"]
    assert tracing.current_traceparent() is None and tracing.correlation.get() is None


def test_the_api_starts_a_trace_of_its_own_only_when_spans_are_exported(monkeypatch):
    assert not tracing.exporting()  # no HIVE_OTLP_ENDPOINT in the unit tests
    with tracing.hop("POST /api/tasks", None, start=tracing.exporting()) as span:
        assert span is None and tracing.current_traceparent() is None
    monkeypatch.setattr(tracing, "_exporting", True)  # as with HIVE_OTLP_ENDPOINT: every request starts a trace
    with tracing.hop("POST /api/tasks", None, start=tracing.exporting()) as span:
        started = tracing.current_traceparent()
        assert span is not None and started is not None
        assert started.split("-")[2] == f"{span.get_span_context().span_id:016x}"  # the request's own span
    assert tracing.current_traceparent() is None
