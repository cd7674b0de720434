"""Tenants on the real stack: the same task id in two tenants, what one tenant's viewer can see, pins within budget."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.kafka.routing import CommandSender
from hive_streams.processes import wait_until

from .roles import as_role, service_sealer
from .stack import Stack

pytestmark = pytest.mark.stack
SHARED, PRICED = "shared-agent", "priced-agent"
UNPLACEABLE = {"name": "unplaceable", "requires": ["nobody-has-this"], "nodes": [{"id": "a", "kind": "echo"}]}


def nightly(tenant: str, **more) -> dict:
    """The same id in every tenant; a parameter and an output only this tenant should ever see."""
    return {"id": "nightly", "name": f"nightly of {tenant}", **more,
            "nodes": [{"id": "a", "kind": "echo", "value": f"{tenant}-secret"}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("tenants"))
    s.start({SHARED: ("echo", 2), PRICED: ("nobody-else", 1, "--price", "1")})
    s.wait_for_agents(2)
    yield s
    s.stop()


class Follower(threading.Thread):
    """Reads one SSE feed into `frames` until `done` says so."""

    def __init__(self, client, path: str, start: str, done):
        super().__init__(daemon=True)
        self.client, self.path, self.start_at, self.done = client, path, start, done
        self.frames, self.error = [], None

    def run(self) -> None:
        try:
            for frame in self.client.stream(self.path, self.start_at, timeout=180):
                self.frames.append(frame)
                if self.done(frame):
                    return
        except Exception as exc:  # reported by the test
            self.error = exc


def completed(task_id: str):
    return lambda frame: frame.event == "TaskCompleted" and frame.data["task_id"] == task_id


def test_a_viewer_of_one_tenant_never_receives_anything_of_another(stack):
    viewer = stack.client_as("viewer", "eve", "acme")
    start = viewer.get_json("/api/views/snapshot")["position"]
    followers = [Follower(viewer, "/api/events", start, completed("acme:nightly")),
                 Follower(viewer, f"/api/agents/{SHARED}/events", start, completed("acme:nightly"))]
    for follower in followers:
        follower.start()
    globex = stack.client_as("developer", "dev", "globex").submit(nightly("globex"))
    assert globex.status_code == 202 and globex.json()["task_id"] == "globex:nightly", globex.text
    assert list(stack.client.watch("globex:nightly"))[-1].event == "TaskCompleted"  # through the same hub
    acme = stack.client_as("developer", "dev", "acme").submit(nightly("acme"))
    assert acme.status_code == 202 and acme.json()["task_id"] == "acme:nightly", acme.text
    for follower in followers:
        follower.join(180)
        assert not follower.is_alive() and follower.error is None, (follower.path, follower.error)
    cluster, agent = (f.frames for f in followers)
    for frame in cluster + agent:  # every frame whole: its type, its id and every field of its data
        text = f"{frame.event} {frame.id} {json.dumps(frame.data)}"
        assert "globex" not in text, text
    assert {"TaskSubmitted", "TaskAssigned", "TaskCompleted"} <= {f.event for f in cluster}
    assert any("acme-secret" in json.dumps(f.data) for f in cluster)  # its own parameters and outputs it does see
    assert {"SlotReserved", "TaskAssigned", "TaskCompleted"} <= {f.event for f in agent}  # its own task, on the agent
    assert all(f.data.get("agent_id") == SHARED for f in agent)

    wait_until(lambda: '"acme:nightly"' in viewer.http.get("/api/views/snapshot").text, 60, what="the read model")
    wait_until(lambda: (stack.client.task("globex:nightly") or {}).get("status") == "completed", 60,
               what="the other tenant's task in the read model")
    for path in ("/api/views/snapshot", "/api/views/tasks", "/api/status/cluster", f"/api/agents/{SHARED}/reputation",
                 "/api/status/agents", "/api/views/agents"):
        response = viewer.http.get(path)
        assert response.status_code == 200 and "globex" not in response.text, (path, response.text[:500])
    assert "acme:nightly" in viewer.http.get("/api/views/tasks").text
    assert '"globex:nightly"' in stack.client.http.get("/api/views/tasks").text  # an admin sees every tenant
    only = stack.client.get_json("/api/views/tasks", params={"tenant": "globex"})
    assert {t["task_id"] for t in only} == {"globex:nightly"}
    assert viewer.http.get("/api/views/tasks", params={"tenant": "globex"}).status_code == 403


def test_the_same_id_in_two_tenants_is_two_tasks_and_a_repeat_is_the_first_answer(stack):
    acme, globex = (stack.client_as("developer", "dev", t) for t in ("acme", "globex"))
    first = acme.submit(nightly("acme"))  # a repeat when the test above ran
    assert first.status_code == 202 and first.json()["task_id"] == "acme:nightly"
    assert globex.submit(nightly("globex")).status_code == 202
    for client in (acme, globex):
        assert list(client.watch("nightly"))[-1].event == "TaskCompleted"
    again = acme.submit(nightly("acme"))
    assert (again.status_code, again.content) == (first.status_code, first.content)
    conflict = acme.submit(nightly("acme", priority=7))
    assert conflict.status_code == 409 and conflict.json()["field"] == "id"
    batch = acme.submit_many([nightly("acme"), nightly("acme", priority=7)]).json()
    assert [i["status"] for i in batch["items"]] == ["submitted", "rejected"] and batch["items"][1]["code"] == 409

    assert acme.task("nightly")["task_id"] == "acme:nightly"  # a bare id is the caller's tenant's
    assert globex.task("nightly")["task_id"] == "globex:nightly"
    assert acme.task("nightly")["outputs"] != globex.task("nightly")["outputs"]
    assert acme.http.get("/api/tasks/globex:nightly").status_code == 404
    assert stack.client.get_json("/api/tasks/nightly", params={"tenant": "globex"})["task_id"] == "globex:nightly"

    after = acme.submit({"id": "report", "name": "report", "after": ["nightly"], "nodes": [{"id": "a", "kind": "echo"}]})
    assert after.status_code == 202
    frames = list(acme.watch("report"))
    assert frames[0].data["after"] == ["acme:nightly"] and frames[-1].event == "TaskCompleted"
    foreign = globex.submit({"name": "x", "after": ["acme:nightly"], "nodes": [{"id": "a", "kind": "echo"}]})
    assert foreign.status_code == 422 and foreign.json()["field"] == "after[0]"


def test_a_pin_never_holds_more_than_the_budget(stack):
    dev = stack.client_as("developer", "dev", "acme")
    unbudgeted = dev.submit(UNPLACEABLE).json()["task_id"]
    budgeted = dev.submit({**UNPLACEABLE, "budget": 5}).json()["task_id"]
    wait_until(lambda: all((stack.client.task(t) or {}).get("status") == "queued" for t in (unbudgeted, budgeted)),
               60, what="the tasks queued")
    refused = stack.client.http.put(f"/api/tasks/{unbudgeted}/assign", json={"agent_id": PRICED})
    assert refused.status_code == 422 and refused.json()["field"] == "agent_id", refused.text
    assert "no budget" in refused.json()["error"]
    assert stack.client.http.put(f"/api/tasks/{budgeted}/assign", json={"agent_id": PRICED}).status_code == 202

    async def pin_behind_the_apis_back():
        sender = CommandSender(as_role("api"), stack.topics, default_codec(), "/tests/raw",
                               sealer=service_sealer())
        await sender.start()
        try:
            await sender.send_and_wait(c.PinTask(unbudgeted, "raw-pin", 0, PRICED))
        finally:
            await sender.stop()
    asyncio.run(pin_behind_the_apis_back())
    waiting = None
    for frame in stack.client.stream(f"/api/tasks/{unbudgeted}/events", timeout=60):
        if frame.event == "TaskWaiting" and "budget" in frame.data["reason"]:
            waiting = frame.data["reason"]
            break
    assert waiting == f"no eligible agent: {PRICED}: price 1.0 and the task has no budget"
    assert stack.client.get_json(f"/api/tasks/{unbudgeted}/payments")["payments"] == []  # nothing held


def test_different_definitions_of_one_id_sent_at_once_are_one_task_and_conflicts(stack):
    """No read model has seen the id yet when these arrive: the claim in the store decides, not a race."""
    dev = stack.client_as("developer", "dev", "acme")
    definitions = [{"id": "race", "name": f"race-{i}", "nodes": [{"id": "a", "kind": "echo", "value": str(i)}]}
                   for i in range(12)]
    answers = [None] * len(definitions)
    start = threading.Barrier(len(definitions))

    def send(i: int) -> None:
        client = stack.client_as("developer", "dev", "acme")
        start.wait()
        answers[i] = client.submit(definitions[i]) if i % 2 else client.submit_many([definitions[i]])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(definitions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = [i for i, a in enumerate(answers)
                if a.status_code == 202 and (i % 2 or a.json()["items"][0]["status"] == "submitted")]
    assert len(accepted) == 1, [a.text for a in answers]
    refused = [a for i, a in enumerate(answers) if i not in accepted]
    assert all((a.json() if i % 2 else a.json()["items"][0])["field"] == "id"
               for i, a in enumerate(answers) if i not in accepted)
    assert all(a.status_code in (409, 422) for a in refused)  # a batch whose only item is refused is 422
    (winner,) = accepted
    assert list(dev.watch("race"))[-1].event == "TaskCompleted"
    assert dev.task("race")["name"] == f"race-{winner}"
    assert dev.submit(definitions[winner]).status_code == 202  # the winner's definition again: a repeat
