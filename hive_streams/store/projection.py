"""Writes a batch of log records into SQL in one transaction: audit rows, read models, offsets.

Idempotent: audit rows are unique on (topic, partition, offset), and a record at or before its
partition's last row is not chained again; an event produced twice gets a second row, flagged
`duplicate`. The read models fold with the domain's `evolve`, which skips an event whose seq was
already applied.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

from sqlalchemy import Connection, Engine, select, text, union_all
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from ..audit.chain import GENESIS, link
from ..audit.rows import LogRecord, audit_fields
from ..codec.avro import from_record, to_record
from ..codec.cloudevents import aggregate_id, event_id
from ..domain import agent, reputation, task
from ..domain.events import AgentEvent, LedgerEvent, TaskEvent
from ..domain.ledger import touched_accounts
from ..domain.tenancy import task_tenant
from ..exceptions import RecordsRefused
from .db import append
from .db import insert as _insert
from .models import (accounts, agent_outcomes, agents, audit_log, consumer_offsets, ledger_entries, ledger_postings,
                     tasks)

Position = tuple[str, int]  # (topic, partition)
Place = tuple[str, int, int]  # (topic, partition, offset)
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError)
Head = tuple[int, str]  # (offset, hash) of a partition's last audit row
CACHED_STATES = 20_000  # read-model states a StateCache keeps, of tasks and of agents each


class StateCache:
    """The read-model states (tasks, agents) this process wrote, so a batch folds onto them instead of reading
    their rows back and decoding them. Sound for a reader that sees every event of an aggregate in log order (the
    connector reads every partition from its stored offsets): a cached state and the batch's events then make the
    state a fold from the table's row would. Another writer of the same log folds the same events to the same
    states; its rows at a higher seq are kept by the upsert. `apply_batch` fills it only from a committed batch
    and empties it when a batch fails. Ended tasks are not kept: few get another event, and their outputs are
    the largest states."""

    def __init__(self, size: int = CACHED_STATES):
        self.size = size
        self.kinds: dict[str, OrderedDict] = {"tasks": OrderedDict(), "agents": OrderedDict()}

    def get(self, kind: str, keys: Iterable[str]) -> dict:
        kept, found = self.kinds[kind], {}
        for key in keys:
            if key in kept:
                kept.move_to_end(key)
                found[key] = kept[key]
        return found

    def put(self, kind: str, states: dict) -> None:
        kept = self.kinds[kind]
        for key, state in states.items():
            if getattr(state, "terminal", False):
                kept.pop(key, None)
                continue
            kept[key] = state
            kept.move_to_end(key)
        while len(kept) > self.size:
            kept.popitem(last=False)

    def clear(self) -> None:
        for kept in self.kinds.values():
            kept.clear()


def load_offsets(engine: Engine, consumer: str) -> dict[Position, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(consumer_offsets).where(consumer_offsets.c.consumer == consumer))
        return {(r.topic, r.partition): r.next_offset for r in rows}


def apply_batch(engine: Engine, consumer: str, records: Iterable[LogRecord],
                next_offsets: dict[Position, int], now: int,
                skip: frozenset[Place] = frozenset(),
                known: dict[Position, Head] | None = None, states: StateCache | None = None) -> dict[Position, Head]:
    """Returns the chain heads this batch moved. `next_offsets` covers every record read. `known`: heads the caller
    wrote itself (the rest are read from the table); if another writer moved one since, the insert of a row that
    writer already made conflicts on (topic, partition, offset) and the batch rolls back: drop them and retry.

    Every record is audited; records whose event is None (undecodable) or not an event, and those in `skip`,
    are projected nowhere else. Raises RecordsRefused, having written nothing, when a read model cannot hold
    a record not in `skip`: the caller dead-letters those and applies the batch again skipping them.

    `states`: read-model states to fold onto instead of their rows (see StateCache); it is kept up to date."""
    records = list(records)
    events = [r for r in records if isinstance(r.event, (TaskEvent, AgentEvent, LedgerEvent))
              and (r.topic, r.partition, r.offset) not in skip]
    try:
        with engine.begin() as conn:
            heads = _insert_audit(conn, records, now, known or {})
            refused, moved = _project_or_refuse(conn, events, states)
            if refused:
                raise RecordsRefused(refused)  # leaving the block rolls the whole batch back
            _store_offsets(conn, consumer, next_offsets)
        if states is not None:
            if moved is None:  # projected record by record: the states were not gathered
                states.clear()
            else:
                for kind, kept in moved.items():
                    states.put(kind, kept)
    except BaseException:
        if states is not None:
            states.clear()
        raise
    return heads


def _project(conn: Connection, events: list[LogRecord], states: StateCache | None = None) -> dict[str, dict]:
    """Projects the events; returns the tasks' and agents' states they moved, by kind."""
    moved = {"tasks": _project_tasks(conn, [r for r in events if isinstance(r.event, TaskEvent)], states)}
    _record_outcomes(conn, events)
    _project_ledger(conn, [r for r in events if isinstance(r.event, LedgerEvent)])
    moved["agents"] = _project_agents(conn, [r for r in events if isinstance(r.event, AgentEvent)], states)
    return moved


def _project_or_refuse(conn: Connection, events: list[LogRecord],
                       states: StateCache | None = None) -> tuple[dict[Place, str], dict[str, dict] | None]:
    """Projects the events; when that fails, tries each on its own to name the ones the read models refuse.
    A lost connection is not a refusal: it is raised. Returns the refused and, when projected at once, the
    states that moved (None when projected one by one)."""
    if not events:
        return {}, {}
    try:
        with conn.begin_nested():
            return {}, _project(conn, events, states)
    except UNAVAILABLE:
        raise
    except Exception:
        pass
    refused = {}
    for r in events:
        try:
            with conn.begin_nested():
                _project(conn, [r])
        except UNAVAILABLE:
            raise
        except Exception as exc:
            refused[(r.topic, r.partition, r.offset)] = _why(exc)
    return refused, None


def _why(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"read model refused it: {type(exc).__name__}: {text[0] if text else ''}"[:500]


def chain_heads(conn: Connection, positions: Iterable[Position]) -> dict[Position, Head]:
    """The last row of each partition, in one round trip (one index probe a partition)."""
    lasts = [select(audit_log.c.topic, audit_log.c.partition, audit_log.c.offset, audit_log.c.hash)
             .where(audit_log.c.topic == topic, audit_log.c.partition == partition)
             .order_by(audit_log.c.offset.desc()).limit(1).subquery() for topic, partition in sorted(positions)]
    if not lasts:
        return {}
    rows = conn.execute(union_all(*(select(last) for last in lasts)))
    return {(r.topic, r.partition): (r.offset, r.hash) for r in rows}


# One index probe on (topic, event_id) a wanted event, whatever the statistics: with an `IN` list on a topic whose
# rows are not analysed yet (every new deployment's first minutes) PostgreSQL scans the topic's rows instead.
_SEEN_PG = text("SELECT a.topic, a.partition, a.event_id FROM unnest(CAST(:topics AS text[]), CAST(:ids AS text[])) "
                "AS w(topic, event_id) JOIN LATERAL (SELECT topic, partition, event_id FROM audit_log "
                "WHERE audit_log.topic = w.topic AND audit_log.event_id = w.event_id) AS a ON true")


def _seen(conn: Connection, rows: list[dict]) -> set[tuple[str, int, str]]:
    """(topic, partition, event id) of the rows' events already in the log, in one round trip: an aggregate keeps
    to one partition."""
    wanted = {(row["topic"], row["partition"], row["event_id"]) for row in rows if row["event_id"] is not None}
    if not wanted:
        return set()
    if conn.dialect.name == "postgresql":
        pairs = sorted({(t, e) for t, _, e in wanted})
        found = conn.execute(_SEEN_PG, {"topics": [t for t, _ in pairs], "ids": [e for _, e in pairs]})
    else:
        found = conn.execute(select(audit_log.c.topic, audit_log.c.partition, audit_log.c.event_id).where(
            audit_log.c.topic.in_({t for t, _, _ in wanted}), audit_log.c.event_id.in_({e for _, _, e in wanted})))
    return {key for key in map(tuple, found) if key in wanted}


def _insert_audit(conn: Connection, records: list[LogRecord], now: int,
                  known: dict[Position, Head]) -> dict[Position, Head]:
    """One row per record after its partition's last row, each chained to the one before it."""
    if not records:
        return {}
    records = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    positions = {(r.topic, r.partition) for r in records}
    heads = {position: known[position] for position in positions & known.keys()}
    heads.update(chain_heads(conn, positions - known.keys()))
    rows, moved = [], {}
    for r in records:
        position = (r.topic, r.partition)
        last, prev = heads.get(position, (-1, GENESIS))
        if r.offset <= last:
            continue  # redelivered: chained already
        row = audit_fields(r)
        row.update(recorded_at=now, hash=link(prev, r.offset, row["record_key"], row["record_headers"],
                                              row["record_value"]))
        rows.append(row)
        heads[position] = moved[position] = (r.offset, row["hash"])
    seen = _seen(conn, rows)
    for row in rows:
        key = (row["topic"], row["partition"], row["event_id"])
        row["duplicate"] = row["event_id"] is not None and key in seen
        seen.add(key)
    append(conn, audit_log, rows)
    return moved


