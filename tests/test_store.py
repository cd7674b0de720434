from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hive_streams.audit.chain import GENESIS, link
from hive_streams.codec.avro import from_record
from hive_streams.domain import agent, task
from hive_streams.domain import commands as c
from hive_streams.domain.model import Capability, NodeSpec, node_digest
from hive_streams.exceptions import RecordsRefused
from hive_streams.store import LogRecord, apply_batch, create_schema, load_offsets, make_engine
from hive_streams.store.models import TaskRow, audit_log
from hive_streams.store.projection import StateCache
from hive_streams.store.queries import aggregate_offset, get_task, list_agents, list_tasks, task_audit

TOPIC, AGENTS = "x.task.events", "x.agent.events"
NODES = (NodeSpec("fetch", "http"), NodeSpec("summarise", "python", depends_on=("fetch",)))


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'sub' / 'store.db'}")
    create_schema(eng)
    yield eng
    eng.dispose()


def lifecycle(task_id: str) -> list:
    state, events = task.TaskState(task_id), []
    for cmd in (c.SubmitTask(task_id, "c1", 1000, name="digest", requester="ann", nodes=NODES, priority=3),
                c.AssignTask(task_id, "c2", 2000, agent_id="a1"),
                c.ReportNodeCompleted(task_id, "c3", 3000, agent_id="a1", attempt=1, node_id="fetch", output_json='"x"',
                                      digest=node_digest(task_id, 1, "fetch", '"x"'))):
        new = task.decide(cmd, state, cmd.at)
        events += new
        state = _fold(state, new)
    return events


def _fold(state, events):
    for ev in events:
        state = task.evolve(state, ev)
    return state


def records(events, topic=TOPIC, partition=0, start=0) -> list[LogRecord]:
    return [LogRecord(topic, partition, start + i, ev, f"hive.v1.{type(ev).__name__}", {"ce_id": "x"})
            for i, ev in enumerate(events)]


def test_sqlite_engine_uses_wal_and_busy_timeout(engine):
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000


def test_audit_rows_are_unique_on_position_only(engine):
    row = dict(event_id="t1/1", aggregate_id="t1", seq=1, event_type="hive.v1.TaskSubmitted", topic=TOPIC,
               partition=0, offset=0, occurred_at=1, recorded_at=2, payload={}, headers={}, duplicate=False,
               record_headers=b"", hash="0" * 64)
    with engine.begin() as conn:
        conn.execute(insert(audit_log), row)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(audit_log), {**row, "event_id": "t1/2", "seq": 2})
    with engine.begin() as conn:
        conn.execute(insert(audit_log), {**row, "offset": 7, "duplicate": True})  # the same event produced twice
        conn.execute(insert(audit_log), {**row, "offset": 8, "topic": "other"})  # another topic is fine


def test_batch_projects_audit_task_and_offsets(engine):
    events = lifecycle("t1")
    apply_batch(engine, "audit", records(events, partition=2, start=10), {(TOPIC, 2): 10 + len(events)}, now=99)
    with Session(engine) as s:
        got = get_task(s, "t1")
        audit = task_audit(s, "t1")
    assert got["status"] == "running" and got["agent_id"] == "a1" and got["attempt"] == 1
    assert got["seq"] == len(events) and got["priority"] == 3 and got["submitted_at"] == 1000
    assert (got["first_partition"], got["first_offset"]) == (2, 10)
    assert got["nodes"] == [{"id": "fetch", "kind": "http", "depends_on": [], "status": "completed"},
                            {"id": "summarise", "kind": "python", "depends_on": ["fetch"], "status": "pending"}]
    assert got["outputs"] == {"fetch": '"x"'}
    assert [a["event_id"] for a in audit] == [f"t1/{i}" for i in range(1, len(events) + 1)]
    assert audit[0]["event_type"] == "hive.v1.TaskSubmitted" and audit[0]["recorded_at"] == 99
    assert audit[0]["payload"]["nodes"][1]["depends_on"] == ["fetch"]
    assert load_offsets(engine, "audit") == {(TOPIC, 2): 10 + len(events)}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, engine):
    """Either engine, with a topic and a task id of this test's own (the PostgreSQL database is the session's)."""
    if request.param == "sqlite":
        yield engine, TOPIC, "t1"
        return
    pg = make_engine(request.getfixturevalue("pg_url"))
    create_schema(pg)
    run = uuid.uuid4().hex[:8]
    yield pg, f"x{run}.task.events", f"t-{run}"
    pg.dispose()


