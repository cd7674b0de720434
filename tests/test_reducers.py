"""Reducer and update-policy properties: merges depend on ordinals only, never on finishing order."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hive_streams.domain import execution_records as x
from hive_streams.domain.model import NodeSpec
from hive_streams.domain.reducers import reduce_all
from hive_streams.domain.superstep import commit_step
from hive_streams.domain.workflow import parse_workflow
from hive_streams.workflows import CHECKS

ints = st.integers(-1000, 1000)
writes = st.lists(ints, max_size=12)


@given(writes)
def test_sum_min_max_match_python(ws):
    assert reduce_all("sum", 0, ws) == sum(ws)
    assert reduce_all("min", None, ws) == (min(ws) if ws else None)
    assert reduce_all("max", None, ws) == (max(ws) if ws else None)


@given(writes, writes)
def test_append_keeps_order_and_folds_in_parts(a, b):
    assert reduce_all("append", [], a + b) == a + b
    assert reduce_all("append", reduce_all("append", [], a), b) == a + b


@given(st.lists(st.lists(ints, max_size=4), max_size=6))
def test_set_union_is_order_independent_and_idempotent(ws):
    once = reduce_all("set-union", [], ws)
    assert once == reduce_all("set-union", [], list(reversed(ws)))
    assert reduce_all("set-union", once, ws) == once
    assert sorted(once) == sorted({v for w in ws for v in w})


@given(st.lists(st.dictionaries(st.sampled_from("abcd"), ints, max_size=3), max_size=6))
def test_merge_map_later_writes_win(ws):
    expected = {}
    for w in ws:
        expected.update(w)
    assert reduce_all("merge-map", {}, ws) == expected


def _workflow(reducer: str, update: str):
    return parse_workflow({"name": "p", "channels": {"c": {"reducer": reducer, "update": update}},
                           "nodes": {"n": {"kind": "echo"}}, "entry": ["n"]})


def _step(values: list):
    items = tuple(x.StepItem(i, f"t:e.s1.n{i}", NodeSpec("n", "echo")) for i in range(len(values)))
    outcomes = [x.ItemOutcome(i, f"t:e.s1.n{i}", "completed", json.dumps({"writes": {"c": v}} if v is not None else {}))
                for i, v in enumerate(values)]
    return items, outcomes


@settings(max_examples=60)
@given(st.sampled_from(["replace", "append", "sum", "min", "max"]), st.lists(st.one_of(st.none(), ints), max_size=8),
       st.randoms())
def test_commit_ignores_finishing_order(reducer, values, rnd):
    wf = _workflow(reducer, "multi")
    items, outcomes = _step(values)
    shuffled = list(outcomes)
    rnd.shuffle(shuffled)
    a = commit_step(wf, {}, {}, items, tuple(outcomes), CHECKS)
    b = commit_step(wf, {}, {}, items, tuple(shuffled), CHECKS)
    assert (a.writes, a.values, a.failure) == (b.writes, b.values, b.failure)
    assert [w[0] for w in a.writes] == sorted(w[0] for w in a.writes)


@given(st.lists(st.one_of(st.none(), ints), max_size=8))
def test_single_update_fails_exactly_when_written_twice(values):
    wf = _workflow("replace", "single")
    items, outcomes = _step(values)
    commit = commit_step(wf, {}, {}, items, tuple(outcomes), CHECKS)
    writers = [i for i, v in enumerate(values) if v is not None]
    if len(writers) > 1:
        assert f"t:e.s1.n{writers[0]}" in commit.failure and f"t:e.s1.n{writers[1]}" in commit.failure
    else:
        assert commit.failure == "" and commit.values["c"] == (values[writers[0]] if writers else None)