def _record_outcomes(conn: Connection, records: list[LogRecord]) -> None:
    rows = []
    for r in records:
        found = reputation.outcome(r.event)
        if found:
            rows.append(dict(event_id=event_id(r.event), agent_id=found[0], task_id=r.event.task_id, kind=found[1],
                             event_type=r.event_type, at=r.event.at))
    if rows:
        conn.execute(_insert(conn, agent_outcomes).on_conflict_do_nothing(), rows)


def _project_ledger(conn: Connection, records: list[LogRecord]) -> None:
    """Entries are inserted once (unique event id); balances move only for entries that were new."""
    if not records:
        return
    rows = [_entry_row(r) for r in records]
    postings = [dict(account=a, event_id=event_id(r.event), seq=r.event.seq) for r in records for a in touched_accounts(r.event)]
    if postings:
        conn.execute(_insert(conn, ledger_postings).on_conflict_do_nothing(), postings)
    stmt = _insert(conn, ledger_entries).on_conflict_do_nothing().returning(ledger_entries.c.event_id)
    new = {row.event_id for row in conn.execute(stmt, rows)} if conn.dialect.name == "postgresql" else \
        _insert_sqlite_entries(conn, rows)
    deltas: dict[tuple[str, str], int] = {}
    for r in records:
        if event_id(r.event) in new:
            for leg in getattr(r.event, "legs", ()):
                deltas[(leg.account, leg.bucket)] = deltas.get((leg.account, leg.bucket), 0) + leg.delta
    for (account, bucket), delta in sorted(deltas.items()):
        stmt = _insert(conn, accounts).values(account=account, available=0, held=0)
        conn.execute(stmt.on_conflict_do_nothing())
        column = accounts.c.available if bucket == "available" else accounts.c.held
        conn.execute(accounts.update().where(accounts.c.account == account).values({column: column + delta}))


