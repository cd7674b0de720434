"""The audit chain, the comparison of rows with records, and the one set of audited topics, without a broker."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hive_streams.audit.chain import GENESIS, canonical_headers, link, parse_headers
from hive_streams.audit.checkpoints import Head
from hive_streams.audit.compare import compare, expected_rows
from hive_streams.audit.rows import audit_fields, log_record
from hive_streams.codec import default_codec
from hive_streams.codec.strays import families, stray_reason
from hive_streams.domain import commands as c
from hive_streams.domain import task
from hive_streams.domain.model import NodeSpec
from hive_streams.kafka.acls import READ, grants
from hive_streams.kafka.principal import PRINCIPAL_HEADER
from hive_streams.replay.rebuild import families as replay_families
from hive_streams.settings import Settings
from hive_streams.topics import Topics

from .samples import samples

TOPIC = "x.task.events"


def records():
    codec, out, events = default_codec(), [], []
    for task_id in ("t1", "t2"):
        submit = c.SubmitTask(task_id, "c1", 1000, name="n", requester="ann", nodes=(NodeSpec("a", "echo"),))
        events += task.decide(submit, task.TaskState(task_id), 1000)
    events = events + events[:1]  # the first event produced twice
    for offset, event in enumerate(events):
        key, value, headers = codec.message(event, "tests", correlation_id="req-1")
        out.append(log_record(codec, TOPIC, 0, offset, key, headers, value))
    out.append(log_record(codec, TOPIC, 0, len(out), b"t1", [], b"not avro"))
    return out


def test_headers_round_trip_and_hashes_depend_on_every_part():
    headers = [("a", b"1"), ("b", None), ("a", b"")]
    assert parse_headers(canonical_headers(headers)) == headers
    base = link(GENESIS, 0, b"k", canonical_headers(headers), b"v")
    assert len({base, link(GENESIS, 1, b"k", canonical_headers(headers), b"v"), link(GENESIS, 0, None, b"", b"v"),
                link(GENESIS, 0, b"k", canonical_headers(headers[:1]), b"v"),
                link(GENESIS, 0, b"k", canonical_headers(headers), b"w"), link(base, 0, b"k", b"", b"v")}) == 6


def test_canonical_headers_are_the_bytes_every_chained_hash_covers():
    # names and values length-prefixed (big-endian int32), a null value as -1: rows already chained depend on it
    headers = [("ce_id", b"t1/1"), ("gone", None), ("e", bytearray()), ("ce_id", memoryview(b"x"))]
    assert canonical_headers(headers) == (b"\x00\x00\x00\x05ce_id\x00\x00\x00\x04t1/1" + b"\x00\x00\x00\x04gone\xff\xff\xff\xff"
                                          + b"\x00\x00\x00\x01e\x00\x00\x00\x00" + b"\x00\x00\x00\x05ce_id\x00\x00\x00\x01x")
    assert canonical_headers([]) == canonical_headers(None) == b""


def test_rows_say_who_what_when_and_why_and_flag_duplicates_and_garbage():
    rows = expected_rows(records())
    assert [r["duplicate"] for r in rows.values()] == [False] * (len(rows) - 2) + [True, False]
    assert {r["correlation_id"] for r in rows.values() if r["event_type"] != "undecodable"} == {"req-1"}
    assert rows[len(rows) - 1]["event_type"] == "undecodable" and rows[len(rows) - 1]["aggregate_id"] == "t1"
    assert rows[0]["event_id"] == "t1/1" and rows[0]["seq"] == 1 and rows[0]["occurred_at"] == 1000


def test_compare_names_each_kind_of_tampering():
    recs = records()
    rows = expected_rows(recs)
    last = max(rows)
    heads = [Head(TOPIC, 0, last, rows[last]["hash"])]
    assert compare(TOPIC, 0, recs, rows, last + 1, heads).findings == []
    tampered = {o: dict(r) for o, r in rows.items() if o not in (1, last)}
    tampered[0]["principal"] = "mallory"
    tampered[99] = dict(rows[0], offset=99)
    kinds = {(f.kind, f.offset) for f in compare(TOPIC, 0, recs, tampered, last + 1, heads).findings}
    assert {("modified", 0), ("deleted", 1), ("missing", last), ("inserted", 99), ("checkpoint", last)} == kinds
    pending = compare(TOPIC, 0, recs, {0: rows[0]}, 1, [])
    assert pending.findings == [] and pending.pending == len(recs) - 1


def test_every_events_topic_and_the_alerts_are_in_the_one_audited_set():
    topics = Topics("x", 3)
    wanted = {name for name in topics.layout() if name.endswith(".events")} | {topics.alerts}
    assert set(topics.event_topics) == wanted and len(topics.event_topics) == len(wanted)
    assert set(families(topics)) == wanted  # each has the event type its strays are checked against
    for role in ("connector", "analyst"):  # the audit connector; `audit verify`, `replay`, `tail` and `export`
        assert wanted <= {g.name for g in grants(topics, "w1") if g.role == role and g.operation == READ}, role
    deciders = replay_families(topics, Settings())
    assert set(deciders) == {n for n in wanted if n.endswith(".events")}
    for name, (aggregate, _) in deciders.items():  # a decider's own fold skips what is not its family's
        assert aggregate.event_type is families(topics)[name], name


def test_rows_of_every_audited_topic_say_who_what_when_and_correlation():
    codec, topics = default_codec(), Topics("x", 3)
    for offset, (topic, event) in enumerate(samples(topics).items()):
        key, value, headers = codec.message(event, "tests", correlation_id="req-9")
        if topic != topics.alerts:  # the matcher writes alerts as itself: no principal header
            headers = headers + [(PRINCIPAL_HEADER, b"acme/ann")]
        row = audit_fields(log_record(codec, topic, 0, offset, key, headers, value))
        assert stray_reason(codec, families(topics)[topic], key, value, 1 << 20) == "", topic
        assert row["event_type"] == f"hive.v1.{type(event).__name__}" and row["payload"], topic
        assert row["aggregate_id"] == key.decode() and row["event_id"] == f"{key.decode()}/1", topic
        assert row["seq"] == 1 and row["occurred_at"] == 1000 and row["correlation_id"] == "req-9", topic
        assert row["principal"] == (None if topic == topics.alerts else "acme/ann"), topic


HEADER_NAMES = st.sampled_from([PRINCIPAL_HEADER, "ce_correlationid", "ce_id", "a\x00b", "x"])
HEADER_VALUES = st.one_of(st.none(), st.just(b""), st.binary(max_size=6), st.just(b"p\x00q"), st.just(b"\xff"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6))
def test_a_rows_header_columns_are_the_first_of_each_name_as_text_whatever_the_headers(headers):
    """Repeated names, headers without a value, NULs and bytes that are not UTF-8: the columns hold what a walk over
    the record's own headers finds, cleaned of NULs, and the headers column every header as text."""
    codec = default_codec()
    event = next(iter(task.decide(c.SubmitTask("acme:t", "s", 5, name="n", requester="acme/ann",
                                               nodes=(NodeSpec("a", "echo"),)), task.TaskState("acme:t"), 5)))
    row = audit_fields(log_record(codec, "p.task.events", 0, 1, b"acme:t", headers, codec.encode(event)))

    def first(name):
        found = next(((k, v) for k, v in headers if k == name), None)
        return None if found is None or found[1] is None else found[1].decode(errors="replace").replace("\x00", "\ufffd")

    assert row["principal"] == first(PRINCIPAL_HEADER)
    assert row["correlation_id"] == first("ce_correlationid")
    last = {k: "" if v is None else v.decode(errors="replace") for k, v in headers}
    assert row["headers"] == {k.replace("\x00", "\ufffd"): v.replace("\x00", "\ufffd") for k, v in last.items()}
