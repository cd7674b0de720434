from __future__ import annotations

from hive_streams.api.correlation import correlation_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_valid_request_id_is_kept():
    assert correlation_id({"X-Request-Id": "req-42"}) == "req-42"


def test_a_traceparent_gives_its_trace_id():
    assert correlation_id({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}) == TRACE


def test_invalid_or_absent_ids_get_a_new_uuid_per_request():
    bad = [{}, {"X-Request-Id": "a b"}, {"X-Request-Id": "x" * 129}, {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},
           {"traceparent": "garbage"}]
    made = [correlation_id(h) for h in bad]
    assert len(set(made)) == len(made) and all(len(m) == 32 for m in made)
