"""Task id claims in the store: the first definition of an id wins, for every API process (SQLite here;
the stack tests run the same code on PostgreSQL)."""
from __future__ import annotations

import threading

from hive_streams.store import claims, db


def test_the_first_claim_wins_and_a_repeat_is_told_apart(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'claims.db'}")
    db.create_schema(engine)
    assert claims.claim(engine, {"acme:a": "d1", "acme:b": "d2"}, 1) == {"acme:a": ("d1", True), "acme:b": ("d2", True)}
    assert claims.claim(engine, {"acme:a": "d9", "acme:c": "d3"}, 2) == {"acme:a": ("d1", False), "acme:c": ("d3", True)}
    assert claims.claim(engine, {"acme:b": "d2"}, 3) == {"acme:b": ("d2", False)}
    assert claims.claim(engine, {}, 4) == {}


def test_of_many_claims_at_once_exactly_one_is_made(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'claims.db'}")
    db.create_schema(engine)
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