def test_rows_chain_by_hash_within_a_partition(engine):
    events = lifecycle("t1")
    heads = apply_batch(engine, "audit", records(events[:2]), {(TOPIC, 0): 2}, now=1)
    heads.update(apply_batch(engine, "audit", records(events[2:], start=2), {(TOPIC, 0): len(events)}, now=2))
    assert heads == {(TOPIC, 0): (len(events) - 1, _chain_is_whole(engine))}


def test_redelivery_changes_nothing_and_duplicates_are_flagged(store):
    engine, topic, task_id = store
    events = lifecycle(task_id)
    apply_batch(engine, "audit", records(events, topic), {(topic, 0): len(events)}, now=1)
    with Session(engine) as s:
        before = get_task(s, task_id)
    # the same records again (redelivery), then the same events at new offsets (produced twice)
    apply_batch(engine, "audit", records(events, topic), {(topic, 0): len(events)}, now=2)
    apply_batch(engine, "audit", records(events[:2], topic, start=50), {(topic, 0): 52}, now=3)
    with Session(engine) as s:
        assert get_task(s, task_id) == before
        rows = s.execute(select(audit_log.c.offset, audit_log.c.duplicate).where(audit_log.c.topic == topic)
                         .order_by(audit_log.c.offset)).all()
        assert rows == [(i, False) for i in range(len(events))] + [(50, True), (51, True)]
        assert {a["recorded_at"] for a in task_audit(s, task_id)} == {1}  # the history leaves duplicates out
    assert load_offsets(engine, "audit")[(topic, 0)] == 52


def _chain_is_whole(engine, topic: str = TOPIC) -> str:
    with Session(engine) as s:
        rows = s.execute(select(audit_log).where(audit_log.c.topic == topic).order_by(audit_log.c.offset)).all()
    prev = GENESIS
    for row in rows:
        assert row.hash == link(prev, row.offset, row.record_key, row.record_headers, row.record_value)
        prev = row.hash
    return prev


def test_heads_a_writer_kept_chain_on_without_reading_the_table(store):
    engine, topic, task_id = store
    events = lifecycle(task_id)
    heads = apply_batch(engine, "audit", records(events[:2], topic), {(topic, 0): 2}, now=1)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    heads.update(apply_batch(engine, "audit", records(events[2:], topic, start=2), {(topic, 0): len(events)}, now=2,
                             known=dict(heads)))
    assert not [q for q in statements if q.lstrip().upper().startswith("SELECT") and '"offset" DESC' in q]
    assert heads == {(topic, 0): (len(events) - 1, _chain_is_whole(engine, topic))}


def test_a_head_another_writer_moved_rolls_the_batch_back_and_reading_it_again_chains_on(store):
    engine, topic, task_id = store
    events = lifecycle(task_id)
    stale = apply_batch(engine, "audit", records(events[:1], topic), {(topic, 0): 1}, now=1)
    apply_batch(engine, "audit", records(events[1:2], topic, start=1), {(topic, 0): 2}, now=2)  # the other writer
    with pytest.raises(IntegrityError):  # offset 1 again: the stale head cannot chain it twice
        apply_batch(engine, "audit", records(events[1:], topic, start=1), {(topic, 0): len(events)}, now=3,
                    known=stale)
    assert load_offsets(engine, "audit")[(topic, 0)] == 2  # nothing of the failed batch stayed
    heads = apply_batch(engine, "audit", records(events[1:], topic, start=1), {(topic, 0): len(events)}, now=3)
    assert heads == {(topic, 0): (len(events) - 1, _chain_is_whole(engine, topic))}


def test_offsets_never_move_backwards(engine):
    apply_batch(engine, "audit", [], {(TOPIC, 0): 10, (TOPIC, 1): 3}, now=1)
    apply_batch(engine, "audit", [], {(TOPIC, 0): 4, (TOPIC, 1): 5}, now=2)
    assert load_offsets(engine, "audit") == {(TOPIC, 0): 10, (TOPIC, 1): 5}
    assert load_offsets(engine, "someone-else") == {}


def test_state_json_round_trips_and_batches_continue_from_it(engine):
    events = lifecycle("t1")
    apply_batch(engine, "audit", records(events[:3]), {(TOPIC, 0): 3}, now=1)
    apply_batch(engine, "audit", records(events[3:], start=3), {(TOPIC, 0): len(events)}, now=2)
    with Session(engine) as s:
        row = s.get(TaskRow, "t1")
        assert from_record(task.TaskState, row.state) == task.fold(events, "t1")
        assert row.first_offset == 0


