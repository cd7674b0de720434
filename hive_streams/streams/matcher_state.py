"""The matcher's folded state as one JSON document, with the event offsets it reflects. Pure.

JSON, never pickle: whoever can write the snapshots topic must not be able to run code in the worker. Sets are
written sorted and rebuilt as the type they were, tuples as tuples, dicts in their order. Needs are written once
each (most queued tasks share a few) and referred to by their place in that list; a waiting task is a row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..codec.avro import from_record, to_record
from ..domain.agent import AgentState
from ..domain.alerts import Alerting, Watch
from ..domain.matching import Market, Need, Waiting
from ..domain.reputation import Record
from ..exceptions import CodecError
from ..metrics.fabric import FabricStats, Histogram

MAGIC = b"HMSNAP1"
VERSION = 3  # 1: alert runs without their completion time and task; 2: each waiting task's need written out in full
# (refused: the matcher folds from the start)


@dataclass(frozen=True)
class Position:
    topic: str
    partition: int
    offset: int  # the next offset to fold
    check_id: str = ""  # the ce_id of the event at offset - 1


@dataclass
class AlertInputs:
    """What the alert rules learnt from the matcher's inputs (their alerts are restored from the alerts log)."""
    agents: dict[str, Watch] = field(default_factory=dict)
    assigned: dict[str, tuple[str, int]] = field(default_factory=dict)
    task_seq: dict[str, int] = field(default_factory=dict)
    clear: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, alerting: Alerting) -> "AlertInputs":
        return cls(alerting.agents, alerting.assigned, alerting.task_seq, alerting.clear)

    def into(self, alerting: Alerting) -> None:
        alerting.agents, alerting.assigned, alerting.task_seq = self.agents, self.assigned, self.task_seq
        alerting.clear.update(self.clear)


@dataclass
class Folded:
    positions: tuple[Position, ...]
    market: Market
    stats: FabricStats
    correlations: dict[str, str] = field(default_factory=dict)
    traces: dict[str, str] = field(default_factory=dict)
    alerts: AlertInputs | None = None  # None: the rules were off when it was taken


def encode(folded: Folded) -> bytes:
    doc = {"version": VERSION,
           "positions": [[p.topic, p.partition, p.offset, p.check_id] for p in folded.positions],
           "market": _market(folded.market), "stats": _stats(folded.stats),
           "correlations": folded.correlations, "traces": folded.traces,
           "alerts": None if folded.alerts is None else _alerts(folded.alerts)}
    return MAGIC + json.dumps(doc, separators=(",", ":")).encode()


def decode(value: bytes) -> Folded:
    """Raises CodecError when it is not a matcher snapshot of this version."""
    if not value or not value.startswith(MAGIC):
        raise CodecError("not a matcher snapshot")
    try:
        doc = json.loads(value[len(MAGIC):])
        if doc["version"] != VERSION:
            raise CodecError(f"matcher snapshot version {doc['version']}, not {VERSION}")
        return Folded(tuple(Position(t, int(p), int(o), str(c)) for t, p, o, c in doc["positions"]),
                      _to_market(doc["market"]), _to_stats(doc["stats"]), dict(doc["correlations"]),
                      dict(doc["traces"]), None if doc["alerts"] is None else _to_alerts(doc["alerts"]))
    except CodecError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise CodecError(f"matcher snapshot does not decode: {exc!r}") from None


def _market(m: Market) -> dict:
    table, places = [], {}

    def place(need: Need) -> int:
        # equal is not enough to share: 0.0 and -0.0, or True and 1, must come back as they were
        try:
            key = (need, repr(need.budget), need.priority.__class__)
            at = places.get(key)
        except TypeError:  # a field unhashable (only a forged snapshot makes one): written on its own
            key, at = None, None
        if at is None:
            at = len(table)
            table.append(to_record(need))
            if key is not None:
                places[key] = at
        return at

    return {"agents": {k: to_record(a) for k, a in m.agents.items()},
            "waiting": {k: [None if w.task_id == k else w.task_id, place(w.need), w.queued_at, w.not_before,
                            w.pinned_to, sorted(w.avoid), w.proposed_to, w.proposed_at, w.noted]
                        for k, w in m.waiting.items()},
            "needs": {k: place(n) for k, n in m.needs.items()},
            "need_table": table,
            "records": {k: to_record(r) for k, r in m.records.items()},
            "tried": {k: sorted(v) for k, v in m.tried.items()},
            "refused": {k: sorted(v) for k, v in m.refused.items()},
            "task_seq": m.task_seq,
            "reserves": [[a, t, n] for (a, t), n in m.reserves.items()],
            "ends": [[a, t, n] for (a, t), n in m.ends.items()],
            "slot_agents": {k: sorted(v) for k, v in m.slot_agents.items()},
            "dirty": m.dirty}


def _to_market(d: dict) -> Market:
    table = [from_record(Need, n) for n in d["need_table"]]
    return Market(agents={k: from_record(AgentState, a) for k, a in d["agents"].items()},
                  waiting={k: _waiting(k, w, table) for k, w in d["waiting"].items()},
                  needs={k: _need(table, n) for k, n in d["needs"].items()},
                  records={k: from_record(Record, r) for k, r in d["records"].items()},
                  tried={k: frozenset(v) for k, v in d["tried"].items()},
                  refused={k: frozenset(v) for k, v in d["refused"].items()},
                  task_seq=dict(d["task_seq"]),
                  reserves={(a, t): n for a, t, n in d["reserves"]},
                  ends={(a, t): n for a, t, n in d["ends"]},
                  slot_agents={k: set(v) for k, v in d["slot_agents"].items()},
                  dirty=bool(d["dirty"]))


def _need(table: list[Need], place) -> Need:
    if type(place) is not int or not 0 <= place < len(table):
        raise ValueError(f"need {place!r} is not in the need table")
    return table[place]


def _waiting(key: str, row: list, table: list[Need]) -> Waiting:
    task_id, need, queued_at, not_before, pinned_to, avoid, proposed_to, proposed_at, noted = row
    return Waiting(key if task_id is None else task_id, _need(table, need), queued_at, not_before, pinned_to,
                   frozenset(avoid), proposed_to, proposed_at, noted)


def _stats(s: FabricStats) -> dict:
    h = s.completion
    return {"ended": s.ended, "completion": [list(h.bounds), h.counts, h.total, h.sum],
            "submitted_at": s.submitted_at, "seen": s.seen}


def _to_stats(d: dict) -> FabricStats:
    bounds, counts, total, total_sum = d["completion"]
    return FabricStats(dict(d["ended"]), Histogram(tuple(bounds), list(counts), total, total_sum),
                       dict(d["submitted_at"]), dict(d["seen"]))


def _alerts(a: AlertInputs) -> dict:
    return {"agents": {k: [w.seq, w.cpu_streak, w.miss_streak, w.miss, w.silent, w.targets, list(w.runs)]
                       for k, w in a.agents.items()},
            "assigned": {k: list(v) for k, v in a.assigned.items()},
            "task_seq": a.task_seq, "clear": a.clear}


def _to_alerts(d: dict) -> AlertInputs:
    agents = {k: Watch(seq, cpu, miss_streak, miss, silent, dict(targets), [(at, task, s) for at, task, s in runs])
              for k, (seq, cpu, miss_streak, miss, silent, targets, runs) in d["agents"].items()}
    return AlertInputs(agents, {k: (agent, at) for k, (agent, at) in d["assigned"].items()},
                       dict(d["task_seq"]), dict(d["clear"]))
