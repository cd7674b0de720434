import io
import json
import shutil
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from hive_streams.codec import AvroCodec, SchemaRegistry, default_codec
from hive_streams.codec.avro import MAGIC
from hive_streams.codec.history import incompatibilities, path_for, sample, snapshot, unreleased
from hive_streams.codec.registry import fingerprint_of, released
from hive_streams.codec.release import main as release
from hive_streams.domain import events as e
from hive_streams.exceptions import CodecError

codec = default_codec()
registry = codec.registry
RELEASE = "python -m hive_streams.codec.release"


def history():
    files = [path for _, path in released(registry.history_dir)]
    assert files, f"{registry.history_dir} is empty: run `{RELEASE}`"
    return files


def test_every_current_schema_is_released():
    missing = [f"{entry.group}/{entry.name.rsplit('.', 1)[-1]}.avsc" for entry in unreleased(registry)]
    assert not missing, f"schemas changed without a release: {', '.join(missing)}; run `{RELEASE}` and commit schemas/history/"


def test_the_current_schemas_read_every_released_version():
    problems = incompatibilities(registry)
    assert not problems, "incompatible schema change (new fields need defaults; types change only as Avro resolution allows):\n" + "\n".join(problems)


def test_records_of_every_released_version_decode_into_the_current_class():
    for path in history():
        writer = parse_schema(json.loads(path.read_text()))
        body = io.BytesIO()
        schemaless_writer(body, writer, sample(writer))
        decoded = codec.decode(MAGIC + fingerprint_of(writer) + body.getvalue())
        assert type(decoded) is registry.by_name[writer["name"]].cls, path.name


def test_history_files_are_never_edited():
    for path in history():
        name, fp = path.name.split(".")[:2]
        schema = parse_schema(json.loads(path.read_text()))
        assert (schema["name"], fingerprint_of(schema).hex()) == (f"hive.v1.{name}", fp), (
            f"{path} was edited; released schemas are immutable: restore it (git checkout) and change schemas/ instead")


@pytest.fixture
def schemas(tmp_path):
    """A private copy of schemas/ (history included) with everything current released."""
    copy = shutil.copytree(registry.dir, tmp_path / "schemas")
    snapshot(SchemaRegistry(copy))
    return copy


def edit(path: Path, change) -> None:
    schema = json.loads(path.read_text())
    change(schema["fields"])
    path.write_text(json.dumps(schema, indent=2))


def test_a_field_added_with_a_default_reads_old_records(schemas, capsys):
    event = e.TaskRejected("t1", 3, 1000, "no agent fits")
    old = AvroCodec(SchemaRegistry(schemas)).encode(event)
    edit(schemas / "events/TaskRejected.avsc", lambda fields: fields.append({"name": "retryable", "type": "boolean", "default": False}))
    new = SchemaRegistry(schemas)
    assert [entry.name for entry in unreleased(new)] == ["hive.v1.TaskRejected"]

    version = new.by_fingerprint[old[2:10]]
    assert version.reader is new.entry_for(e.TaskRejected).schema
    assert new.entry_for(e.TaskRejected).reader is None  # the current version decodes without resolution
    assert schemaless_reader(io.BytesIO(old[10:]), version.schema, version.reader) == {
        "task_id": "t1", "seq": 3, "at": 1000, "reason": "no agent fits", "retryable": False}
    assert AvroCodec(new).decode(old) == event
    assert AvroCodec(new).encode(event)[2:10] != old[2:10]

    assert release(str(schemas)) == 0
    assert capsys.readouterr().out == f"added {path_for(new, new.entry_for(e.TaskRejected))}\n"
    assert not unreleased(SchemaRegistry(schemas)) and not incompatibilities(SchemaRegistry(schemas))


def test_changing_a_nested_type_is_a_new_version_of_every_record_using_it(schemas):
    event = e.TaskSubmitted("t1", 1, 1000, "demo", "alice", ())
    old = AvroCodec(SchemaRegistry(schemas)).encode(event)
    edit(schemas / "types/NodeSpec.avsc", lambda fields: fields.append({"name": "image", "type": "string", "default": ""}))
    new = SchemaRegistry(schemas)
    assert "hive.v1.TaskSubmitted" in {entry.name for entry in unreleased(new)}
    assert new.entry_for(e.TaskSubmitted).fingerprint != old[2:10]
    assert AvroCodec(new).decode(old) == event


@pytest.mark.parametrize("change, field", [
    (lambda fields: fields.append({"name": "retryable", "type": "boolean"}), "retryable"),
    (lambda fields: fields[3].update(type="long"), "reason"),
    (lambda fields: fields.pop(3), "reason"),
], ids=["field added without a default", "type changed", "field removed that the class requires"])
def test_an_incompatible_change_is_reported_and_not_released(schemas, change, field, capsys):
    old = AvroCodec(SchemaRegistry(schemas)).encode(e.TaskRejected("t1", 3, 1000, "no agent fits"))
    edit(schemas / "events/TaskRejected.avsc", change)
    new = SchemaRegistry(schemas)
    [problem] = incompatibilities(new)
    assert problem.startswith("hive.v1.TaskRejected: records written with TaskRejected.") and f"{field}" in problem
    with pytest.raises(CodecError):
        AvroCodec(new).decode(old)
    assert release(str(schemas)) == 1
    assert field in capsys.readouterr().err and unreleased(new)
