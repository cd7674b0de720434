"""Time travel without a broker: folding to a point, and the query parameters that name one."""
from __future__ import annotations

import pytest
from starlette.requests import Request

from hive_streams.api.errors import RequestError
from hive_streams.api.history import describe, parse_time, point_of
from hive_streams.domain import ledger
from hive_streams.domain import events as e
from hive_streams.domain.history import Point, fold_to
from hive_streams.domain.model import Leg


def deposit(seq: int, at: int, amount: int) -> e.FundsDeposited:
    return e.FundsDeposited(ledger_id="main", seq=seq, at=at, account="acme/ann", amount=amount, reference="",
                            legs=(Leg("external", "available", -amount), Leg("acme/ann", "available", amount)))


LOG = [deposit(1, 1000, 100), deposit(2, 2000, 200), deposit(3, 2000, 400), deposit(4, 3000, 800)]


def balance(point: Point) -> int:
    return fold_to(ledger.LedgerState(), LOG, ledger.evolve, point).balance("acme/ann")[0]


def test_fold_to_a_time_takes_every_event_at_or_before_it():
    assert balance(Point(as_of=999)) == 0
    assert balance(Point(as_of=1000)) == 100
    assert balance(Point(as_of=2000)) == 700  # both events of that millisecond
    assert balance(Point(as_of=10**13)) == balance(Point()) == 1500


def test_fold_to_a_seq_stops_after_it():
    assert [balance(Point(at_seq=n)) for n in (1, 2, 3, 4, 9)] == [100, 300, 700, 1500, 1500]


def test_fold_stops_at_the_first_event_past_the_point_even_if_a_later_one_is_earlier():
    out_of_order = [deposit(1, 1000, 1), deposit(2, 3000, 2), deposit(3, 2000, 4)]
    state = fold_to(ledger.LedgerState(), out_of_order, ledger.evolve, Point(as_of=2500))
    assert state.seq == 1


def request(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": []})


def test_the_parameters_name_a_point():
    assert point_of(request("")) is None
    assert point_of(request("at_seq=7")) == Point(at_seq=7)
    assert point_of(request("as_of=1970-01-01T00:00:01.5Z")) == Point(as_of=1500)
    assert point_of(request("as_of=1970-01-01T01:00:00%2B01:00")) == Point(as_of=0)
    assert point_of(request("as_of=1970-01-01T00:00:02")) == Point(as_of=2000)  # no zone: UTC


def test_times_round_trip_exactly_to_the_millisecond():
    for ms in (1764590400123, 1764590400999, 1764590400001):
        assert parse_time(describe(Point(as_of=ms))["as_of"]) == ms


@pytest.mark.parametrize("query,field", [("as_of=yesterday", "as_of"), ("as_of=", "as_of"), ("at_seq=0", "at_seq"),
                                         ("at_seq=-3", "at_seq"), ("at_seq=x", "at_seq"), ("at_seq=%D9%A3", "at_seq"),
                                         ("as_of=2026-01-01&at_seq=3", "at_seq")])
def test_bad_values_are_400_naming_the_parameter(query, field):
    with pytest.raises(RequestError) as raised:
        point_of(request(query))
    assert (raised.value.status, raised.value.field) == (400, field)
