"""The matcher's snapshot encoding without a broker: every folded state comes back exactly, types included."""
from __future__ import annotations

import asyncio
import copy
import json
import math
import random
from collections import deque
from dataclasses import fields, is_dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hive_streams.codec import default_codec
from hive_streams.domain import events as e
from hive_streams.domain.alerts import Alerting
from hive_streams.domain.matching import Market, Need, Waiting
from hive_streams.domain.model import Capability, Hardware, NodeSpec, Requirement
from hive_streams.codec.avro import to_record
from hive_streams.exceptions import CodecError
from hive_streams.metrics.fabric import FabricStats
from hive_streams.settings import Settings
from hive_streams.streams.matcher import ROUND_SHARE, Matcher
from hive_streams.streams import matcher_snapshot, matcher_state
from hive_streams.streams.matcher_snapshot import SHARE, MatcherSnapshots, encoded
from hive_streams.streams.matcher_state import MAGIC, AlertInputs, Folded, Position, assemble, decode, encode, encode_pieces
from hive_streams.topics import Topics

from .marketplay import Agent, play

TIMEOUT_MS = 10_000
FLEET = (Agent("cheap", 2, 0.5, 1.0, 1.0), Agent("dear", 1, 1.0, 0.6, 2.0), Agent("free", 1, 0.0, 0.8, 1.0))
BURSTS = st.lists(st.lists(st.tuples(st.sampled_from((0, 1, 2)), st.integers(300, 900),
                                     st.sampled_from((None, 1500))), min_size=3, max_size=8), min_size=1, max_size=4)


