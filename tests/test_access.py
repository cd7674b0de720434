"""Every route × every kind of caller × own/other tenant answers what the permission matrix says.

The cases are generated from the app's own route table: a route added without a declared permission
stops the app from being made (and this module from loading); one added without a sample request
here fails its cases. Runs against the real stack, with real tokens.

Both tenants have tasks (queued ones, and one each that ran on the shared agent) and accounts. On a
route that names a resource, "other" names the other tenant's: 404 unless the caller reaches every
tenant. On the others (collections, views, feeds: SSE feeds replay the log from its beginning),
"other" asks whether the other tenant shows through: a caller limited to its tenant never gets a byte
of it, and an admin sees it in the cluster feed and views.
"""
from __future__ import annotations

import time

import httpx
import pytest
from starlette.routing import Mount, Route

from hive_streams.api.app import create_app
from hive_streams.api.guard import check_declared, declaration_of
from hive_streams.auth import PUBLIC
from hive_streams.exceptions import ConfigError
from hive_streams.processes import wait_until
from hive_streams.settings import Settings

from .stack import Stack
from .test_permissions import TABLE

pytestmark = pytest.mark.stack
OWN, OTHER = "acme", "globex"
AGENT = "matrix-agent"
RAN = {"name": "ran", "nodes": [{"id": "a", "kind": "echo"}]}
SEE_EVERY_TENANT = ("/api/events", "/api/views/snapshot", "/api/views/tasks")  # an admin sees the other there
FROM_THE_BEGINNING = "t=0;a=0"
STREAM_READ_SECONDS = 2.0
SUBS = {"admin": "root", "developer": "dev", "viewer": "eve", "service": "svc", "expired": "dev", "none": "dev"}
CALLERS = tuple(SUBS)
UNPLACEABLE = {"name": "matrix", "requires": ["nobody-has-this"], "nodes": [{"id": "a", "kind": "echo"}]}
BODIES = {  # what each state-changing route is sent; a new one needs its sample here
    ("POST", "/api/tasks"): UNPLACEABLE,
    ("POST", "/api/producer-keys"): {},
    ("PUT", "/api/tasks/{task_id}/assign"): {"agent_id": AGENT},
    ("POST", "/api/accounts/{account_id:path}/deposits"): {"amount": 0.01},
    ("POST", "/api/accounts/{account_id:path}/withdrawals"): {"amount": 0.01},
    ("POST", "/api/session"): "the caller's token",
    ("POST", "/api/workflows"): {"name": "matrix", "nodes": {"a": {"kind": "echo", "requires": ["nobody-has-this"]}},
                                 "entry": ["a"]},
    ("POST", "/api/workflows/{name}/executions"): {"inputs": {}},
    ("POST", "/api/executions/{execution_id}/resume"): {"interrupt_id": "none-waits"},
    ("POST", "/api/schedules"): {"cron": "0 0 1 1 *", "target": {"task": RAN}},
    ("POST", "/api/triggers"): {"on": {"type": "TaskFailed"}, "target": {"task": RAN}},
}
ADMITTED_CONFLICTS = {("POST", "/api/executions/{execution_id}/resume")}  # 409: admitted, but nothing waits
TASK_FOR = {("DELETE", "/api/tasks/{task_id}"): "cancel", ("PUT", "/api/tasks/{task_id}/assign"): "pin",
            ("GET", "/api/tasks/{task_id}/nodes/{node_id}/output"): "ran"}  # a node output needs a task that ran
STATIC_ASSET = "/static/dashboard.js"

APP = create_app(Settings(jwt_secret="x" * 32, database_url="sqlite://"))


def _routes() -> list[tuple[str, str, str]]:
    """(method, path, permission) of every route; HEAD answers like GET."""
    out = []
    for route in APP.routes:
        declared = declaration_of(route)
        permission = declared.permission if declared else "UNDECLARED"
        if isinstance(route, Mount):
            out.append(("GET", route.path, permission))
        else:
            out += [(m, route.path, permission) for m in sorted(route.methods - {"HEAD"})]
    return out


