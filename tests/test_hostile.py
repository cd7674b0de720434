"""Hostile tasks on the real stack: each attempt is its own test, and fails if the attempt succeeds.

The executors stay up and their other tasks finish. Limits are small so each attempt ends in seconds.
"""
from __future__ import annotations

import glob
import json
import os
import secrets
import tempfile
import time

import pytest

from hive_streams.processes import wait_until

from .procs import pids_with, sleeper
from .stack import ALL_KINDS, RUNS, Stack

pytestmark = pytest.mark.stack

SECRET = secrets.token_hex(16)
LIMITS = {"HIVE_SANDBOX_CPU_SECONDS": "3", "HIVE_SANDBOX_MEMORY_MB": "256", "HIVE_SANDBOX_PROCESSES": "24",
          "HIVE_SANDBOX_FILE_MB": "4", "HIVE_SANDBOX_OUTPUT_KB": "64", "HIVE_EGRESS_TIMEOUT_SECONDS": "5",
          "HIVE_TEST_SECRET": SECRET}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("hostile"), **LIMITS)
    s.start({"victim": (ALL_KINDS, 4), "narrow": ("echo,sleep", 1)})
    s.wait_for_agents(2)
    yield s
    s.stop()


def run(stack: Stack, *nodes: dict, pin: str | None = None, timeout: float = 60, started: str = "") -> dict:
    """Submit one task, follow it to its end: its status, outputs by node and node errors by node.

    With `started`, first wait until a host process has that argument (the attempt really ran)."""
    definition = {"name": "hostile", "max_retries": 0, "nodes": list(nodes)}
    if pin:
        definition["requires"] = ["nobody-has-this"]  # the marketplace places it nowhere; the pin decides
    response = stack.client.submit(definition)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    if pin:
        wait_until(lambda: (stack.client.task(task_id) or {}).get("waiting_reason"), 30, what="a waiting reason")
        assert stack.client.http.put(f"/api/tasks/{task_id}/assign", json={"agent_id": pin}).status_code == 202
    if started:
        wait_until(lambda: pids_with(started), 30, what=f"a process with {started}")
    frames = list(stack.client.follow(task_id, timeout=timeout))
    last = frames[-1]
    outputs = {o["node_id"]: json.loads(o["output_json"]) for o in last.data.get("outputs", [])}
    errors = {f.data["node_id"]: f.data["error"] for f in frames if f.event == "NodeFailed"}
    return {"status": last.event, "outputs": outputs, "errors": errors, "task_id": task_id}


def shell(command: str, node_id: str = "x", **extra) -> dict:
    return {"id": node_id, "kind": "shell", "command": command, **extra}


def python(function: str, node_id: str = "x", **extra) -> dict:
    return {"id": node_id, "kind": "python", "function": f"tests.hostile_steps:{function}", **extra}


def still_serving(stack: Stack) -> None:
    """The executors are up and a plain task still completes."""
    stack.fabric.check_alive()
    done = run(stack, {"id": "a", "kind": "echo", "value": "ok"}, shell("echo fine", "b", depends_on=["a"]))
    assert done["status"] == "TaskCompleted" and done["outputs"]["b"]["stdout"] == "fine\n"


def test_env_shows_no_secrets(stack):
    done = run(stack, shell("env; cat /proc/1/environ /proc/self/environ 2>/dev/null | tr '\\0' '\\n'"),
               python("environment", "y"))
    assert done["status"] == "TaskCompleted"
    seen = json.dumps(done["outputs"])
    for secret in (SECRET, stack.secret, "HIVE_DATABASE_URL", "HIVE_KAFKA", "HIVE_JWT_SECRET", stack.database_url):
        assert secret not in seen


@pytest.mark.parametrize("how", ["shell", "python"])
def test_cannot_read_an_executors_key(stack, how):
    home = RUNS / stack.id
    key = home / "keys" / "victim.pem"
    assert key.exists() and "PRIVATE KEY" in key.read_text()
    node = (shell(f"cat {key} || ls -la {home} {home}/keys; find / -name '*.pem' -path '*keys*' 2>/dev/null")
            if how == "shell" else python("read_file", path=str(key)))
    done = run(stack, node)
    assert "PRIVATE KEY" not in json.dumps(done)
    assert done["status"] == "TaskFailed" or "No such file" in done["outputs"]["x"]["stderr"]


def test_cannot_read_another_tasks_files(stack):
    token = secrets.token_hex(8)
    before = set(glob.glob(f"{tempfile.gettempdir()}/hive-node-*"))
    response = stack.client.submit({"name": "holder", "max_retries": 0, "nodes": [
        shell(f"echo {token} > secret; sleep 6")]})
    holder = response.json()["task_id"]

    def holder_file():
        for path in set(glob.glob(f"{tempfile.gettempdir()}/hive-node-*/secret")) - before:
            try:
                if token in open(path).read():
                    return path
            except OSError:
                pass
    path = wait_until(holder_file, 30, what="the holder's file")
    done = run(stack, shell(f"cat {path}; cat /tmp/hive-node-*/secret; ls -la /tmp {os.path.dirname(path)}"),
               python("read_file", "y", path=path))
    assert token not in json.dumps(done)
    stack.client.http.post(f"/api/tasks/{holder}/cancel")


