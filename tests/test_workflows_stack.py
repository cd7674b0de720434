"""Workflows and executions on the real stack: fan-out/join, interrupt/resume across a worker restart,
SIGKILL of the worker and an executor mid-execution."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from hive_streams.domain.execution_records import ExecutionEvent
from hive_streams.processes import wait_until

from .eventlog import whole_log
from .logcheck import last_problems, log_problems
from .stack import ALL_KINDS, TENANT, Stack

pytestmark = pytest.mark.stack
BROWSER = Path(__file__).parent / "browser"
ARTIFACTS = Path(__file__).parent.parent / ".hive" / "artifacts"

FANJOIN = {
    "name": "fanjoin",
    "channels": {
        "items": {"type": {"type": "array", "items": {"type": "integer"}}},
        "results": {"type": {"type": "array", "items": {"type": "integer"}}, "reducer": "append"},
        "total": {"type": {"type": "integer"}, "reducer": "sum"},
        "seen": {"type": {"type": "array"}, "reducer": "set-union"},
        "audited": {"type": {"type": "boolean"}, "update": "single"},
        "summary": {"type": {"type": "string"}, "update": "single"},
    },
    "nodes": {
        "split": {"kind": "python", "function": "tests.workflow_steps:split"},
        "work": {"kind": "python", "function": "tests.workflow_steps:work"},
        "prep": {"kind": "echo", "value": {}},
        "audit": {"kind": "echo", "value": {"writes": {"audited": True}}},
        "collect": {"kind": "python", "function": "tests.workflow_steps:collect"},
    },
    "entry": ["split"],
    "edges": [{"from": "split", "to": "prep"}, {"from": "prep", "to": "audit"}],
    "joins": [{"from": ["work", "audit"], "to": "collect", "name": "gather"}],
}
APPROVAL = """
name: approval
channels:
  draft: {type: {type: string}}
  decision: {type: {type: object}}
nodes:
  ask: {kind: python, function: "tests.workflow_steps:ask"}
  publish: {kind: python, function: "tests.workflow_steps:publish"}