def _insert_sqlite_entries(conn: Connection, rows: list[dict]) -> set[str]:
    new = set()
    for row in rows:  # SQLite reports per-statement whether the row went in
        if conn.execute(_insert(conn, ledger_entries).on_conflict_do_nothing(), row).rowcount:
            new.add(row["event_id"])
    return new


def _entry_row(r: LogRecord) -> dict:
    ev = r.event
    return dict(event_id=event_id(ev), seq=ev.seq, event_type=r.event_type, task_id=getattr(ev, "task_id", None),
                escrow_id=getattr(ev, "escrow_id", None), amount=getattr(ev, "amount", 0),
                legs=to_record(getattr(ev, "legs", ())), reason=getattr(ev, "reason", ""), at=ev.at)


def _fold(records: list[LogRecord], loaded: dict, new_state, evolve) -> dict:
    """aggregate id -> (state, first record) for every aggregate whose state moved."""
    states = dict(loaded)
    firsts: dict[str, LogRecord] = {}
    for r in records:
        key = aggregate_id(r.event)
        firsts.setdefault(key, r)
        states[key] = evolve(states.get(key) or new_state(key), r.event)
    return {k: (s, firsts[k]) for k, s in states.items() if k not in loaded or s.seq > loaded[k].seq}


def _upsert(conn: Connection, table, key: str, rows: list[dict], keep: tuple[str, ...] = ()) -> None:
    if not rows:
        return
    stmt = _insert(conn, table)
    changes = {c: stmt.excluded[c] for c in rows[0] if c != key and c not in keep}
    conn.execute(stmt.on_conflict_do_update(index_elements=[key], set_=changes,
                                            where=table.c.seq < stmt.excluded.seq), rows)