def test_setsid_and_double_forks_die_with_the_node(stack):
    first, second = sleeper(), sleeper()
    done = run(stack, shell(f"setsid sleep {first} >/dev/null 2>&1 < /dev/null & "
                            f"(sh -c 'sleep {second} >/dev/null 2>&1 &' &); sleep 0.3; "
                            f"ps -eo args | grep -c -e '^sleep {first}' -e '^sleep {second}'"))
    assert done["status"] == "TaskCompleted" and done["outputs"]["x"]["stdout"] == "2\n"  # both escaped the shell
    wait_until(lambda: not pids_with(first) and not pids_with(second), 5, what="the escaped sleeps to die")


def test_setsid_dies_on_timeout_too(stack):
    marker = sleeper()
    done = run(stack, shell(f"setsid sh -c 'sleep {marker}' & sleep 30", timeout_seconds=2), started=marker)
    assert done["status"] == "TaskFailed" and "timed out" in done["errors"]["x"]
    wait_until(lambda: not pids_with(marker), 5, what="the setsid sleep to die")


def test_fork_bomb_is_contained(stack):
    marker = sleeper()
    response = stack.client.submit({"name": "bomb", "max_retries": 0, "nodes": [
        shell(f"b() {{ sleep {marker} & b | b & }}; b; sleep 30", timeout_seconds=4)]})
    bomb = response.json()["task_id"]
    wait_until(lambda: pids_with(marker), 30, what="the bomb to start")  # the window counts from its start
    most = 0
    end = time.monotonic() + 3
    while time.monotonic() < end:
        most = max(most, len(pids_with(marker)))
        time.sleep(0.1)
    assert 0 < most <= int(LIMITS["HIVE_SANDBOX_PROCESSES"])
    frames = list(stack.client.follow(bomb, timeout=60))
    assert frames[-1].event == "TaskFailed"
    wait_until(lambda: not pids_with(marker), 5, what="the bomb to be gone")
    still_serving(stack)


def test_allocating_4_gb_fails_the_node_only(stack):
    done = run(stack, python("allocate", gib=4))
    assert done["status"] == "TaskFailed" and "MemoryError" in done["errors"]["x"]
    still_serving(stack)


def test_writing_1_gb_to_stdout_is_cut_off(stack):
    started = time.monotonic()
    done = run(stack, shell("head -c 1G /dev/zero"))
    assert done["status"] == "TaskFailed" and "wrote more than 4 MiB" in done["errors"]["x"]
    assert time.monotonic() - started < 20
    kept = run(stack, shell("head -c 2M /dev/zero | tr '\\0' a", limits={"output_mb": 1}))
    assert "$blob" in kept["outputs"]["x"]  # over the inline limit: its bytes are on the blob topic
    wait_until(lambda: (stack.client.task(kept["task_id"]) or {}).get("status") == "completed", 60, what="the task")
    output = stack.client.http.get(f"/api/tasks/{kept['task_id']}/nodes/x/output").json()
    assert len(output["stdout"]) == 1024 * 1024 and output["stdout_truncated"]
    still_serving(stack)


@pytest.mark.parametrize("target", ["api", "metadata"])
def test_http_nodes_cannot_reach_the_fabric_or_the_metadata_service(stack, target):
    url = f"{stack.base_url}/health" if target == "api" else "http://169.254.169.254/latest/meta-data/"
    started = time.monotonic()
    done = run(stack, {"id": "x", "kind": "http", "url": url})
    assert done["status"] == "TaskFailed" and "denied by the egress policy" in done["errors"]["x"]
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("target, error", [("api", "Connection refused"), ("outside", "Network is unreachable")])
def test_sandboxed_nodes_have_no_network(stack, target, error):
    host, port = ("127.0.0.1", stack.api_port) if target == "api" else ("1.1.1.1", 53)
    connect = f"import socket; socket.create_connection(('{host}', {port}), 2)"
    done = run(stack, shell(f'python3 -c "{connect}"'))  # its loopback is its own, and it has no other
    assert done["status"] == "TaskFailed" and error in done["errors"]["x"]


def test_no_injection_through_node_outputs(stack):
    marker = sleeper()
    payload = f"'; sleep {marker} & echo INJECTED; echo \"$(echo INJECTED)\" `echo INJECTED` #"
    done = run(stack, {"id": "up", "kind": "echo", "value": payload},
               shell("echo '{{ nodes.up.output }}'; echo \"{{ nodes.up.output }}\"; echo {{ nodes.up.output }}",
                     depends_on=["up"]))
    assert done["status"] == "TaskCompleted"
    assert done["outputs"]["x"]["stdout"] == f"{payload}\n" * 3
    assert not pids_with(marker)


def test_python_node_stops_at_its_timeout(stack):
    marker = sleeper()
    started = time.monotonic()
    done = run(stack, python("linger", marker=marker, timeout_seconds=1.5), started=marker)
    assert done["status"] == "TaskFailed" and "timed out after 1.5s" in done["errors"]["x"]
    assert time.monotonic() - started < 20
    wait_until(lambda: not pids_with(marker), 5, what="the python node's child to die")


def test_an_unoffered_kind_is_refused_even_when_pinned(stack):
    marker = sleeper()
    done = run(stack, shell(f"sleep {marker}"), pin="narrow")
    assert done["status"] == "TaskFailed"
    assert "does not offer node kind 'shell'" in done["errors"]["x"]
    assert not pids_with(marker)
    still_serving(stack)


def test_the_executors_stayed_up(stack):
    agents = {a["agent_id"]: a["status"] for a in stack.client.http.get("/api/status/agents").json()["agents"]}
    assert agents == {"victim": "online", "narrow": "online"}
    still_serving(stack)
