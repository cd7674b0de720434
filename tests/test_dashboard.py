"""The dashboard in a real browser (Debian's headless Chromium, driven by playwright-core) on the real stack."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from hive_streams.api.positions import VectorCodec
from hive_streams.processes import wait_until

from .stack import ALL_KINDS, TENANT, Stack

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parent.parent
BROWSER = ROOT / "tests" / "browser"
ARTIFACTS = ROOT / "tests" / "artifacts"

DIAMOND = {
    "id": "dashboard-diamond", "name": "dashboard-diamond", "priority": 3,
    "nodes": [
        {"id": "fetch", "kind": "echo", "value": "hello"},
        {"id": "think", "kind": "sleep", "seconds": 1.5, "depends_on": ["fetch"]},
        {"id": "count", "kind": "shell", "command": "echo {{ nodes.fetch.output }} | wc -c", "depends_on": ["fetch"]},
        {"id": "combine", "kind": "python", "function": "hive_streams.demo.steps:combine", "depends_on": ["think", "count"]},
        {"id": "report", "kind": "echo", "value": "done", "depends_on": ["combine"]},
    ],
}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("dashboard"))
    s.start({"desk-1": (ALL_KINDS, 2), "gpu-1": (ALL_KINDS + ",gpu:0.9", 4)})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser_tools():
    subprocess.run(["bash", str(BROWSER / "setup.sh")], check=True, timeout=900)


def test_dashboard_shows_a_task_completing_live(stack, browser_tools):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    browser = subprocess.Popen(["node", str(BROWSER / "dashboard.cjs"), stack.base_url, f"{TENANT}:{DIAMOND['id']}", str(shot)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HIVE_TOKEN": stack.token("viewer", "watcher")})
    try:
        ready = browser.stdout.readline().strip()
        assert ready == "ready", browser.stderr.read()
        assert stack.client.submit(DIAMOND).status_code == 202  # after the page is live: it arrives by SSE
        out, err = browser.communicate(timeout=300)
    finally:
        if browser.poll() is None:
            browser.kill()
    assert browser.returncode == 0, f"{err}\n{stack.logs()}"
    seen = json.loads(out.strip().splitlines()[-1])
    assert sorted(seen["nodes"]) == sorted(n["id"] for n in DIAMOND["nodes"])
    assert {"desk-1", "gpu-1"} <= set(seen["agents"])
    assert seen["errors"] == []
    assert shot.stat().st_size > 10_000


def test_page_and_assets_are_served_from_this_machine(stack):
    page = httpx.get(stack.base_url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="http' not in page.text and 'href="http' not in page.text  # nothing fetched from elsewhere
    for asset in ("dashboard.js", "graph.js", "dashboard.css"):
        assert httpx.get(f"{stack.base_url}/static/{asset}").status_code == 200


def test_the_page_is_public_its_data_is_not(stack):
    assert httpx.get(f"{stack.base_url}/api/views/snapshot").status_code == 401
    assert httpx.get(f"{stack.base_url}/api/session").json()["signed_in"] is False


def test_signing_in_sets_a_strict_http_only_cookie_that_feeds_and_fetches_use(stack):
    with httpx.Client(base_url=stack.base_url, timeout=30) as browser:
        refused = browser.post("/api/session", json={"token": stack.token("viewer", "v", ttl=-60)})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
        signed_in = browser.post("/api/session", json={"token": stack.token("viewer", "v")})
        assert signed_in.status_code == 200 and signed_in.json()["account"] == "tests/v"
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert browser.get("/api/views/snapshot").status_code == 200
        with browser.stream("GET", "/api/events") as feed:
            assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/event-stream")
        assert browser.get("/api/session").json()["roles"] == ["viewer"]
        browser.delete("/api/session")
        assert browser.get("/api/views/snapshot").status_code == 401


def test_a_cross_site_form_post_cannot_submit(stack):
    """A form can only send urlencoded, multipart or text/plain bodies without a preflight: all are refused."""
    for kind, body in (("application/x-www-form-urlencoded", "name=x"), ("text/plain", '{"name": "x"}'),
                       ("multipart/form-data; boundary=b", "--b--")):
        response = stack.client.http.post("/api/tasks", content=body, headers={"content-type": kind})
        assert response.status_code == 415 and response.json()["field"] == "Content-Type", kind
    deposit = stack.client.http.post(f"/api/accounts/{stack.account()}/deposits", content="amount=5",
                                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert deposit.status_code == 415


def test_snapshot_has_a_position_the_cluster_feed_accepts(stack):
    snapshot = stack.client.get_json("/api/views/snapshot")
    assert {"position", "tasks", "agents", "failures", "event_types"} <= set(snapshot)
    assert "TaskCompleted" in snapshot["event_types"]["task"] and "SlotReserved" in snapshot["event_types"]["agent"]
    codec = VectorCodec(stack.topics, {stack.topics.task_events: stack.topics.partitions,
                                       stack.topics.agent_events: stack.topics.partitions, stack.topics.alerts: 1})
    assert codec.encode(codec.decode(snapshot["position"])) == snapshot["position"]
    assert snapshot["position"].endswith(";x=0") and "AlertRaised" in snapshot["event_types"]["alert"]  # every alert
    assert {a["agent_id"] for a in snapshot["agents"]} >= {"desk-1", "gpu-1"}
    assert stack.client.http.get("/api/views/tasks", params={"limit": "0"}).status_code == 422


def test_task_list_is_newest_first_and_limited(stack):
    ids = [stack.client.submit({"name": f"listed-{i}", "nodes": [{"id": "a", "kind": "echo"}]}).json()["task_id"]
           for i in range(6)]
    for task_id in ids:
        assert list(stack.client.follow(task_id, timeout=60))[-1].event == "TaskCompleted"
    wait_until(lambda: all((stack.client.task(t) or {}).get("status") == "completed" for t in ids), 30,
               what="the read model")
    listed = stack.client.get_json("/api/views/tasks", {"limit": 5})
    assert len(listed) == 5 and all(t["status"] == "completed" for t in listed)
    assert [t["updated_at"] for t in listed] == sorted((t["updated_at"] for t in listed), reverse=True)
    assert {t["task_id"] for t in listed} <= set(ids)  # the newest five are among the six just run
