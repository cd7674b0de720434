"""Idempotency keys, pure: scopes, derived ids and request digests. No IO."""
from __future__ import annotations

import pytest

from hive_streams.api.errors import RequestError
from hive_streams.api.idempotency import HEADER, CommandIds, check_key, derived_id, request_digest, scope_of

DEPOSIT = "POST /api/accounts/alice/deposits"


def test_a_key_is_scoped_to_the_caller_and_the_route():
    scope = scope_of("ops", DEPOSIT, "k1")
    assert scope == scope_of("ops", DEPOSIT, "k1")
    assert len({scope, scope_of("bob", DEPOSIT, "k1"), scope_of("ops", "POST /api/accounts/bob/deposits", "k1"),
                scope_of("ops", DEPOSIT, "k2")}) == 4


def test_scopes_do_not_collide_when_parts_shift_between_fields():
    assert scope_of("a b", "c", "d") != scope_of("a", "b c", "d")
    assert scope_of("a/", "b", "c") != scope_of("a", "/b", "c")


def test_ids_are_derived_from_the_scope_so_a_repeat_sends_the_same_commands():
    first, again = CommandIds(scope_of("ops", DEPOSIT, "k1")), CommandIds(scope_of("ops", DEPOSIT, "k1"))
    assert first.command_id() == again.command_id() and first.task_id(3) == again.task_id(3)
    assert len({first.command_id(0), first.command_id(1), first.task_id(0), first.task_id(1)}) == 4
    assert len(first.command_id()) == 32 and first.task_id().isalnum()


def test_without_a_key_every_id_is_new():
    ids = CommandIds()
    assert ids.command_id() != ids.command_id() and ids.task_id() != CommandIds().task_id()


def test_derived_ids_differ_by_kind_and_index():
    assert derived_id("s", "command", 0) != derived_id("s", "task", 0) != derived_id("s", "task", 1)


def test_json_bodies_compare_by_value():
    assert request_digest(b'{"amount": 5, "reference": "x"}') == request_digest(b'{"reference":"x","amount":5}')
    assert request_digest(b'{"amount": 5}') != request_digest(b'{"amount": 6}')
    assert request_digest(b'[1, 2]') != request_digest(b'[2, 1]')


def test_other_bodies_compare_byte_for_byte():
    assert request_digest(b"name: a\n") == request_digest(b"name: a\n")
    assert request_digest(b"name: a\n") != request_digest(b"name:  a\n")
    assert request_digest(b"") == request_digest(b"")


def test_the_query_is_part_of_the_request_in_any_order():
    assert request_digest(b"", "reason=late&x=1") == request_digest(b"", "x=1&reason=late")
    assert request_digest(b"", "reason=late") != request_digest(b"", "reason=early")
    assert request_digest(b"", "") != request_digest(b"", "reason=")


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_refused_naming_the_header(key):
    with pytest.raises(RequestError) as refused:
        check_key(key)
    assert (refused.value.status, refused.value.field) == (422, HEADER)


def test_a_well_formed_key_passes():
    assert check_key("order-42/retry_1 ok") == "order-42/retry_1 ok"
