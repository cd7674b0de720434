"""schemas/history/: every released writer schema, one immutable file per version, and the compatibility rule."""
from __future__ import annotations

import io
import json
from pathlib import Path

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from .avro import from_record
from .registry import Entry, SchemaRegistry, released

PRIMITIVES = {"null": None, "boolean": True, "int": 1, "long": 1, "float": 1.5, "double": 1.5, "bytes": b"x", "string": "x"}


def path_for(registry: SchemaRegistry, entry: Entry) -> Path:
    return registry.history_dir / entry.group / f"{entry.name.rsplit('.', 1)[-1]}.{entry.fingerprint.hex()}.avsc"


def unreleased(registry: SchemaRegistry) -> list[Entry]:
    return [entry for entry in registry.by_name.values() if not path_for(registry, entry).exists()]


def snapshot(registry: SchemaRegistry) -> list[Path]:
    added = []
    for entry in unreleased(registry):
        path = path_for(registry, entry)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entry.source, indent=2) + "\n")
        added.append(path)
    return added


def incompatibilities(registry: SchemaRegistry) -> list[str]:
    """Every released version whose records the current schemas cannot read."""
    problems = []
    for _, path in released(registry.history_dir):
        old = parse_schema(json.loads(path.read_text()))
        current = registry.by_name.get(old["name"])
        if current is None:
            problems.append(f"{old['name']}: released as {path.name} but no longer in {registry.dir}; its records would be unreadable")
            continue
        error = unreadable(old, current.schema, current.cls)
        if error:
            problems.append(f"{current.name}: records written with {path.name} cannot be read now: {error}")
    return problems


def unreadable(writer: dict, reader: dict, cls: type | None = None) -> str | None:
    """Why records written with `writer` fail to resolve to `reader` (both parsed) and then build `cls`."""
    for record in (sample(writer, defaults=True), sample(writer, defaults=False)):
        data = io.BytesIO()
        schemaless_writer(data, writer, record)
        try:
            resolved = _read(data, writer, reader)
        except SchemaResolutionError as exc:
            # resolve one reader field at a time to name the culprits
            bad = [f["name"] for f in reader["fields"] if not _reads(data, writer, dict(reader, fields=[f]))]
            return f"field {', '.join(bad) or '?'}: {exc}"
        if cls is not None:
            try:
                from_record(cls, resolved)
            except TypeError as exc:  # e.g. a field removed from the schema that the class still requires
                return f"{cls.__name__} cannot be built from it: {exc}"
    return None


def sample(schema: dict, defaults: bool = True, named: dict | None = None):
    """A record of a parsed schema: field defaults where present, or simple values; with defaults=False the
    last branch of every union and one item per array and map, so nested types get exercised too."""
    named = schema.get("__named_schemas", {}) if named is None else named
    if isinstance(schema, str):
        return PRIMITIVES[schema] if schema in PRIMITIVES else sample(named[schema], defaults, named)
    if isinstance(schema, list):
        return sample(schema[0] if defaults else schema[-1], defaults, named)
    kind = schema["type"]
    if kind in ("record", "error"):
        return {f["name"]: f["default"] if defaults and "default" in f else sample(f["type"], defaults, named)
                for f in schema["fields"]}
    if kind == "array":
        return [sample(schema["items"], defaults, named)]
    if kind == "map":
        return {"k": sample(schema["values"], defaults, named)}
    if kind == "enum":
        return schema["symbols"][0 if defaults else -1]
    if kind == "fixed":
        return b"\0" * schema["size"]
    return sample(kind, defaults, named)


def _read(data: io.BytesIO, writer: dict, reader: dict):
    data.seek(0)
    return schemaless_reader(data, writer, reader)


def _reads(data: io.BytesIO, writer: dict, reader: dict) -> bool:
    try:
        _read(data, writer, reader)
        return True
    except SchemaResolutionError:
        return False