entry: [ask]
edges: [{from: ask, to: publish}]
"""
TICKS = {
    "name": "ticks",
    "channels": {"count": {"type": {"type": "integer"}, "reducer": "sum"},
                 "trail": {"type": {"type": "array"}, "reducer": "append"}},
    "nodes": {"tick": {"kind": "python", "function": "tests.workflow_steps:tick", "seconds": 1.0},
              "done": {"kind": "echo", "value": {}}},
    "entry": ["tick"],
    "routers": [{"from": "tick", "routes": [{"when": "count < `6`", "to": "tick"}], "default": "done"}],
}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("workflows"), HIVE_COMMIT_INTERVAL_MS="300").start(
        {"ex-1": (ALL_KINDS, 3), "ex-2": (ALL_KINDS, 3)})
    s.wait_for_agents(2)
    yield s
    s.stop()


def http(stack) -> httpx.Client:
    return stack.client.http


def register(stack, definition) -> dict:
    if isinstance(definition, str):
        r = http(stack).post("/api/workflows", content=definition, headers={"Content-Type": "application/yaml"})
    else:
        r = http(stack).post("/api/workflows", json=definition)
    assert r.status_code in (200, 201), r.text
    return r.json()


def start(stack, name: str, execution_id: str, **body) -> str:
    r = http(stack).post(f"/api/workflows/{name}/executions", json={"id": execution_id, **body})
    assert r.status_code == 202, r.text
    return r.json()["execution_id"]


def get(stack, execution_id: str) -> dict:
    r = http(stack).get(f"/api/executions/{execution_id}")
    return r.json() if r.status_code == 200 else {"status": None}


def wait_status(stack, execution_id: str, *statuses: str, timeout: float = 120) -> dict:
    def reached():
        view = get(stack, execution_id)
        return view if view["status"] in statuses else None
    try:
        return wait_until(reached, timeout, interval=0.5, what=f"{execution_id} {statuses}")
    except Exception:
        print(json.dumps(get(stack, execution_id), indent=1)[-3000:], stack.logs())
        raise


def finishing_order(view: dict, step: int) -> list:
    return [i["ordinal"] for i in view["steps"][step - 1]["items"] if i["node"] == "work"]


def feed_types(stack, execution_id: str) -> list[tuple[str, dict]]:
    out = []
    with http(stack).stream("GET", f"/api/executions/{execution_id}/events", timeout=60) as response:
        assert response.status_code == 200
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                out.append((kind, json.loads(line.split(":", 1)[1])))
                if kind in ("ExecutionCompleted", "ExecutionFailed", "ExecutionCancelled"):
                    break
    return out


def test_definitions_are_validated_and_versioned(stack):
    bad = json.loads(json.dumps(FANJOIN))
    bad["joins"][0]["to"] = "nowhere"
    r = http(stack).post("/api/workflows", json=bad)
    assert r.status_code == 422 and r.json()["field"] == "joins[0].to"
    first = register(stack, FANJOIN)
    assert register(stack, FANJOIN)["version"] == first["version"]  # the same definition: no new version
    changed = json.loads(json.dumps(FANJOIN))
    changed["channels"]["total"]["initial"] = 0
    assert register(stack, changed)["version"] == first["version"] + 1
    register(stack, FANJOIN)
    versions = http(stack).get("/api/workflows/fanjoin/versions").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    r = http(stack).post("/api/workflows/fanjoin/executions", json={"inputs": {"items": ["x"]}})
    assert r.status_code == 422 and r.json()["field"] == "inputs.items"
    r = http(stack).post("/api/workflows/nothing/executions", json={})
    assert r.status_code == 404 and r.json()["field"] == "name"


def test_fan_out_join_commits_the_same_writes_whatever_the_finishing_order(stack):
    register(stack, FANJOIN)
    inputs = {"items": [1, 2, 3]}
    views = []
    for suffix in ("fwd", "rev"):
        execution_id = start(stack, "fanjoin", f"fan-{suffix}", inputs=inputs, version=1)
        views.append(wait_status(stack, execution_id, "completed", "failed"))
    forward, reverse = views
    assert forward["status"] == reverse["status"] == "completed", forward["reason"] + reverse["reason"]
    assert forward["values"] == reverse["values"] == {
        "items": [1, 2, 3], "results": [10, 20, 30], "total": 6, "seen": [1, 2, 3], "audited": True,
        "summary": "3 results, total 6"}
    assert [s["writes"] for s in forward["steps"]] == [s["writes"] for s in reverse["steps"]]
    assert [[i["node"] for i in s["items"]] for s in forward["steps"]] == [
        ["split"], ["work", "work", "work", "prep"], ["audit"], ["collect"]]
    assert forward["steps"][1]["barriers"] == {"gather": ["work"]} and forward["steps"][2]["barriers"] == {}
    finished = {}
    for suffix in ("fwd", "rev"):
        frames = feed_types(stack, f"{TENANT}:fan-{suffix}")
        finished[suffix] = [d["outcome"]["ordinal"] for k, d in frames
                            if k == "StepItemFinished" and d["step"] == 2 and d["outcome"]["ordinal"] < 3]
    # the work items' sleeps make them end in item order, then in reverse: the commits above did not care
    assert sorted(finished["fwd"]) == sorted(finished["rev"]) == [0, 1, 2] and finished["fwd"] != finished["rev"]


def test_interrupt_waits_through_a_worker_restart_and_resume_delivers_the_payload(stack):
    register(stack, APPROVAL)
    execution_id = start(stack, "approval", "approve-1")
    waiting = wait_status(stack, execution_id, "interrupted")
    interrupt = waiting["interrupt"]
    assert interrupt == {"id": f"{execution_id}/s1/n0", "payload": {"question": "publish v1?"}}
    stack.worker.kill()
    stack.restart_worker()
    assert get(stack, execution_id)["interrupt"] == interrupt  # the wait is in the log, not in a process
    r = http(stack).post(f"/api/executions/{execution_id}/resume", json={"interrupt_id": "stale", "payload": 1})
    assert r.status_code == 409 and r.json()["field"] == "interrupt_id"
    payload = {"approved": True, "by": "ops"}
    r = http(stack).post(f"/api/executions/{execution_id}/resume", json={"interrupt_id": interrupt["id"],
                                                                         "payload": payload})
    assert r.status_code == 202, r.text
    done = wait_status(stack, execution_id, "completed", "failed")
    assert done["status"] == "completed" and done["values"] == {"draft": "v1", "decision": payload}
    assert done["steps"][1]["items"][0]["node"] == "publish"
    r = http(stack).post(f"/api/executions/{execution_id}/resume", json={"interrupt_id": interrupt["id"]})
    assert r.status_code == 409 and r.json()["field"] == "execution_id"


def test_sigkill_worker_and_executor_mid_execution_changes_nothing(stack):
    register(stack, TICKS)
    calm = wait_status(stack, start(stack, "ticks", "ticks-calm"), "completed", "failed")
    assert calm["status"] == "completed" and calm["values"] == {"count": 6, "trail": [1, 2, 3, 4, 5, 6]}
    execution_id = start(stack, "ticks", "ticks-killed")
    wait_until(lambda: get(stack, execution_id).get("steps_committed", 0) >= 2, 120, interval=0.2, what="two steps")
    stack.worker.kill()
    stack.executors["ex-1"].kill()
    stack.restart_worker()
    stack.executors["ex-3"] = stack.fabric.executor("ex-3", ALL_KINDS, 3)
    killed = wait_status(stack, execution_id, "completed", "failed", timeout=240)
    assert killed["status"] == "completed", killed["reason"]
    assert killed["values"] == calm["values"]
    frames = feed_types(stack, execution_id)
    committed = [d["step"] for k, d in frames if k == "StepCommitted"]
    assert committed == list(range(1, 8))  # six ticks and done, each committed once
    engine = create_engine(stack.database_url)
    try:
        def audited():
            with engine.connect() as conn:
                rows = conn.execute(text("select seq from audit_log where aggregate_id = :a and not duplicate"),
                                    {"a": execution_id}).all()
            return sorted(r.seq for r in rows) if len(rows) >= len(frames) else None
        assert wait_until(audited, 60, what="the execution's events in the audit log") == list(range(1, len(frames) + 1))
    finally:
        engine.dispose()
    # the raw log, every record: one history per execution (and per task, agent, ledger) with seqs 1..n
    raw = whole_log(stack.bootstrap, stack.topics)
    assert sum(isinstance(r.event, ExecutionEvent) for r in raw) >= len(frames)
    assert last_problems(lambda: log_problems(whole_log(stack.bootstrap, stack.topics)), 60) == []


FRAGILE = {
    "name": "fragile",
    "channels": {"recovered": {"type": {"type": "object"}}, "owner": {"type": {"type": "string"}, "update": "single"}},
    "nodes": {"boom": {"kind": "python", "function": "tests.workflow_steps:explode", "max_retries": 0},
              "recover": {"kind": "python", "function": "tests.workflow_steps:claim"},
              "split": {"kind": "echo", "value": {"spawn": [{"node": "claim", "input": "a"},
                                                            {"node": "claim", "input": "b"}]}},
              "claim": {"kind": "python", "function": "tests.workflow_steps:claim"}},
    "entry": ["boom"],
}


def test_failure_rules_on_the_stack(stack):
    routed = json.loads(json.dumps(FRAGILE))
    routed["edges"] = [{"from": "boom", "to": "recover", "on": "error"}]
    routed["channels"]["owner"]["type"] = {"type": "object"}
    register(stack, routed)
    recovered = wait_status(stack, start(stack, "fragile", "fragile-routed"), "completed", "failed")
    assert recovered["status"] == "completed", recovered["reason"]
    assert recovered["values"]["owner"]["node"] == "boom" and "boom" in recovered["values"]["owner"]["error"]
    register(stack, FRAGILE | {"name": "fragile-bare"})
    failed = wait_status(stack, start(stack, "fragile-bare", "fragile-bare"), "completed", "failed")
    assert failed["status"] == "failed" and "node 'boom'" in failed["reason"] and "boom" in failed["reason"]
    register(stack, FRAGILE | {"name": "twice", "entry": ["split"]})
    clash = wait_status(stack, start(stack, "twice", "twice-1"), "completed", "failed")
    assert clash["status"] == "failed" and "'owner'" in clash["reason"]
    assert f"{TENANT}:twice-1.s2.n0" in clash["reason"] and f"{TENANT}:twice-1.s2.n1" in clash["reason"]


def test_cancel_cancels_the_running_task(stack):
    register(stack, TICKS | {"name": "slow", "nodes": {**TICKS["nodes"], "tick": {
        "kind": "python", "function": "tests.workflow_steps:tick", "seconds": 30}}})
    execution_id = start(stack, "slow", "slow-1")
    wait_until(lambda: get(stack, execution_id).get("running_tasks"), 60, what="a running task")
    task_id = get(stack, execution_id)["running_tasks"][0]
    assert http(stack).delete(f"/api/executions/{execution_id}").status_code == 202
    assert wait_status(stack, execution_id, "cancelled")["reason"] == "cancelled by request"
    wait_until(lambda: http(stack).get(f"/api/tasks/{task_id}").json().get("status") == "cancelled", 60,
               what="the task cancelled")
    again = http(stack).delete(f"/api/executions/{execution_id}")
    assert again.status_code == 202 and again.json()["status"] == "cancelled"


def cli(stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIVE_API_URL": stack.base_url, "HIVE_TOKEN": stack.token("admin"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "hive_streams.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_starts_and_watches_an_execution_step_by_step(stack, tmp_path):
    definition = tmp_path / "approval.yaml"
    definition.write_text(APPROVAL)
    assert "version 1" in cli(stack, "workflow", "register", str(definition)).stdout
    started = cli(stack, "execution", "start", "approval", "--id", "approve-cli")
    assert started.returncode == 0, started.stdout + started.stderr
    execution_id = f"{TENANT}:approve-cli"
    watcher = subprocess.Popen([sys.executable, "-m", "hive_streams.cli", "execution", "watch", execution_id],
                               env={**os.environ, "HIVE_API_URL": stack.base_url, "HIVE_TOKEN": stack.token("admin"),
                                    "COLUMNS": "200"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    interrupt = wait_status(stack, execution_id, "interrupted")["interrupt"]["id"]
    resumed = cli(stack, "execution", "resume", execution_id, "--interrupt", interrupt, "--payload", '{"ok": 1}')
    assert resumed.returncode == 0, resumed.stdout
    out, err = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, out + err
    lines = out.splitlines()
    assert [line.split(" committed")[0] for line in lines if " committed" in line] == ["step 1", "step 2"]
    assert any(line.startswith("interrupted by ask") for line in lines)
    assert lines[-1].startswith("completed") and '"decision": {"ok": 1}' in lines[-1]
    again = cli(stack, "execution", "resume", execution_id, "--interrupt", interrupt)
    assert again.returncode == 2 and "409" in again.stdout


def test_dashboard_shows_the_waiting_interrupt_and_resumes_it(stack):
    subprocess.run(["bash", str(BROWSER / "setup.sh")], check=True, timeout=900)
    register(stack, APPROVAL)
    execution_id = start(stack, "approval", "approve-browser")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "execution.png"
    done = subprocess.run(["node", str(BROWSER / "execution.cjs"), stack.base_url, execution_id, str(shot)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HIVE_TOKEN": stack.token("developer", "reviewer")})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["waiting"] == f"{execution_id}/s1/n0" and seen["errors"] == []
    assert seen["values"] == {"draft": "v1", "decision": {"approved": True, "by": "browser"}} and seen["steps"] == 2
    assert shot.exists()


def test_a_schedule_starts_an_execution_of_the_version_it_pinned(stack):
    register(stack, {**FANJOIN, "name": "nightly-flow"})
    bad = http(stack).post("/api/schedules", json={"cron": "* * * * * */2", "target": {"workflow": "no-such-flow"}})
    assert bad.status_code == 422 and bad.json()["field"] == "target.workflow", bad.text
    wrong = http(stack).post("/api/schedules", json={"cron": "* * * * * */2",
                                                     "target": {"workflow": "nightly-flow", "inputs": {"nope": 1}}})
    assert wrong.status_code == 422 and wrong.json()["field"] == "target.inputs.nope", wrong.text
    made = http(stack).post("/api/schedules", json={"id": "flows", "cron": "* * * * * */2", "catchup": "skip",
                                                    "target": {"workflow": "nightly-flow", "inputs": {"items": [1, 2]}}})
    assert made.status_code == 202, made.text
    schedule = made.json()["schedule_id"]
    fired = wait_until(lambda: (http(stack).get(f"/api/schedules/{schedule}").json() or {}).get("fired"), 60,
                       what="the schedule's first slot")
    assert http(stack).delete(f"/api/schedules/{schedule}").status_code == 202
    first = wait_until(lambda: next((e for e in _executions(stack) if e.startswith(f"{TENANT}:sched.flows.")), None),
                       60, what="the execution the slot started")
    done = wait_status(stack, first, "completed", "failed")
    assert done["status"] == "completed" and done["workflow"] == "nightly-flow", done
    assert fired


def _executions(stack) -> list[str]:
    from .eventlog import events_of
    records = events_of(stack.bootstrap, stack.topics.execution_events, stack.topics.partitions)
    return sorted({r.key.decode() for r in records if r.key})
