import json
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader
import io

from hive_streams.codec import default_codec
from hive_streams.codec.registry import GROUPS
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.model import NodeSpec, Requirement
from hive_streams.domain.task import TaskState, fold
from hive_streams.exceptions import CodecError, TruncatedRecordError, UnknownSchemaError

codec = default_codec()
SUBMIT = c.SubmitTask("t1", "cmd1", 1000, "demo", "alice", (NodeSpec("a", "echo"), NodeSpec("b", "shell", '{"command": "true"}', ("a",))),
                      priority=3, requires=(Requirement("gpu", 0.5),))


def test_round_trip_every_kind_of_record():
    for obj in [SUBMIT, e.TaskValidated("t1", 2, 5, (Requirement("echo"),), 3), e.SlotReserved("a1", 4, 9, "t1"),
                fold([e.TaskSubmitted("t1", 1, 1, "n", "r", SUBMIT.nodes)], "t1")]:
        assert codec.decode(codec.encode(obj)) == obj


def test_single_object_encoding_is_readable_without_our_code():
    data = codec.encode(SUBMIT)
    assert data[:2] == b"\xc3\x01"
    schema_dir = Path(__file__).parent.parent / "schemas"
    named = {}
    for group in ("types",):
        for p in sorted((schema_dir / group).glob("*.avsc")):
            parse_schema(json.loads(p.read_text()), named_schemas=named)
    schema = parse_schema(json.loads((schema_dir / "commands" / "SubmitTask.avsc").read_text()), named_schemas=named)
    record = schemaless_reader(io.BytesIO(data[10:]), schema, None)
    assert record["name"] == "demo" and record["nodes"][1]["depends_on"] == ["a"]


def test_bad_records_raise_typed_errors():
    data = codec.encode(SUBMIT)
    with pytest.raises(TruncatedRecordError):
        codec.decode(data[:-5])
    with pytest.raises(TruncatedRecordError):
        codec.decode(data[:4])
    with pytest.raises(UnknownSchemaError):
        codec.decode(b"\xc3\x01" + b"\xff" * 8 + data[10:])
    with pytest.raises(CodecError):
        codec.decode(b"garbage that is long enough")
    with pytest.raises(CodecError):
        codec.decode(data + b"\x00")


def test_every_domain_record_has_a_schema_and_every_schema_a_type():
    from hive_streams.domain import events as ev_mod, commands as cmd_mod
    for cls in ev_mod.TASK_EVENTS + ev_mod.AGENT_EVENTS + cmd_mod.TASK_COMMANDS + cmd_mod.AGENT_COMMANDS + (TaskState,):
        assert codec.registry.entry_for(cls).name == f"hive.v1.{cls.__name__}"
    assert set(GROUPS) == {"types", "events", "commands", "state"}


def test_headers_are_cloudevents_binary_mode():
    headers = dict(codec.headers(e.TaskValidated("t1", 2, 1_700_000_000_000), "/test", correlation_id="corr"))
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == b"t1/2"
    assert headers["ce_type"] == b"hive.v1.TaskValidated"
    assert headers["ce_time"] == b"2023-11-14T22:13:20.000Z"
    assert headers["ce_correlationid"] == b"corr"
    assert codec.key(e.TaskValidated("t1", 2, 1)) == b"t1"