def same(a, b, where="state") -> None:
    """Equal and of the same types all the way down (a set is not a frozenset, 1 is not 1.0), dicts in order."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if is_dataclass(a):
        for f in fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (set, frozenset)):
        assert a == b, where
    elif isinstance(a, (tuple, list, deque)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


class Fold:
    """What the matcher folds: the market, the fabric figures and the alert rules (their alerts applied)."""

    def __init__(self):
        self.market, self.stats, self.alerting = Market(), FabricStats(), Alerting()

    def __call__(self, event) -> None:
        self.market.observe(event)
        self.stats.observe(event)
        for alert in self.alerting.observe(event):
            self.alerting.record(alert)

    def folded(self, positions=()) -> Folded:
        return Folded(tuple(positions), self.market, self.stats, {"t1": "req-1"}, {"t1": "00-ab-cd-01"},
                      AlertInputs.of(self.alerting))


def round_trip(fold: Fold, positions=()) -> None:
    before = fold.folded(positions)
    after = decode(encode(before))
    same(after.positions, before.positions)
    same(after.market, before.market, "market")
    same(after.stats, before.stats, "stats")
    same(after.correlations, before.correlations)
    same(after.traces, before.traces)
    same(after.alerts, before.alerts, "alerts")
    restored = Alerting()
    after.alerts.into(restored)
    same(AlertInputs.of(restored), AlertInputs.of(fold.alerting), "restored alerts")
    # and it decides as the original does: the same proposals from the same moment
    now = max((a.last_seen for a in before.market.agents.values()), default=0) + 50
    again = decode(encode(before)).market
    assert again.proposals(now, TIMEOUT_MS, 1000, "r") == before.market.proposals(now, TIMEOUT_MS, 1000, "r")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), BURSTS, st.floats(0.05, 1.0))
def test_a_market_cut_anywhere_in_a_played_history_round_trips_exactly(rng, bursts, cut):
    p = play(rng, FLEET, bursts)
    log = sorted(p.records(), key=lambda r: (r[2].at, r[0], r[1]))  # each partition's order kept
    fold = Fold()
    for _, _, event in log[:max(1, int(len(log) * cut))]:
        fold(event)
    at = log[int(len(log) * cut) - 1][2].at
    fold.market.proposals(at, TIMEOUT_MS, 1000, "round")  # round marks: proposed_to, proposed_at, noted
    positions = [Position(f"hive.{part}", part, offset + 1, f"id-{offset}") for part, offset, _ in log[:5]]
    round_trip(fold, positions)


def test_a_whole_played_history_with_a_restart_round_trips_exactly():
    p = play(random.Random(7), FLEET, [[(0, 400, None)] * 6, [(1, 700, 1500)] * 5], restart_at=1200)
    fold = Fold()
    for _, _, event in sorted(p.records(), key=lambda r: (r[2].at, r[0], r[1])):
        fold(event)
    assert fold.stats.ended and fold.market.records  # tasks ended: figures and reputations to keep
    fold.market = p.market  # the live one, with its round marks
    round_trip(fold)


AGENTS, TASKS = ("a0", "a1", "a2"), ("t0", "t1", "t2", "t3")
FIGURE = st.one_of(st.none(), st.floats(0, 200, allow_nan=False), st.just(-0.0))
STEP = st.one_of(
    st.tuples(st.just("register"), st.sampled_from(AGENTS), st.sampled_from((0.0, 0.25, 3.0)),
              st.dictionaries(st.sampled_from(("min_tokens_per_second", "max_response_seconds")), st.floats(0, 50)),
              st.integers(1, 3), st.sampled_from(("", "h100"))),
    st.tuples(st.just("beat"), st.sampled_from(AGENTS), st.floats(0, 100), FIGURE, FIGURE),
    st.tuples(st.just("status"), st.sampled_from(AGENTS), st.sampled_from(("online", "offline")),
              st.sampled_from(("no heartbeat for 9s", "deregistered", "")), st.booleans()),
    st.tuples(st.just("slot"), st.sampled_from(AGENTS), st.sampled_from(TASKS),
              st.sampled_from(("reserved", "released", "no free slot", "already held"))),
    st.tuples(st.just("task"), st.sampled_from(TASKS), st.sampled_from(AGENTS),
              st.sampled_from(("submit", "validate", "pin", "wait", "assign", "retry", "complete", "fail", "cancel",
                               "declined", "escrow refused"))),
    st.tuples(st.just("round"), st.integers(0, 3)),
)


def step(fold: Fold, seq: dict, now: int, s: tuple) -> None:
    def nxt(key: str) -> int:
        seq[key] = seq.get(key, 0) + 1
        return seq[key]
    kind, *args = s
    if kind == "register":
        agent, price, targets, slots, gpu = args
        fold(e.AgentRegistered(agent, nxt(agent), now, agent, (Capability("echo", 0.5), Capability("gpu")), slots,
                               hardware=Hardware(gpu, 80.0 if gpu else 0.0, 8, 32.5), price=price, targets=targets,
                               public_key="key" if price else ""))
    elif kind == "beat":
        agent, cpu, tokens, response = args
        fold(e.AgentHeartbeat(agent, nxt(agent), now, 1, cpu, 12.5, tokens, None, None, tokens, response))
    elif kind == "status":
        agent, status, reason, kept = args  # kept: holds kept until released, as offlines are written now
        fold(e.AgentStatusChanged(agent, nxt(agent), now, status, reason, ("t0",) if status == "offline" else (),
                                  holds_kept=kept and status == "offline"))
    elif kind == "slot":
        agent, task, what = args
        cls = {"reserved": e.SlotReserved, "released": e.SlotReleased}.get(what)
        fold(cls(agent, nxt(agent), now, task) if cls else e.SlotRefused(agent, nxt(agent), now, task, what))
    elif kind == "task":
        task, agent, what = args
        base = (task, nxt(task), now)
        fold({"submit": lambda: e.TaskSubmitted(*base, "n", "acme/ann", (NodeSpec("n", "echo"),), priority=1,
                                                 budget=2.5, requires=(Requirement("echo", 0.25),), queued=True),
              "validate": lambda: e.TaskValidated(*base, (Requirement("gpu", 0.5),), 2, Hardware("h100", 40.0),
                                                  None, "acme/bob"),
              "pin": lambda: e.TaskPinned(*base, agent),
              "wait": lambda: e.TaskWaiting(*base, "every eligible agent is busy"),
              "assign": lambda: e.TaskAssigned(*base, agent, 1, ()),
              "retry": lambda: e.TaskRetryScheduled(*base, agent_id=agent, attempt=1, reason="boom",
                                                    not_before=now + 500),
              "complete": lambda: e.TaskCompleted(*base, agent, ()),
              "fail": lambda: e.TaskFailed(*base, "deadline exceeded", agent),
              "cancel": lambda: e.TaskCancelled(*base, "no longer needed"),
              "declined": lambda: e.TaskAssignmentDeclined(*base, agent, "busy"),
              "escrow refused": lambda: e.EscrowRefused("main", nxt("main"), now, f"x-{task}", task, "acme/ann",
                                                        agent, 250, "no funds")}[what]())
    else:
        fold.market.proposals(now, TIMEOUT_MS, 1000, f"r{args[0]}")
        for alert in fold.alerting.tick(now):
            fold.alerting.record(alert)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4000), STEP), max_size=80))
def test_any_sequence_of_events_and_rounds_round_trips_exactly(steps):
    fold, seq, now = Fold(), {}, 0
    for gap, s in steps:
        now += gap
        step(fold, seq, now, s)
    round_trip(fold, [Position("hive.task.events", 3, 10, "t0/2"), Position("hive.agent.events", 0, 0, "")])


def test_the_matcher_restores_what_it_folded_and_where_it_was():
    codec = default_codec()
    first = Matcher(codec, Topics("m"), Settings(), TIMEOUT_MS)
    first.parts = [TopicPartition("m.task.events", p) for p in (0, 1)]
    events = [e.AgentRegistered("a0", 1, 4, "a0", (Capability("echo"),), 1), e.AgentStatusChanged("a0", 2, 4, "online"),
              e.TaskSubmitted("acme:t", 1, 5, "n", "acme/ann", (NodeSpec("n", "echo"),), queued=True),
              e.TaskPinned("acme:t", 2, 6, "a0")]
    for offset, event in enumerate(events):
        key, value, headers = codec.message(event, "/test", correlation_id="req-1")
        first.observe(SimpleNamespace(topic="m.task.events", partition=1, offset=offset + 4, value=value,
                                       headers=headers))
    truth = decode(encode(first.snapshot())).market
    assert [type(c).__name__ for c in first.market.proposals(7, TIMEOUT_MS, 1000)] == ["ReserveSlot"]
    snapshot = decode(encode(first.snapshot()))
    second = Matcher(codec, Topics("m"), Settings(), TIMEOUT_MS)
    assert snapshot.market.waiting["acme:t"].proposed_to == "a0"  # the old leader's offer, forgotten by the new one
    second._restore(snapshot)
    assert [(p.partition, p.offset) for p in snapshot.positions] == [(0, 0), (1, 8)]
    assert second.seen == first.seen and second.checks == first.checks
    assert second.checks[first.parts[1]] == codec.headers(events[-1], "/test")[1][1].decode()  # its ce_id
    same(second.market, truth)  # a new leader's market is the log's alone
    assert second.correlations == {"acme:t": "req-1"} and second.market.waiting["acme:t"].pinned_to == "a0"


@pytest.mark.parametrize("value", [b"", b"HSNAPM1{}", MAGIC + b"{not json", MAGIC + b'{"version": 2}',
                                   MAGIC + b'{"version": 1, "positions": [[1]]}', MAGIC + b"[]",
                                   MAGIC + b'{"version": 1, "positions": [], "market": {"agents": 3}}',
                                   MAGIC + b'{"version": 2, "positions": [], "market": {}}'])
def test_what_is_not_a_matcher_snapshot_of_this_version_does_not_decode(value):
    with pytest.raises(CodecError):
        decode(value)


def test_a_need_many_tasks_share_is_written_once_and_a_reference_outside_the_table_does_not_decode():
    echo, gpu = Need((Requirement("echo"),)), Need((Requirement("echo"),), Hardware(vram_gb=8.0), priority=2)
    market = Market(waiting={f"acme:t{i}": Waiting(f"acme:t{i}", gpu if i == 3 else Need((Requirement("echo"),)), i)
                             for i in range(5)}, needs={"acme:t0": echo, "acme:t3": gpu})
    value = encode(Folded((), market, FabricStats()))
    doc = json.loads(value[len(MAGIC):])
    assert len(doc["market"]["need_table"]) == 2
    again = decode(value).market
    assert again.waiting == market.waiting and again.needs == market.needs
    for bad in (2, -1, "0", None, 0.0):
        doc["market"]["waiting"]["acme:t1"][1] = bad
        with pytest.raises(CodecError):
            decode(MAGIC + json.dumps(doc).encode())


def test_needs_equal_but_not_alike_come_back_as_they_were():
    needs = {"acme:a": Need(budget=0.0), "acme:b": Need(budget=-0.0), "acme:c": Need(priority=1),
             "acme:d": Need(priority=True)}
    market = Market(waiting={k: Waiting(k, n, 1) for k, n in needs.items()}, needs=dict(needs))
    again = decode(encode(Folded((), market, FabricStats()))).market
    same(again.waiting, market.waiting)
    assert math.copysign(1, again.needs["acme:b"].budget) == -1 and again.needs["acme:d"].priority is True


def test_a_forged_snapshot_fails_as_a_codec_error_even_when_its_json_decodes():
    value = encode(Folded((Position("x", 0, 3, "e"),), Market(), FabricStats()))
    doc = json.loads(value[len(MAGIC):])
    for forged in (value.replace(b'["x",0,3,"e"]', b'["x",0,1e999,"e"]'), MAGIC + b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(CodecError):
            decode(forged)
    need = to_record(Need((Requirement("echo"),)))
    doc["market"].update(need_table=[dict(need, requester={})], needs={"acme:t": 0},
                         waiting={"acme:t": [None, 0, 1, 0, None, [], None, 0, ""]})
    with pytest.raises(CodecError, match=r"\$\.market\.waiting\['acme:t'\]\.need\.requester: dict where str"):
        decode(MAGIC + json.dumps(doc).encode())  # it would fail the matcher later, at each of its starts


def _forge(doc: dict, path: tuple, value) -> bytes:
    forged = copy.deepcopy(doc)
    inner = forged
    for step in path[:-1]:
        inner = inner[step]
    inner[path[-1]] = value
    return MAGIC + json.dumps(forged).encode()


@pytest.mark.parametrize("path, value", [
    (("market", "task_seq", "acme:t0"), "2"), (("market", "reserves", 0, 2), [1]),
    (("market", "assigns", 0, 0), 7), (("market", "agents", "cheap", "slots"), "4"),
    (("market", "agents", "cheap", "holding"), [1]), (("market", "records", "cheap", "completed"), None),
    (("market", "waiting", "acme:t0", 2), "late"), (("market", "waiting", "acme:t0", 6), 3),
    (("market", "need_table", 0, "priority"), "high"), (("market", "slot_agents", "acme:t8"), [1]),
    (("market", "refused", "acme:t2"), [["cheap"]]), (("stats", "submitted_at", "acme:t0"), "5"),
    (("stats", "completion", 1), "counts"), (("correlations",), {"acme:t0": 3}),
    (("alerts", "task_seq"), {"acme:t0": {}}), (("market", "agents", "cheap", "hardware", "cpu_cores"), "8"),
])
def test_a_snapshot_with_any_field_of_another_type_does_not_decode(path, value):
    value_ok = encode(every_section())
    doc = json.loads(value_ok[len(MAGIC):])
    assert decode(value_ok).market.needs  # the untouched document decodes
    with pytest.raises(CodecError):
        decode(_forge(doc, path, value))


def test_a_snapshot_with_a_waiting_task_kept_under_another_id_does_not_decode():
    """Every round would fail on it: the queue keeps a task under its id."""
    value_ok = encode(every_section())
    doc = json.loads(value_ok[len(MAGIC):])
    with pytest.raises(CodecError, match="waiting task 'acme:other' is kept under 'acme:t0'"):
        decode(_forge(doc, ("market", "waiting", "acme:t0", 0), "acme:other"))


def queued(n: int) -> Folded:
    fold = Fold()
    needs = [Need((Requirement("echo"),), priority=i) for i in range(3)]
    fold.market.waiting = {f"acme:t{i}": Waiting(f"acme:t{i}", needs[i % 3], i, avoid=frozenset({"a1"})) for i in range(n)}
    fold.market.needs = {k: w.need for k, w in fold.market.waiting.items()}
    fold.market.reserves, fold.market.slot_agents = {("a1", "acme:t0"): 1, ("a2", "acme:t1"): 1}, {"acme:t0": {"a1"}}
    fold.stats.submitted_at = {k: 5 for k in fold.market.waiting}
    return fold.folded([Position("x", 0, 3, "e")])


def every_section() -> Folded:
    """A little of everything a snapshot holds: agents, reputations and alert inputs from a played history, tasks
    queued with shared needs, held slots and their ends."""
    log = sorted(play(random.Random(3), FLEET[:2], [[(0, 300, None)] * 3]).records(),
                 key=lambda r: (r[2].at, r[0], r[1]))
    fold = Fold()
    for _, _, event in log[:40]:
        fold(event)
    more = queued(3)
    m = fold.market
    m.waiting, m.needs, m.task_seq = more.market.waiting, more.market.needs, {"acme:t0": 2, "acme:t1": 3}
    m.reserves, m.ends = {("cheap", "acme:t9"): 1, ("dear", "acme:t8"): 2}, {("dear", "acme:t8"): 1}
    m.assigns = {("cheap", "acme:t9"): 1, ("dear", "acme:t7"): 1}
    m.slot_agents, m.tried, m.refused = {"acme:t8": {"dear", "cheap"}}, {"acme:t1": frozenset({"dear"})}, {
        "acme:t2": frozenset({"cheap", "dear"})}
    fold.stats.submitted_at, fold.stats.seen = {"acme:t0": 5, "acme:t1": 6}, {"acme:t0": 1, "acme:t1": 2}
    return fold.folded([Position("hive.task.events", 0, 40, "id-39")])


GOLDEN = Path(__file__).parent / "golden" / "matcher_snapshot_v4.bin"  # written by the one-call encoder before pieces


@pytest.mark.parametrize("rows", [1, 2, 7, 1000])
def test_a_snapshot_written_in_pieces_is_the_document_one_call_wrote_whatever_the_piece_size(rows):
    state = every_section()
    assert assemble(encode_pieces(state, rows)) == encode(state) == GOLDEN.read_bytes()
    big = queued(23)
    pieces = list(encode_pieces(big, rows))
    doc = json.loads(assemble(pieces)[len(MAGIC):])
    m, s = doc["market"], doc["stats"]
    maps = (*(m[k] for k in m if k != "dirty"), s["submitted_at"], s["seen"], doc["correlations"], doc["traces"],
            *doc["alerts"].values())
    entries = [json.dumps(e, separators=(",", ":")) for part in maps
               for e in (part if isinstance(part, list) else [{k: v} for k, v in part.items()])]
    assert len(entries) > 70
    assert max(map(len, pieces)) <= rows * (max(map(len, entries)) + 1)  # no piece holds more than `rows` entries
    again = decode(assemble(pieces))
    same(again.market, big.market, "market")
    same(again.stats, big.stats, "stats")


@pytest.mark.parametrize("turn_seconds", [0.0, 60.0])
def test_a_snapshot_gives_the_loop_back_after_each_turn_of_encoding_however_many_tasks_are_queued(monkeypatch,
                                                                                                  turn_seconds):
    monkeypatch.setattr(matcher_state, "ROWS", 10)
    monkeypatch.setattr(matcher_snapshot, "TURN_SECONDS", turn_seconds)
    state, turns = queued(400), []

    async def other_work():  # what the deciders do meanwhile
        while True:
            turns.append(1)
            await asyncio.sleep(0)

    async def main():
        beside = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        value = await encoded(state)
        beside.cancel()
        return value

    value, spent = asyncio.run(main())
    assert value == encode(state) and spent > 0
    if turn_seconds:
        assert len(turns) == 1  # a snapshot encoded within one turn: never given back
    else:  # the waiting tasks, their needs and their submission times: ten a piece
        assert len(turns) > 2 * 400 // 10


def test_a_snapshot_is_due_after_n_events_or_t_seconds_with_something_folded_and_never_hogs_the_loop(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("hive_streams.streams.matcher_snapshot.time.monotonic", lambda: clock[0])
    cadence = MatcherSnapshots(None, "m.matcher.snapshots", Settings(snapshot_every_events=50, snapshot_every_seconds=30))
    cadence.at = (100.0, 1000)  # the last one: at 100 s, 1000 events folded
    assert not cadence.due(1049) and cadence.due(1050)
    clock[0] = 130.0
    assert not cadence.due(1000) and cadence.due(1001)  # T seconds, and only with something folded
    cadence.took = 4.0  # the last one took 4 s: not again before 10 times that
    assert not cadence.due(5000)
    clock[0] = 100.0 + SHARE * 4.0
    assert cadence.due(5000)


def test_a_long_round_holds_the_next_back_for_a_few_times_its_length_and_a_short_one_does_not(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("hive_streams.streams.matcher.time.monotonic", lambda: clock[0])
    matcher = Matcher(default_codec(), Topics("m"), Settings(), 10_000)
    matcher.last_round, matcher.round_took = 100.0, 0.1  # a round over a long queue took 100 ms of work
    matcher.market.dirty = True
    clock[0] = 100.0 + ROUND_SHARE * 0.1 - 0.01
    assert not matcher._due() and matcher.market.dirty  # still owed: it runs once the wait is over
    clock[0] = 100.0 + ROUND_SHARE * 0.1
    assert matcher._due() and not matcher.market.dirty
    matcher.round_took = 0.00005  # a short queue's round: the next batch is matched at once
    matcher.market.dirty = True
    clock[0] += 0.001
    assert matcher._due()
