"""Rate limits per role: parsed from one setting, counted in PostgreSQL, shared by every API process."""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import make_url

from hive_streams.auth import Principal, limit_for, parse_limits
from hive_streams.auth.limits import WINDOW_MS, window_at
from hive_streams.exceptions import ConfigError
from hive_streams.infra import postgres
from hive_streams.settings import Settings
from hive_streams.store import create_schema, make_engine
from hive_streams.store import rate_limits as counts

from .feedhelp import start_api
from .stack import Stack

DEFAULTS = parse_limits(Settings().rate_limits)


def who(*roles: str) -> Principal:
    return Principal("ann", "acme", frozenset(roles))


def test_the_documented_defaults():
    assert DEFAULTS == {"executions.start": {"admin": 200, "developer": 100},
                        "workflows.create": {"admin": 100, "developer": 50}, "agents.register": {"admin": 10}}
    assert limit_for(DEFAULTS, who("developer"), "executions.start") == 100
    assert limit_for(DEFAULTS, who("developer", "admin"), "executions.start") == 200
    assert limit_for(DEFAULTS, who("viewer"), "executions.start") == 0  # no limit: no permission
    assert limit_for(DEFAULTS, who("developer"), "agents.register") == 0


@pytest.mark.parametrize("text", ["executions.start", "nope=admin:1", "executions.start=admin", "executions.start=admin:x"])
def test_a_bad_setting_is_refused_with_its_name(text):
    with pytest.raises(ConfigError, match="HIVE_RATE_LIMITS"):
        parse_limits(text)


def test_windows_are_whole_minutes_and_retry_after_counts_to_the_next():
    assert window_at(125_000).start == window_at(120_000).start
    assert window_at(125_000).start == 120_000 and window_at(125_000).retry_after == 55
    assert window_at(179_999).retry_after == 1 and window_at(180_000).start == 180_000


@pytest.fixture
def pg_engines(pg_url):
    """Two engines (as two API processes have) on a database of their own."""
    server, name = make_url(pg_url).set(database="postgres").render_as_string(False), f"rl_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(server, name)
    engines = [make_engine(url), make_engine(url)]
    create_schema(engines[0])
    yield engines
    for engine in engines:
        engine.dispose()
    postgres.drop_database(server, name)


def test_concurrent_takes_from_two_engines_never_pass_the_limit(pg_engines):
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda i: counts.take(pg_engines[i % 2], "executions.start acme/ann", 0, 1, 100),
                              range(160)))
    assert taken.count(True) == 100
    assert not counts.take(pg_engines[0], "executions.start acme/ann", 0, 1, 100)
    assert counts.take(pg_engines[1], "executions.start acme/ann", WINDOW_MS, 100, 100)  # the next minute
    assert not counts.take(pg_engines[1], "executions.start acme/bob", 0, 101, 100)  # more than a whole window


ECHO = {"name": "limited", "requires": ["nobody-has-this"], "nodes": [{"id": "a", "kind": "echo"}]}


def _fresh_window(margin_seconds: float = 25) -> None:
    """Starts the test early in a minute, so the 101 submissions fall in one window."""
    if 60 - time.time() % 60 < margin_seconds:
        time.sleep(60 - time.time() % 60 + 0.5)


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("limits"), HIVE_RATE_LIMITS=Settings().rate_limits)
    s.start({})  # the documented limits; no executors: the tasks only need to be accepted
    yield s
    s.stop()


def test_the_101st_submission_of_a_developer_is_429_across_two_api_processes(stack):
    second = start_api(stack, "api-2")
    try:
        first, dev = stack.client.http, stack.auth("developer", "dana")
        _fresh_window()
        batch = first.post("/api/tasks", json=[ECHO] * 60, headers=dev)  # a batch counts its items
        assert batch.status_code == 202 and batch.json()["accepted"] == 60, batch.text
        for _ in range(40):
            assert second.http.post("/api/tasks", json=ECHO, headers=dev).status_code == 202
        for client in (first, second.http):
            over = client.post("/api/tasks", json=ECHO, headers=dev)
            assert over.status_code == 429, over.text
            assert 1 <= int(over.headers["retry-after"]) <= 60 and "100 per minute" in over.json()["error"]
        assert first.post("/api/tasks", json=[ECHO, ECHO], headers=dev).status_code == 429
        assert second.http.post("/api/tasks", json=ECHO, headers=stack.auth("developer", "erik")).status_code == 202
        assert first.post("/api/tasks", json=ECHO, headers=stack.auth("viewer")).status_code == 403
    finally:
        second.close()


def test_a_role_whose_limit_is_zero_lacks_the_permission(stack):
    api = start_api(stack, "api-zero", HIVE_RATE_LIMITS="executions.start=admin:5,developer:0")
    try:
        refused = api.http.post("/api/tasks", json=ECHO, headers=stack.auth("developer", "fay"))
        assert refused.status_code == 403 and "executions.start" in refused.json()["error"]
        _fresh_window(10)
        answers = [api.http.post("/api/tasks", json=ECHO, headers=stack.auth("admin", "gus")).status_code
                   for _ in range(6)]
        assert answers == [202] * 5 + [429]
    finally:
        api.close()
