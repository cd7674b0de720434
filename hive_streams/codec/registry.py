"""Loads schemas/ and pairs every Avro record with its domain class."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from ..domain import agent, commands, events, model, task
from ..exceptions import CodecError

NAMESPACE = "hive.v1"
GROUPS = ("types", "events", "commands", "state")
DOMAIN_MODULES = (model, events, commands, task, agent)


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    schema: dict
    fingerprint: bytes
    group: str


class SchemaRegistry:
    def __init__(self, schemas_dir: str | Path):
        self.dir = Path(schemas_dir)
        self.named: dict = {}
        self.by_name: dict[str, Entry] = {}
        self.by_fingerprint: dict[bytes, Entry] = {}
        self.by_class: dict[type, Entry] = {}
        for group in GROUPS:
            for path in sorted((self.dir / group).glob("*.avsc")):
                self._load(path, group)

    def _load(self, path: Path, group: str) -> None:
        raw = json.loads(path.read_text())
        parsed = parse_schema(raw, named_schemas=self.named)
        canonical = to_parsing_canonical_form(parsed)
        fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        cls = _domain_class(raw["name"])
        if cls is None:
            raise CodecError(f"{path}: no domain type named {raw['name']}")
        entry = Entry(f"{NAMESPACE}.{raw['name']}", cls, parsed, fp, group)
        self.by_name[entry.name] = entry
        self.by_fingerprint[fp] = entry
        self.by_class[cls] = entry

    def entry_for(self, obj_or_cls) -> Entry:
        cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
        try:
            return self.by_class[cls]
        except KeyError:
            raise CodecError(f"no schema for {cls.__name__}") from None


def _domain_class(name: str) -> type | None:
    for module in DOMAIN_MODULES:
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return cls
    return None
