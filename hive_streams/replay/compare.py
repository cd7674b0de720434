"""Differences between what is kept (read-model rows, snapshot states) and what the log folds to, by key."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SHOWN = 160  # characters of a value in a report


@dataclass(frozen=True)
class Difference:
    where: str  # a table, or a snapshot's topic[partition]
    key: str
    kind: str  # "changed", "missing" (kept nowhere, the log has it), "extra" (kept, the log has no such thing)
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.where} {self.key}: {self.kind}{': ' + self.detail if self.detail else ''}"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 1] + "…"


def _structured(value) -> bool:
    return (dataclasses.is_dataclass(value) and not isinstance(value, type)) or isinstance(value, Mapping)


def _fields(value) -> dict:
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return dict(value)


def changed_fields(kept, folded) -> str:
    """Each field whose values differ, as `name: kept → folded`; a plain value (a count, a set): `kept → folded`."""
    if not (_structured(kept) and _structured(folded)):
        return f"{_shown(kept)} → {_shown(folded)}"
    a, b = _fields(kept), _fields(folded)
    names = [n for n in dict.fromkeys([*a, *b]) if a.get(n) != b.get(n)]
    return "; ".join(f"{n}: {_shown(a.get(n))} → {_shown(b.get(n))}" for n in names)


def compare(where: str, kept: dict, folded: dict) -> list[Difference]:
    """kept and folded: key -> row (a mapping) or state (a dataclass); keys in sorted order."""
    out = []
    for key in sorted(kept.keys() | folded.keys(), key=str):
        if key not in folded:
            out.append(Difference(where, _key(key), "extra", "kept, but the log folds to no such thing"))
        elif key not in kept:
            out.append(Difference(where, _key(key), "missing", "the log folds to it, nothing is kept"))
        elif kept[key] != folded[key]:
            out.append(Difference(where, _key(key), "changed", changed_fields(kept[key], folded[key])))
    return out


def _key(key) -> str:
    if isinstance(key, bytes):
        return key.decode(errors="replace")
    if isinstance(key, tuple):
        return "/".join(map(str, key))
    return str(key)