def _loaded(conn: Connection, table, key, cls, ids: set[str], states: StateCache | None, kind: str) -> dict:
    """The states of these aggregates before the batch: from the cache, the rest from their rows."""
    loaded = states.get(kind, ids) if states is not None else {}
    wanted = ids - loaded.keys()
    if wanted:
        rows = conn.execute(select(key, table.c.state).where(key.in_(wanted)))
        loaded.update((r[0], from_record(cls, r.state)) for r in rows)
    return loaded


def _project_tasks(conn: Connection, records: list[LogRecord], states: StateCache | None = None) -> dict:
    loaded = _loaded(conn, tasks, tasks.c.task_id, task.TaskState, {r.event.task_id for r in records}, states,
                     "tasks")
    moved = _fold(records, loaded, task.TaskState, task.evolve)
    _upsert(conn, tasks, "task_id", [_task_row(s, first) for s, first in moved.values()],
            keep=("first_partition", "first_offset"))
    return {k: s for k, (s, _) in moved.items()}


def _task_row(s: task.TaskState, first: LogRecord) -> dict:
    return dict(task_id=s.task_id, tenant=task_tenant(s.task_id), status=s.status, name=s.name, requester=s.requester, priority=s.priority,
                agent_id=s.agent_id, attempt=s.attempt, seq=s.seq, reason=s.reason,
                submitted_at=s.submitted_at, updated_at=s.updated_at, state=to_record(s),
                first_partition=first.partition, first_offset=first.offset)


def _project_agents(conn: Connection, records: list[LogRecord], states: StateCache | None = None) -> dict:
    loaded = _loaded(conn, agents, agents.c.agent_id, agent.AgentState, {r.event.agent_id for r in records}, states,
                     "agents")
    moved = _fold(records, loaded, agent.AgentState, agent.evolve)
    _upsert(conn, agents, "agent_id", [_agent_row(s) for s, _ in moved.values()])
    return {k: s for k, (s, _) in moved.items()}


def _agent_row(s: agent.AgentState) -> dict:
    return dict(agent_id=s.agent_id, name=s.name, status=s.status, capabilities=to_record(s.capabilities),
                slots=s.slots, holding=len(s.holding), last_seen=s.last_seen, seq=s.seq, state=to_record(s))


def _store_offsets(conn: Connection, consumer: str, next_offsets: dict[Position, int]) -> None:
    if not next_offsets:
        return
    rows = [dict(consumer=consumer, topic=t, partition=p, next_offset=o) for (t, p), o in next_offsets.items()]
    stmt = _insert(conn, consumer_offsets)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["consumer", "topic", "partition"], set_={"next_offset": stmt.excluded.next_offset},
        where=consumer_offsets.c.next_offset < stmt.excluded.next_offset), rows)  # never move backwards