def test_a_batch_folds_onto_the_states_it_cached_without_reading_their_rows(store):
    engine, topic, task_id = store
    events, states = lifecycle(task_id), StateCache()
    apply_batch(engine, "audit", records(events[:2], topic), {(topic, 0): 2}, now=1, states=states)
    assert states.get("tasks", [task_id]) == {task_id: task.fold(events[:2], task_id)}
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    apply_batch(engine, "audit", records(events[2:], topic, start=2), {(topic, 0): len(events)}, now=2, states=states)
    assert not [q for q in statements if q.lstrip().upper().startswith("SELECT") and "FROM tasks" in q]
    with Session(engine) as s:
        assert from_record(task.TaskState, s.get(TaskRow, task_id).state) == task.fold(events, task_id)


def test_a_cache_behind_another_writer_still_folds_to_the_states_of_the_log(store):
    engine, topic, task_id = store
    events, states = lifecycle(task_id), StateCache()
    apply_batch(engine, "audit", records(events[:1], topic), {(topic, 0): 1}, now=1, states=states)
    apply_batch(engine, "audit", records(events[1:], topic, start=1), {(topic, 0): len(events)}, now=2)  # the other
    apply_batch(engine, "audit", records(events[1:2], topic, start=1), {(topic, 0): 2}, now=3, states=states)
    with Session(engine) as s:  # the row at the higher seq stays
        assert from_record(task.TaskState, s.get(TaskRow, task_id).state) == task.fold(events, task_id)
    assert states.get("tasks", [task_id])[task_id].seq == 2


def test_a_failed_batch_empties_the_cache(pg_engine):
    states = StateCache()
    apply_batch(pg_engine, "audit", records(lifecycle("t1")), {(TOPIC, 0): 3}, now=1, states=states)
    assert states.get("tasks", ["t1"])
    with pytest.raises(RecordsRefused):
        apply_batch(pg_engine, "audit", records(_submitted("t2", budget=float("nan")), start=3), {(TOPIC, 0): 4},
                    now=2, states=states)
    assert states.get("tasks", ["t1"]) == {}


def test_a_state_the_cache_misses_is_read_from_its_row(store):
    engine, topic, task_id = store
    events = lifecycle(task_id)
    apply_batch(engine, "audit", records(events[:2], topic), {(topic, 0): 2}, now=1)  # before this cache
    states = StateCache()
    apply_batch(engine, "audit", records(events[2:], topic, start=2), {(topic, 0): len(events)}, now=2, states=states)
    with Session(engine) as s:
        assert from_record(task.TaskState, s.get(TaskRow, task_id).state) == task.fold(events, task_id)
    assert states.get("tasks", [task_id]) == {task_id: task.fold(events, task_id)}


def test_an_ended_task_is_not_kept(engine):
    events, states = lifecycle("t1"), StateCache()
    state = task.fold(events, "t1")
    cancel = c.CancelTask("t1", "c9", 4000, reason="no longer needed")
    events += task.decide(cancel, state, cancel.at)
    apply_batch(engine, "audit", records(events[:2]), {(TOPIC, 0): 2}, now=1, states=states)
    assert states.get("tasks", ["t1"])
    apply_batch(engine, "audit", records(events[2:], start=2), {(TOPIC, 0): len(events)}, now=2, states=states)
    assert task.fold(events, "t1").terminal and states.get("tasks", ["t1"]) == {}


def test_the_cache_keeps_the_most_recently_used_states():
    states = StateCache(size=2)
    states.put("tasks", {"a": 1, "b": 2})
    states.get("tasks", "a")
    states.put("tasks", {"c": 3})
    assert states.get("tasks", "abc") == {"a": 1, "c": 3}


def test_agents_and_task_listing(engine):
    reg = agent.decide(c.RegisterAgent("a1", "r1", 1000, name="gpu-box", capabilities=(Capability("python"),), slots=2),
                       agent.AgentState("a1"), 1000, 10_000)
    state = _fold_agent(agent.AgentState("a1"), reg)
    reserved = agent.decide(c.ReserveSlot("a1", "r2", 1500, task_id="t1"), state, 1500, 10_000)
    apply_batch(engine, "audit", records(reg + reserved, topic=AGENTS), {(AGENTS, 0): 3}, now=1)
    apply_batch(engine, "audit", records(lifecycle("t1")) + records(lifecycle("t2")[:1], start=20), {}, now=1)
    with Session(engine) as s:
        assert list_agents(s) == [{"agent_id": "a1", "name": "gpu-box", "status": "online",
                                   "capabilities": [{"name": "python", "proficiency": 1.0}], "slots": 2,
                                   "holding": 1, "last_seen": 1000, "seq": 3}]
        assert [t["task_id"] for t in list_tasks(s)] == ["t1", "t2"]  # most recently updated first
        assert [t["task_id"] for t in list_tasks(s, limit=10, status="queued")] == ["t2"]
        assert list_tasks(s, limit=1)[0]["task_id"] == "t1"
        assert task_audit(s, "a1") == [] and get_task(s, "missing") is None


