"""Task id claims in the store: the first definition of an id wins, for every API process, on SQLite and on
PostgreSQL (which claims a batch as arrays)."""
from __future__ import annotations

import threading
import uuid

import pytest

from hive_streams import settings as settings_mod
from hive_streams.store import claims, db


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A store of its own: a SQLite file, or a database of its own on the project's PostgreSQL server."""
    if request.param == "sqlite":
        made = db.make_engine(f"sqlite:///{tmp_path / 'claims.db'}")
    else:
        from hive_streams.infra import postgres
        server = postgres.up(settings_mod.load())
        name = f"claims_{uuid.uuid4().hex[:10]}"
        made = db.make_engine(postgres.create_database(server, name))
        request.addfinalizer(lambda: postgres.drop_database(server, name))
    db.create_schema(made)
    yield made
    made.dispose()


def test_the_first_claim_wins_and_a_repeat_is_told_apart(engine):
    assert claims.claim(engine, {"acme:a": "d1", "acme:b": "d2"}, 1) == {"acme:a": ("d1", True), "acme:b": ("d2", True)}
    assert claims.claim(engine, {"acme:a": "d9", "acme:c": "d3"}, 2) == {"acme:a": ("d1", False), "acme:c": ("d3", True)}
    assert claims.claim(engine, {"acme:b": "d2"}, 3) == {"acme:b": ("d2", False)}
    assert claims.claim(engine, {}, 4) == {}


def test_a_batch_of_a_thousand_is_claimed_once_and_then_held(engine):
    wanted = {f"acme:t{i}": f"d{i}" for i in range(1000)}
    assert claims.claim(engine, wanted, 1) == {k: (d, True) for k, d in wanted.items()}
    again = dict(wanted, **{"acme:t7": "other", "acme:new": "dn"})
    assert claims.claim(engine, again, 2) == {**{k: (d, False) for k, d in wanted.items()}, "acme:new": ("dn", True)}


def test_of_many_claims_at_once_exactly_one_is_made(engine):
    results, start = [None] * 8, threading.Barrier(8)

    def claim(i: int) -> None:
        start.wait()
        results[i] = claims.claim(engine, {"acme:race": f"d{i}"}, i)["acme:race"]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = [digest for digest, mine in results if mine]
    assert len(made) == 1 and {digest for digest, _ in results} == set(made)


def test_batches_sharing_ids_in_opposite_orders_never_deadlock(engine):
    failed = []

    def claim(ids: list[str], barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            claims.claim(engine, {task_id: "d" for task_id in ids}, 1)
        except Exception as exc:  # PostgreSQL's deadlock detector ends one of two batches that lock in two orders
            failed.append(exc)

    for round_ in range(10):
        ids, barrier = [f"acme:r{round_}-{i}" for i in range(200)], threading.Barrier(4)
        threads = [threading.Thread(target=claim, args=(ids if k % 2 else ids[::-1], barrier)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failed == []
