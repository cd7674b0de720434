"""The matcher's folded state as one JSON document, with the event offsets it reflects. Pure.

JSON, never pickle: whoever can write the snapshots topic must not be able to run code in the worker. Sets are
written sorted and rebuilt as the type they were, tuples as tuples, dicts in their order. Needs are written once
each (most queued tasks share a few) and referred to by their place in that list; a waiting task is a row.
The document is written in pieces of at most ROWS entries of a map, so the worker's loop can run between them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable, Iterable, Iterator

from ..codec.avro import from_record, to_record
from ..codec.shapes import check
from ..domain.agent import AgentState
from ..domain.alerts import Alerting, Watch
from ..domain.matching import Market, Need, Waiting
from ..domain.reputation import Record
from ..exceptions import CodecError
from ..metrics.fabric import FabricStats, Histogram

MAGIC = b"HMSNAP1"
VERSION = 4  # 1: alert runs without their completion time and task; 2: each waiting task's need written out in
# full; 3: no assignments counted apart from their slots (refused: the matcher folds from the start)
ROWS = 500  # entries of a map a piece: ~2 ms of encoding
COMPACT = (",", ":")


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
    return assemble(encode_pieces(folded))


def assemble(pieces: Iterable[str]) -> bytes:
    return MAGIC + "".join(pieces).encode()


def encode_pieces(folded: Folded, rows: int | None = None) -> Iterator[str]:
    """The document's text a piece at a time. The state must not change until the last piece is taken: the matcher
    folds nothing while it writes a snapshot."""
    doc = _Object(version=VERSION, positions=[[p.topic, p.partition, p.offset, p.check_id] for p in folded.positions],
                  market=_market(folded.market), stats=_stats(folded.stats), correlations=_Rows(folded.correlations),
                  traces=_Rows(folded.traces), alerts=None if folded.alerts is None else _alerts(folded.alerts))
    return _pieces(doc, rows or ROWS)


class _Object(dict):
    """A JSON object written key by key (its values may be _Rows)."""


class _Rows:
    """A large JSON object (or array) written `rows` entries a piece, each entry made by `make` when its piece is.
    The entries are read when their turn comes: a dict's (key, value) pairs, or any other iterable's items."""
    __slots__ = ("entries", "make", "array")

    def __init__(self, entries, make: Callable | None = None, array: bool = False):
        self.entries = entries.items() if isinstance(entries, dict) else entries
        self.make, self.array = make, array


def _pieces(value, rows: int) -> Iterator[str]:
    if isinstance(value, _Object):
        yield "{"
        for i, (key, inner) in enumerate(value.items()):
            yield f'{"," if i else ""}{json.dumps(key)}:'
            yield from _pieces(inner, rows)
        yield "}"
    elif isinstance(value, _Rows):
        yield "[" if value.array else "{"
        entries, make, sep = iter(value.entries), value.make, ""
        while chunk := list(islice(entries, rows)):
            made = [make(*entry) if make else entry for entry in chunk] if value.array else \
                dict(make(*entry) if make else entry for entry in chunk)
            yield sep + json.dumps(made, separators=COMPACT)[1:-1]
            sep = ","
        yield "]" if value.array else "}"
    else:
        yield json.dumps(value, separators=COMPACT)


def decode(value: bytes) -> Folded:
    """Raises CodecError when it is not a matcher snapshot of this version."""
    if not value or not value.startswith(MAGIC):
        raise CodecError("not a matcher snapshot")
    try:
        doc = json.loads(value[len(MAGIC):])
        if doc["version"] != VERSION:
            raise CodecError(f"matcher snapshot version {doc['version']}, not {VERSION}")
        folded = Folded(tuple(Position(t, int(p), int(o), str(c)) for t, p, o, c in doc["positions"]),
                        _to_market(doc["market"]), _to_stats(doc["stats"]), dict(doc["correlations"]),
                        dict(doc["traces"]), None if doc["alerts"] is None else _to_alerts(doc["alerts"]))
        check(folded, Folded)  # a field of another type would fail every round, or skip events, and stay
        return folded
    except CodecError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise CodecError(f"matcher snapshot does not decode: {exc!r}") from None


def _market(m: Market) -> _Object:
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

    def waiting(k: str, w: Waiting) -> tuple:
        return k, [None if w.task_id == k else w.task_id, place(w.need), w.queued_at, w.not_before, w.pinned_to,
                   sorted(w.avoid), w.proposed_to, w.proposed_at, w.noted]

    return _Object(agents=_Rows(m.agents, _recorded), waiting=_Rows(m.waiting, waiting),
                   needs=_Rows(m.needs, lambda k, n: (k, place(n))),
                   need_table=_Rows(table, array=True),  # read when its turn comes: the two above fill it
                   records=_Rows(m.records, _recorded), tried=_Rows(m.tried, _sorted),
                   refused=_Rows(m.refused, _sorted), task_seq=_Rows(m.task_seq),
                   reserves=_Rows(m.reserves, _triple, array=True),
                   ends=_Rows(m.ends, _triple, array=True),
                   assigns=_Rows(m.assigns, _triple, array=True),
                   slot_agents=_Rows(m.slot_agents, _sorted), dirty=m.dirty)


def _recorded(k: str, v) -> tuple:
    return k, to_record(v)


def _sorted(k: str, v) -> tuple:
    return k, sorted(v)


def _triple(pair: tuple, n: int) -> list:
    return [*pair, n]


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
                  assigns={(a, t): n for a, t, n in d["assigns"]},
                  slot_agents={k: set(v) for k, v in d["slot_agents"].items()},
                  dirty=bool(d["dirty"]))


def _need(table: list[Need], place) -> Need:
    if type(place) is not int or not 0 <= place < len(table):
        raise ValueError(f"need {place!r} is not in the need table")
    return table[place]


def _waiting(key: str, row: list, table: list[Need]) -> Waiting:
    task_id, need, queued_at, not_before, pinned_to, avoid, proposed_to, proposed_at, noted = row
    if task_id is not None and task_id != key:  # the market keys a waiting task by its id: a round could not run
        raise ValueError(f"waiting task {task_id!r} is kept under {key!r}")
    return Waiting(key, _need(table, need), queued_at, not_before, pinned_to, frozenset(avoid), proposed_to,
                   proposed_at, noted)


def _stats(s: FabricStats) -> _Object:
    h = s.completion
    return _Object(ended=dict(s.ended), completion=[list(h.bounds), list(h.counts), h.total, h.sum],
                   submitted_at=_Rows(s.submitted_at), seen=_Rows(s.seen))


def _to_stats(d: dict) -> FabricStats:
    bounds, counts, total, total_sum = d["completion"]
    return FabricStats(dict(d["ended"]), Histogram(tuple(bounds), list(counts), total, total_sum),
                       dict(d["submitted_at"]), dict(d["seen"]))


def _alerts(a: AlertInputs) -> _Object:
    return _Object(agents=_Rows(a.agents, _watch), assigned=_Rows(a.assigned, lambda k, v: (k, list(v))),
                   task_seq=_Rows(a.task_seq), clear=_Rows(a.clear))


def _watch(k: str, w: Watch) -> tuple:
    return k, [w.seq, w.cpu_streak, w.miss_streak, w.miss, w.silent, w.targets, list(w.runs)]


def _to_alerts(d: dict) -> AlertInputs:
    agents = {k: Watch(seq, cpu, miss_streak, miss, silent, dict(targets), [(at, task, s) for at, task, s in runs])
              for k, (seq, cpu, miss_streak, miss, silent, targets, runs) in d["agents"].items()}
    return AlertInputs(agents, {k: (agent, at) for k, (agent, at) in d["assigned"].items()},
                       dict(d["task_seq"]), dict(d["clear"]))
