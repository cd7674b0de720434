"""Loads schemas/ and schemas/history/ and pairs every Avro record with its domain class."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from ..domain import agent, callback, commands, events, execution_records, ledger, model, schedule, task, trigger
from ..exceptions import CodecError

NAMESPACE = "hive.v1"
GROUPS = ("types", "events", "commands", "state")
DOMAIN_MODULES = (model, events, commands, task, agent, ledger, execution_records, schedule, trigger, callback)


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    schema: dict  # the (parsed) schema records with this fingerprint were written with
    fingerprint: bytes
    group: str
    source: dict = field(repr=False)  # self-contained JSON: named types inlined, as history stores it
    reader: dict | None = None  # for a released older version: the current schema to resolve into


class SchemaRegistry:
    def __init__(self, schemas_dir: str | Path, history_dir: str | Path | None = None):
        self.dir = Path(schemas_dir)
        self.history_dir = Path(history_dir) if history_dir else self.dir / "history"
        self.raw: dict[str, dict] = {}
        self.by_name: dict[str, Entry] = {}
        self.by_fingerprint: dict[bytes, Entry] = {}
        self.by_class: dict[type, Entry] = {}
        for group in GROUPS:
            for path in sorted((self.dir / group).glob("*.avsc")):
                self._load(path, group)
        for group, path in released(self.history_dir):
            self._load_released(path, group)

    def _load(self, path: Path, group: str) -> None:
        raw = json.loads(path.read_text())
        source = _inline(raw, self.raw, set())
        parsed = parse_schema(source)
        self.raw[_fullname(raw)] = raw
        cls = _domain_class(raw["name"])
        if cls is None:
            raise CodecError(f"{path}: no domain type named {raw['name']}")
        entry = Entry(f"{NAMESPACE}.{raw['name']}", cls, parsed, fingerprint_of(parsed), group, source)
        self.by_name[entry.name] = entry
        self.by_fingerprint[entry.fingerprint] = entry
        self.by_class[cls] = entry

    def _load_released(self, path: Path, group: str) -> None:
        source = json.loads(path.read_text())
        parsed = parse_schema(source)
        fp = fingerprint_of(parsed)
        current = self.by_name.get(parsed["name"])
        # the current version decodes without resolution; a removed record stays unknown
        if fp in self.by_fingerprint or current is None:
            return
        self.by_fingerprint[fp] = Entry(current.name, current.cls, parsed, fp, group, source, reader=current.schema)

    def entry_for(self, obj_or_cls) -> Entry:
        cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
        try:
            return self.by_class[cls]
        except KeyError:
            raise CodecError(f"no schema for {cls.__name__}") from None


def fingerprint_of(parsed: dict) -> bytes:
    """CRC-64-AVRO of the parsing canonical form of a self-contained schema, as the Avro spec defines it."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def released(history_dir: Path) -> Iterator[tuple[str, Path]]:
    for group in GROUPS:
        for path in sorted((history_dir / group).glob("*.avsc")):
            yield group, path


def _inline(schema, known: dict, seen: set):
    """The schema with each named type it references defined in place at its first use."""
    if isinstance(schema, str):
        name = schema if schema in known else f"{NAMESPACE}.{schema}"
        return _inline(known[name], known, seen) if name in known and name not in seen else schema
    if isinstance(schema, list):
        return [_inline(s, known, seen) for s in schema]
    out = dict(schema)
    if out.get("type") in ("record", "error", "enum", "fixed"):
        seen.add(_fullname(out))
    elif isinstance(out.get("type"), (dict, list)):
        out["type"] = _inline(out["type"], known, seen)
    if "fields" in out:
        out["fields"] = [dict(f, type=_inline(f["type"], known, seen)) for f in out["fields"]]
    for key in ("items", "values"):
        if key in out:
            out[key] = _inline(out[key], known, seen)
    return out


def _fullname(schema: dict) -> str:
    name = schema["name"]
    return name if "." in name else f"{schema.get('namespace', NAMESPACE)}.{name}"


def _domain_class(name: str) -> type | None:
    for module in DOMAIN_MODULES:
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return cls
    return None
