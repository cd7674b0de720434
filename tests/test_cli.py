"""The CLI as a subprocess against the real stack: submit --watch, watch, agents, tasks."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .stack import ALL_KINDS, Stack, free_port

pytestmark = pytest.mark.stack

CHAIN = {"name": "cli-chain", "nodes": [
    {"id": "first", "kind": "sleep", "seconds": 1},
    {"id": "second", "kind": "echo", "value": "x", "depends_on": ["first"]},
]}
FAILING = "name: cli-failing\nnodes:\n  - {id: ok, kind: echo, value: 1}\n  - {id: boom, kind: shell, command: 'exit 3', depends_on: [ok]}\n"


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("cli"))
    s.start({"cli-agent": (ALL_KINDS, 2)})
    yield s
    s.stop()


def cli(base_url: str, *args: str, token: str = "", **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIVE_API_URL": base_url, "HIVE_TOKEN": token, "COLUMNS": "160", **env}
    return subprocess.run([sys.executable, "-m", "hive_streams.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_submit_watch_shows_every_node_and_exits_zero(stack, tmp_path):
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({"id": "cli-ok", **CHAIN}))
    run = cli(stack.base_url, "submit", str(path), "--watch", token=stack.token())
    assert run.returncode == 0, run.stdout + run.stderr
    assert "submitted tests:cli-ok" in run.stdout and "task tests:cli-ok completed" in run.stdout
    assert "first" in run.stdout and "second" in run.stdout
    # a finished task: its history, then the same outcome
    again = cli(stack.base_url, "watch", "cli-ok", token=stack.token())  # a bare id: the caller's tenant's
    assert again.returncode == 0 and "completed" in again.stdout


def test_failed_task_exits_non_zero_with_the_reason(stack, tmp_path):
    path = tmp_path / "failing.yaml"
    path.write_text(FAILING)
    run = cli(stack.base_url, "submit", str(path), "--watch", token=stack.token())
    assert run.returncode == 1, run.stdout + run.stderr
    assert "failed" in run.stdout and "boom" in run.stdout


def test_refused_definition_names_the_field(stack, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nnodes:\n  - {id: a, kind: shell}\n")
    run = cli(stack.base_url, "submit", str(path), token=stack.token())
    assert run.returncode == 2 and "nodes[0].command" in run.stdout


def test_agents_and_tasks_tables(stack):
    stack.client.submit({"id": "cli-listed", **CHAIN})
    list(stack.client.watch("cli-listed"))
    agents = cli(stack.base_url, "agents", token=stack.token())
    assert agents.returncode == 0 and "cli-agent" in agents.stdout and "online" in agents.stdout
    tasks = cli(stack.base_url, "tasks", "--limit", "50", token=stack.token())
    assert tasks.returncode == 0 and "cli-listed" in tasks.stdout


def test_unreachable_api_is_a_clear_error():
    run = cli(f"http://127.0.0.1:{free_port()}", "tasks")
    assert run.returncode == 3 and "cannot reach the API" in run.stdout


def test_token_command_mints_a_token_the_api_accepts(stack):
    run = cli(stack.base_url, "token", "--role", "developer", "--tenant", "acme", "--sub", "alice", "--ttl", "10m",
              HIVE_JWT_SECRET=stack.secret)
    assert run.returncode == 0, run.stderr
    me = stack.client.http.get("/api/session", headers={"Authorization": f"Bearer {run.stdout.strip()}"}).json()
    assert (me["signed_in"], me["account"], me["roles"]) == (True, "acme/alice", ["developer"])
    tables = cli(stack.base_url, "agents", token=run.stdout.strip())
    assert tables.returncode == 0 and "cli-agent" in tables.stdout


def test_without_a_token_the_cli_says_how_to_get_one(stack):
    run = cli(stack.base_url, "tasks")
    assert run.returncode == 2 and "401" in run.stdout and "HIVE_TOKEN" in run.stdout


def test_token_command_without_a_secret_is_a_clear_error(tmp_path):
    run = cli("http://127.0.0.1:1", "token", "--role", "viewer", "--tenant", "acme", HIVE_JWT_SECRET="",
              HIVE_HOME=str(tmp_path))
    assert run.returncode == 2 and "HIVE_JWT_SECRET" in run.stderr
