"""Batch submission, pure: each item accepted with its id or refused with its field; no IO."""
from __future__ import annotations

import pytest

from hive_streams.api.batch import MAX_BATCH, plan_batch
from hive_streams.api.errors import RequestError
from hive_streams.api.idempotency import CommandIds

ECHO = {"name": "echo", "nodes": [{"id": "a", "kind": "echo"}]}


def test_one_bad_item_never_drops_the_others():
    raws = [ECHO, {"name": "bad", "nodes": [{"id": "a", "kind": "nope"}]}, "not a mapping", {**ECHO, "id": "mine"}]
    commands, items = plan_batch(raws, 1_000, CommandIds(), "alice")
    assert [i["status"] for i in items] == ["submitted", "rejected", "rejected", "submitted"]
    assert [i["index"] for i in items] == [0, 1, 2, 3]
    assert (items[1]["code"], items[1]["field"]) == (422, "nodes[0].kind")
    assert items[2]["field"] == "$"
    assert [cmd.task_id for cmd in commands] == [items[0]["task_id"], "mine"]
    assert {cmd.requester for cmd in commands} == {"alice"} and {cmd.at for cmd in commands} == {1_000}
    assert len({cmd.command_id for cmd in commands}) == 2


def test_a_repeated_id_is_refused_after_its_first_item():
    commands, items = plan_batch([{**ECHO, "id": "t"}, {**ECHO, "id": "t"}], 0, CommandIds(), "alice")
    assert [cmd.task_id for cmd in commands] == ["t"]
    assert (items[1]["code"], items[1]["field"]) == (409, "id")


def test_a_keyed_batch_derives_the_same_ids_again():
    ids = CommandIds("scope")
    first, _ = plan_batch([ECHO, ECHO], 0, ids, "alice")
    again, _ = plan_batch([ECHO, ECHO], 5, ids, "alice")
    assert [(c.task_id, c.command_id) for c in first] == [(c.task_id, c.command_id) for c in again]


def test_the_batch_size_is_bounded():
    assert len(plan_batch([ECHO] * MAX_BATCH, 0, CommandIds(), "alice")[0]) == MAX_BATCH
    with pytest.raises(RequestError) as refused:
        plan_batch([ECHO] * (MAX_BATCH + 1), 0, CommandIds(), "alice")
    assert refused.value.status == 413 and str(MAX_BATCH) in refused.value.message
    with pytest.raises(RequestError) as empty:
        plan_batch([], 0, CommandIds(), "alice")
    assert empty.value.status == 422


def test_ids_are_the_tenants_and_a_known_id_is_a_repeat_or_a_conflict():
    from hive_streams.domain.definition import definition_digest
    same, other = {**ECHO, "id": "same"}, {**ECHO, "id": "other"}
    known = {"acme:same": definition_digest(same), "acme:other": definition_digest({**other, "priority": 9})}
    commands, items = plan_batch([same, other, {**ECHO, "id": "new", "after": ["same"]}], 0, CommandIds(),
                                 "acme/dev", "acme", known)
    assert [i["status"] for i in items] == ["submitted", "rejected", "submitted"]
    assert items[0]["task_id"] == "acme:same" and (items[1]["code"], items[1]["field"]) == (409, "id")
    assert [(cmd.task_id, cmd.after) for cmd in commands] == [("acme:new", ("acme:same",))]  # a repeat sends nothing
