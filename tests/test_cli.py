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


def cli(base_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIVE_API_URL": base_url, "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "hive_streams.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_submit_watch_shows_every_node_and_exits_zero(stack, tmp_path):
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({"id": "cli-ok", **CHAIN}))
    run = cli(stack.base_url, "submit", str(path), "--watch")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "submitted cli-ok" in run.stdout and "task cli-ok completed" in run.stdout
    assert "first" in run.stdout and "second" in run.stdout
    again = cli(stack.base_url, "watch", "cli-ok")  # a finished task: its history, then the same outcome
    assert again.returncode == 0 and "completed" in again.stdout


def test_failed_task_exits_non_zero_with_the_reason(stack, tmp_path):
    path = tmp_path / "failing.yaml"
    path.write_text(FAILING)
    run = cli(stack.base_url, "submit", str(path), "--watch")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "failed" in run.stdout and "boom" in run.stdout


def test_refused_definition_names_the_field(stack, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nnodes:\n  - {id: a, kind: shell}\n")
    run = cli(stack.base_url, "submit", str(path))
    assert run.returncode == 2 and "nodes[0].command" in run.stdout


def test_agents_and_tasks_tables(stack):
    stack.client.submit({"id": "cli-listed", **CHAIN})
    list(stack.client.watch("cli-listed"))
    agents = cli(stack.base_url, "agents")
    assert agents.returncode == 0 and "cli-agent" in agents.stdout and "online" in agents.stdout
    tasks = cli(stack.base_url, "tasks", "--limit", "50")
    assert tasks.returncode == 0 and "cli-listed" in tasks.stdout


def test_unreachable_api_is_a_clear_error():
    run = cli(f"http://127.0.0.1:{free_port()}", "tasks")
    assert run.returncode == 3 and "cannot reach the API" in run.stdout