def _owned(path: str) -> bool:
    return any(name in path for name in ("{task_id}", "{account_id", "{execution_id}", "{schedule_id}", "{trigger_id}"))


CASES = [(method, path, permission, caller, whose) for method, path, permission in _routes() for caller in CALLERS
         for whose in (("own", "other") if permission != PUBLIC else ("own",))]


def expected(method: str, path: str, permission: str, caller: str, whose: str) -> str:
    if permission == PUBLIC:
        signs_in = (method, path) == ("POST", "/api/session")
        return "401" if signs_in and caller in ("none", "expired") else "2xx"
    if caller in ("none", "expired"):
        return "401"
    reach = TABLE[permission].get(caller)
    if reach is None:
        return "403"
    return "404" if reach != "all" and _owned(path) and whose == "other" else "2xx"


@pytest.fixture(scope="module")
def world(kafka_bootstrap, pg_url, tmp_path_factory):
    """Tasks of two tenants (for viewing, cancelling, pinning; none can be placed on their own) and
    accounts of every caller and of the other tenant's developer."""
    stack = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("access"))
    stack.start({AGENT: ("echo", 2)})
    try:
        stack.wait_for_agents(1)
        tasks = {}
        for tenant in (OWN, OTHER):
            dev = stack.client_as("developer", "dev", tenant)
            for purpose in ("view", "cancel", "pin"):
                response = dev.submit({**UNPLACEABLE, "name": f"{purpose}-{tenant}"})
                assert response.status_code == 202, response.text
                tasks[(purpose, tenant)] = response.json()["task_id"]
            ran = tasks[("ran", tenant)] = dev.submit({**RAN, "name": f"ran-{tenant}"}).json()["task_id"]  # shared agent
            assert list(dev.watch(ran))[-1].event == "TaskCompleted"
            assert dev.http.post("/api/workflows", json=BODIES[("POST", "/api/workflows")]).status_code in (200, 201)
            started = dev.http.post("/api/workflows/matrix/executions", json={"id": "matrix-x"})
            assert started.status_code == 202, started.text
            tasks[("execution", tenant)] = started.json()["execution_id"]
            for kind in ("schedule", "trigger"):  # one of each, to view and delete
                made = dev.http.post(f"/api/{kind}s", json=BODIES[("POST", f"/api/{kind}s")])
                assert made.status_code == 202, made.text
                tasks[(kind, tenant)] = made.json()[f"{kind}_id"]
                wait_until(lambda: dev.http.get(f"/api/{kind}s/{tasks[(kind, tenant)]}").status_code == 200, 30,
                           what=f"the {kind}")
        accounts = [f"{OWN}/{sub}" for sub in ("root", "dev", "eve")] + [f"{OTHER}/dev"]
        for account in accounts:
            assert stack.client.http.post(f"/api/accounts/{account}/deposits", json={"amount": 10}).status_code == 202
        wait_until(lambda: all((stack.client.task(t) or {}).get("status") == ("completed" if p == "ran" else "queued")
                               for (p, _), t in tasks.items() if p not in ("execution", "schedule", "trigger")), 60,
                   what="the tasks queued or completed in the read model")
        wait_until(lambda: all(stack.client.http.get(f"/api/executions/{tasks[('execution', t)]}").status_code == 200
                               for t in (OWN, OTHER)), 60, what="the executions")
        wait_until(lambda: all(stack.client.http.get(f"/api/accounts/{a}").status_code == 200 for a in accounts), 60,
                   what="the accounts")
        wait_until(lambda: len(stack.client.get_json(f"/api/agents/{AGENT}/reputation")["events"]) == 2, 60,
                   what="the agent's read model and its outcomes")
        with httpx.Client(base_url=stack.base_url, timeout=30) as http:  # sends only the headers each case gives
            yield stack, tasks, http
    finally:
        stack.stop()


