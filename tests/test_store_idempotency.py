"""The store's record of keyed requests: the first claim holds a key, its answer is kept for repeats."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from hive_streams.infra import postgres
from hive_streams.store import create_schema, make_engine
from hive_streams.store import idempotency as kept


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.stack)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
        create_schema(eng)
        yield eng
        eng.dispose()
        return
    server = make_url(request.getfixturevalue("pg_url")).set(database="postgres").render_as_string(False)
    name = f"keys_{uuid.uuid4().hex[:10]}"
    eng = make_engine(postgres.create_database(server, name))
    create_schema(eng)
    yield eng
    eng.dispose()
    postgres.drop_database(server, name)


def claim(engine, digest="d1", now=1_000, stale_before=0):
    return kept.claim(engine, "scope", "ops", "POST /x", "k", digest, now, stale_before)


def test_the_first_request_holds_the_key_and_a_repeat_gets_its_answer(engine):
    assert claim(engine) is None
    assert claim(engine).answer is None  # still in flight
    kept.answer(engine, "scope", kept.Answer(202, '{"ok":true}', {"content-type": "application/json"}))
    held = claim(engine, now=2_000)
    assert held.answer == kept.Answer(202, '{"ok":true}', {"content-type": "application/json"})
    assert (held.request_digest, held.created_at) == ("d1", 1_000)


def test_another_body_sees_the_first_digest(engine):
    claim(engine)
    assert claim(engine, digest="d2").request_digest == "d1"


def test_a_refused_request_gives_the_key_back(engine):
    claim(engine)
    kept.release(engine, "scope")
    assert claim(engine, digest="d2") is None


def test_an_abandoned_or_stale_claim_passes_to_the_same_request_only(engine):
    claim(engine)
    kept.abandon(engine, "scope")
    assert claim(engine, digest="d2").answer is None
    assert claim(engine) is None
    assert claim(engine, now=5_000, stale_before=1_500) is None  # in flight since 1_000: its process died
    assert claim(engine, now=5_001, stale_before=1_500) is not None  # the new claim, at 5_000, is fresh


def test_old_keys_are_forgotten(engine):
    claim(engine)
    kept.answer(engine, "scope", kept.Answer(202, "{}", {}))
    assert kept.forget_before(engine, 1_000) == 0
    assert kept.forget_before(engine, 1_001) == 1
    assert claim(engine, digest="d2") is None


def test_a_key_given_back_between_the_claims_two_statements_is_claimed_again(engine):
    """Found by fuzzing: a refused request released the key after another's insert met it, before its select."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite holds its write lock from the insert on: nobody can release in between")
    claim(engine)
    released = []

    @event.listens_for(engine, "before_cursor_execute")
    def release_first(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not released:
            released.append(True)
            kept.release(engine, "scope")  # the holder, on its own connection, in between

    try:
        assert claim(engine, digest="d2") is None
    finally:
        event.remove(engine, "before_cursor_execute", release_first)
    assert released and claim(engine, digest="d3").request_digest == "d2"
