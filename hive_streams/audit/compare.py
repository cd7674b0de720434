"""Compares one partition's audit rows with its committed records and the heads published for it. Pure."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping

from .chain import GENESIS, link
from .checkpoints import Head
from .rows import LogRecord, audit_fields

COMPARED = ("record_key", "record_headers", "record_value", "hash", "duplicate", "event_id", "aggregate_id", "seq",
            "event_type", "occurred_at", "payload", "headers", "principal", "correlation_id")


@dataclass(frozen=True, order=True)
class Finding:
    topic: str
    partition: int
    offset: int
    kind: str  # modified, deleted, inserted, missing, checkpoint
    detail: str


@dataclass
class Outcome:
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0  # rows compared with their records
    pending: int = 0  # committed records the connector has not reached yet


def expected_rows(records: list[LogRecord]) -> dict[int, dict]:
    """offset -> the row the connector must have written for each record, chained along the log."""
    out, prev, seen = {}, GENESIS, set()
    for r in records:
        row = audit_fields(r)
        row["hash"] = prev = link(prev, r.offset, row["record_key"], row["record_headers"], row["record_value"])
        row["duplicate"] = row["event_id"] in seen
        if row["event_id"] is not None:
            seen.add(row["event_id"])
        out[r.offset] = row
    return out


def _same(a, b) -> bool:
    if isinstance(a, (dict, list, tuple)) or isinstance(b, (dict, list, tuple)):
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    if isinstance(a, memoryview) or isinstance(b, memoryview):
        return bytes(a) == bytes(b)
    return a == b


def compare(topic: str, partition: int, records: list[LogRecord], rows: Mapping[int, Mapping],
            progress: int | None, heads: list[Head]) -> Outcome:
    """`rows`: offset -> audit row; `progress`: the connector's next offset for the partition."""
    expected = expected_rows(records)
    out = Outcome()
    last_row = max((offset for offset in rows if offset in expected), default=-1)  # inserted rows don't count

    def found(offset: int, kind: str, detail: str) -> None:
        out.findings.append(Finding(topic, partition, offset, kind, detail))

    for offset in sorted(set(expected) | set(rows)):
        want, row = expected.get(offset), rows.get(offset)
        if row is None:
            if offset < last_row:
                found(offset, "deleted", "no row for this committed record, though later rows exist")
            elif progress is not None and offset < progress:
                found(offset, "missing", "the connector recorded it as projected, but no row holds it")
            else:
                out.pending += 1
        elif want is None:
            found(offset, "inserted", "no committed record at this position")
        else:
            out.checked += 1
            differ = [name for name in COMPARED if not _same(row[name], want[name])]
            if differ:
                found(offset, "modified", "differs from the log in " + ", ".join(differ))
    for head in {(h.offset, h.hash): h for h in heads}.values():
        row, want = rows.get(head.offset), expected.get(head.offset)
        if want is not None and want["hash"] != head.hash:
            found(head.offset, "checkpoint", f"the head published at this offset disagrees with the log ({head.hash[:12]})")
        if row is None:
            found(head.offset, "checkpoint", f"a published head ({head.hash[:12]}) names this row, which is gone")
        elif row["hash"] != head.hash:
            found(head.offset, "checkpoint", f"hash {str(row['hash'])[:12]} is not the published head {head.hash[:12]}")
    out.findings.sort()
    return out
