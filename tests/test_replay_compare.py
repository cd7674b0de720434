"""Replay's comparison without a broker: differences by key, each field that differs named."""
from __future__ import annotations

from hive_streams.domain.task import TaskState
from hive_streams.replay.compare import Difference, changed_fields, compare


def test_rows_that_agree_give_nothing():
    rows = {"a": {"status": "completed", "seq": 4}, "b": {"status": "queued", "seq": 1}}
    assert compare("tasks", rows, {k: dict(v) for k, v in rows.items()}) == []


def test_each_kind_of_difference_is_named_by_its_key():
    kept = {"a": {"status": "failed", "seq": 4}, "gone": {"seq": 1}}
    folded = {"a": {"status": "completed", "seq": 4}, "new": {"seq": 2}}
    assert compare("tasks", kept, folded) == [
        Difference("tasks", "a", "changed", "status: 'failed' → 'completed'"),
        Difference("tasks", "gone", "extra", "kept, but the log folds to no such thing"),
        Difference("tasks", "new", "missing", "the log folds to it, nothing is kept")]


def test_composite_and_byte_keys_read_as_text():
    assert compare("p", {("acct", "main/3"): {"seq": 3}}, {})[0].key == "acct/main/3"
    assert compare("s", {}, {b"acme:t1": TaskState("acme:t1")})[0].key == "acme:t1"


def test_states_are_compared_field_by_field():
    kept, folded = TaskState("t", seq=3, status="running"), TaskState("t", seq=3, status="completed", reason="ok")
    assert changed_fields(kept, folded) == "status: 'running' → 'completed'; reason: '' → 'ok'"


def test_a_long_value_is_cut_in_the_report():
    detail = changed_fields({"v": "x" * 1000}, {"v": "y"})
    assert len(detail) < 200 and detail.endswith("'y'")
