"""The Python client sends a token as `Authorization: Bearer`: the one it is given, else $HIVE_TOKEN."""
from __future__ import annotations

from hive_streams.client import HiveClient


def test_the_token_given_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("HIVE_TOKEN", "from-env")
    assert HiveClient("http://x", token="given").http.headers["authorization"] == "Bearer given"
    assert HiveClient("http://x").http.headers["authorization"] == "Bearer from-env"


def test_without_a_token_no_header_is_sent(monkeypatch):
    monkeypatch.delenv("HIVE_TOKEN", raising=False)
    assert "authorization" not in HiveClient("http://x").http.headers