def _fold_agent(state, events):
    for ev in events:
        state = agent.evolve(state, ev)
    return state


@pytest.fixture
def pg_engine(pg_url):
    from hive_streams.infra.postgres import create_database, drop_database
    name = f"store_{uuid.uuid4().hex[:10]}"
    eng = make_engine(create_database(pg_url, name))
    create_schema(eng)
    yield eng
    eng.dispose()
    drop_database(pg_url, name)


def test_a_payload_is_copied_as_the_json_text_it_was_checked_as(pg_engine):
    from sqlalchemy import Column, Integer, MetaData, Table
    from sqlalchemy.dialects.postgresql import JSONB
    from hive_streams.audit.rows import JsonPayload
    from hive_streams.store.db import append
    table = Table("copied", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSONB))
    table.create(pg_engine)
    held = JsonPayload({"n": 1})
    held.json_text = '{"n": 2}'  # unlike its dict only to show which one is written
    with pg_engine.begin() as conn:
        append(conn, table, [dict(id=1, doc=held), dict(id=2, doc={"n": 3}), dict(id=3, doc=None)])
    with pg_engine.connect() as conn:
        assert dict(conn.execute(select(table.c.id, table.c.doc)).all()) == {1: {"n": 2}, 2: {"n": 3}, 3: None}


def _submitted(task_id: str, **fields) -> list:
    return task.decide(c.SubmitTask(task_id, "c1", 1000, **{"name": "n", "requester": "ann", "nodes": NODES, **fields}),
                       task.TaskState(task_id), 1000)


def test_records_a_read_model_refuses_are_named_then_skipped_and_still_audited(pg_engine):
    good, nul, nan = lifecycle("t1"), _submitted("t2", name="bad\x00name"), _submitted("t3", budget=float("nan"))
    batch = records(good + nul + nan)
    bad = {(TOPIC, 0, len(good)), (TOPIC, 0, len(good) + 1)}
    with pytest.raises(RecordsRefused) as refused:
        apply_batch(pg_engine, "audit", batch, {(TOPIC, 0): len(batch)}, now=1)
    assert set(refused.value.refused) == bad
    assert all(why.startswith("read model refused it") for why in refused.value.refused.values())
    assert load_offsets(pg_engine, "audit") == {}  # nothing of the batch was written
    apply_batch(pg_engine, "audit", batch, {(TOPIC, 0): len(batch)}, now=1, skip=frozenset(bad))
    with Session(pg_engine) as s:
        assert get_task(s, "t1")["status"] == "running"
        assert get_task(s, "t2") is None and get_task(s, "t3") is None
        rows = s.execute(select(audit_log.c.offset, audit_log.c.aggregate_id, audit_log.c.payload)
                         .order_by(audit_log.c.offset)).all()
    assert [r.offset for r in rows] == list(range(len(batch)))  # every record audited
    assert rows[len(good)].payload is None and rows[len(good) + 1].payload is None  # not JSON: bytes only
    assert load_offsets(pg_engine, "audit") == {(TOPIC, 0): len(batch)}


def test_an_aggregates_start_is_its_first_audited_offset_or_where_the_audit_log_has_reached(pg_engine):
    one, two = lifecycle("t1"), lifecycle("t2")
    apply_batch(pg_engine, "audit", records(one, partition=1, start=40) + records(two, partition=1, start=43),
                {(TOPIC, 1): 46}, now=1)
    with Session(pg_engine) as s:
        assert aggregate_offset(s, "t2", TOPIC, 1) == 43
        assert aggregate_offset(s, "t1", TOPIC, 1) == 40
        assert aggregate_offset(s, "t1", TOPIC, 0) == 0  # not in that partition: nothing read there yet
        assert aggregate_offset(s, "t9", TOPIC, 1) == 46  # not audited yet: it begins at or after 46