def _token(stack: Stack, caller: str) -> str | None:
    if caller == "none":
        return None
    if caller == "expired":
        return stack.token("developer", SUBS[caller], OWN, ttl=-120)
    return stack.token(caller, SUBS[caller], OWN)


def _url(stack: Stack, tasks: dict, method: str, path: str, caller: str, whose: str) -> str:
    if path == "/static":
        return STATIC_ASSET
    tenant = OWN if whose == "own" else OTHER
    account = f"{OWN}/{SUBS[caller]}" if whose == "own" else f"{OTHER}/dev"
    url = path.replace("{task_id}", tasks[(TASK_FOR.get((method, path), "view"), tenant)])
    url = url.replace("{account_id:path}", account).replace("{agent_id}", AGENT).replace("{node_id}", "a")
    url = url.replace("{execution_id}", tasks[("execution", tenant)]).replace("{name}", "matrix")
    url = url.replace("{schedule_id}", tasks[("schedule", tenant)]).replace("{trigger_id}", tasks[("trigger", tenant)])
    assert "{" not in url, f"{method} {path}: no sample value for its path parameters: add one to this test"
    return url


@pytest.mark.parametrize("method, path, permission, caller, whose", CASES,
                         ids=[f"{m} {p} {c} {w}" for m, p, _, c, w in CASES])
def test_route_answers_as_the_matrix_says(world, method, path, permission, caller, whose):
    stack, tasks, http = world
    assert permission != "UNDECLARED", f"{method} {path} declares no permission"
    token = _token(stack, caller)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = BODIES.get((method, path))
    if method in ("POST", "PUT"):
        assert body is not None, f"{method} {path}: no sample body: add one to BODIES"
        body = {"token": token or "not-a-token"} if body == "the caller's token" else body
    url = _url(stack, tasks, method, path, caller, whose)
    looks_through = whose == "other" and not _owned(path)
    if looks_through and _is_feed(path):
        headers["Last-Event-ID"] = FROM_THE_BEGINNING  # replays every event still in the log
    status, detail = _request(http, method, url, body, headers, read_feed=looks_through)
    want = expected(method, path, permission, caller, whose)
    admitted = 200 <= status < 300 or (status == 409 and (method, path) in ADMITTED_CONFLICTS)
    got = "2xx" if admitted else str(status)
    assert got == want, f"{caller} ({whose}) {method} {url}: {status} {detail[:300]!r}, the matrix says {want}"
    if got == "2xx" and looks_through:
        sees_all = caller in ("admin", "service")
        if not sees_all:
            assert OTHER.encode() not in detail, f"{caller} {method} {url} shows tenant {OTHER}: {detail[:2000]!r}"
        elif caller == "admin" and path in SEE_EVERY_TENANT:
            assert OTHER.encode() in detail, f"an admin should see every tenant at {url}"


def _is_feed(path: str) -> bool:
    return path.endswith("/events")


def _request(http: httpx.Client, method: str, url: str, body, headers: dict, read_feed: bool) -> tuple[int, bytes]:
    """Status and body; a feed (when asked) is read for a few seconds (agents beat: it never falls silent)."""
    timeout = httpx.Timeout(30, read=STREAM_READ_SECONDS)
    with http.stream(method, url, json=body, headers=headers, timeout=timeout) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return response.status_code, response.read()
        if not read_feed:
            return response.status_code, b""
        chunks, until = [], time.monotonic() + STREAM_READ_SECONDS
        try:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > until:
                    break
        except httpx.ReadTimeout:
            pass
        return response.status_code, b"".join(chunks)


def test_an_app_with_an_undeclared_route_does_not_start():
    async def endpoint(request):
        return None
    with pytest.raises(ConfigError, match="/api/forgotten"):
        check_declared([*APP.routes, Route("/api/forgotten", endpoint)])


def test_every_route_is_walked():
    walked = {(m, p) for m, p, *_ in CASES}
    assert {("POST", "/api/tasks"), ("GET", "/api/events"), ("POST", "/api/accounts/{account_id:path}/deposits"),
            ("GET", "/static")} <= walked
    assert len(walked) == len(_routes())
