"""The log-derived figures without a broker, the API's route labels, and the shipped Prometheus rules."""
from __future__ import annotations

import subprocess

import httpx
from starlette.routing import Route

from hive_streams.api.metrics import UNMATCHED, route_of
from hive_streams.domain import events as e
from hive_streams.domain.agent import AgentState
from hive_streams.domain.matching import Need, Waiting
from hive_streams.metrics.fabric import FabricStats, queue_by_priority, utilisation_percent
from hive_streams.settings import REPO_ROOT

from .prometheus import binary

RULES_DIR = REPO_ROOT / "deploy" / "prometheus"


def submitted(task_id: str, at: int) -> e.TaskSubmitted:
    return e.TaskSubmitted(task_id, 1, at, "t", "tests/admin", ())


def test_ended_tasks_by_status_completion_time_and_success_rate():
    stats = FabricStats()
    for event in (submitted("a", 1000), submitted("b", 1000), submitted("c", 1000), submitted("a", 1000),  # a repeat
                  e.TaskCompleted("a", 2, 3500, "ag", ()), e.TaskFailed("b", 2, 9000, "boom"),
                  e.TaskCancelled("c", 2, 2000)):
        stats.observe(event)
    assert stats.ended == {"completed": 1, "failed": 1, "cancelled": 1}
    assert stats.seen == {} and stats.submitted_at == {}  # ended tasks are forgotten: memory follows live tasks
    assert stats.success_rate == 0.5
    assert (stats.completion.total, stats.completion.sum) == (1, 2.5)
    assert dict(stats.completion.cumulative())["2.5"] == 1 and dict(stats.completion.cumulative())["1.0"] == 0


def test_no_ended_task_has_no_success_rate():
    assert FabricStats().success_rate is None


def test_utilisation_counts_live_agents_only():
    now, timeout = 10_000, 5_000
    busy = AgentState("a", status="online", slots=4, holding=frozenset({"t1", "t2", "t3"}), last_seen=now)
    idle = AgentState("b", status="online", slots=4, last_seen=now)
    silent = AgentState("c", status="online", slots=8, holding=frozenset({"x"}), last_seen=0)
    assert utilisation_percent([busy, idle, silent], now, timeout) == 37.5
    assert utilisation_percent([silent], now, timeout) == 0.0


def test_queue_is_counted_by_priority():
    waiting = [Waiting("a", Need(priority=5), 1), Waiting("b", Need(priority=5), 2), Waiting("c", Need(), 3)]
    assert queue_by_priority(waiting) == {5: 2, 0: 1}


def test_route_labels_are_templates_and_unknown_paths_share_one():
    routes = [Route("/api/tasks/{task_id}", lambda r: None), Route("/api/tasks", lambda r: None)]
    scope = {"type": "http", "method": "GET", "path_params": {}}
    assert route_of(routes, {**scope, "path": "/api/tasks/tests:42"}) == "/api/tasks/{task_id}"
    assert route_of(routes, {**scope, "path": "/nowhere/7"}) == UNMATCHED


def test_promtool_checks_the_alerting_rules():
    run = subprocess.run([binary("promtool"), "check", "rules", "alerts.yml"], cwd=RULES_DIR, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 3 rules found" in run.stdout


def test_promtool_rule_unit_tests_pass():
    run = subprocess.run([binary("promtool"), "test", "rules", "alerts_test.yml"], cwd=RULES_DIR,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_checks_the_example_configuration():
    run = subprocess.run([binary("promtool"), "check", "config", "prometheus.yml"], cwd=RULES_DIR,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_grafana_dashboard_and_rules_name_only_exported_metrics():
    """Every metric a panel or a rule queries is one a process exports (a typo would show an empty panel)."""
    import json
    import re

    import yaml

    from hive_streams.metrics.registry import GROUPS

    exported = {m._name for metrics in GROUPS.values() for m in metrics}
    exported |= {"hive_active_agents_total", "hive_task_queue_length", "hive_workflow_executions",
                 "hive_execution_success_rate", "hive_agent_utilization_percent", "hive_average_task_completion_time",
                 "hive_agent_health_status"}  # the matcher leader's collector
    suffixes = re.compile(r"_(bucket|sum|count|total)$")
    dashboard = json.loads((REPO_ROOT / "deploy" / "grafana" / "hive-streams.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\bhive_[a-z_]+", expr)}
    unknown = {n for n in used if n not in exported and suffixes.sub("", n) not in exported}
    assert used and unknown == set(), unknown
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.kafka.yml").read_text())
    assert {"prometheus", "grafana"} <= set(compose["services"])


async def test_request_timing_counts_server_errors_and_labels_by_template():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse

    from hive_streams.api.metrics import RequestTiming
    from hive_streams.metrics import API_ERRORS, API_REQUEST_DURATION

    async def ok(request):
        return PlainTextResponse("ok")

    async def broken(request):
        raise RuntimeError("boom")

    routes = [Route("/things/{thing_id}", ok), Route("/broken", broken)]
    app = Starlette(routes=routes)
    app.add_middleware(RequestTiming, routes=routes)

    def count(route: str, status: str) -> float:
        return sum(s.value for s in API_REQUEST_DURATION.collect()[0].samples
                   if s.name.endswith("_count") and s.labels == {"route": route, "status": status})

    errors = API_ERRORS._value.get()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/things/7")).status_code == 200
        assert (await client.get("/things/8")).status_code == 200
        assert (await client.get("/broken")).status_code == 500
        assert (await client.get("/nowhere")).status_code == 404
    assert count("/things/{thing_id}", "200") == 2
    assert count("/broken", "500") == 1 and count(UNMATCHED, "404") == 1
    assert API_ERRORS._value.get() == errors + 1
