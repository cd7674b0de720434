"""The real stack scraped by a real Prometheus: every process's /metrics, with the spec's names."""
from __future__ import annotations

import pytest

from hive_streams.processes import wait_until

from .prometheus import Prometheus
from .stack import Stack, free_port

pytestmark = pytest.mark.stack

TASKS = 6
SPEC_NAMES = ("hive_active_agents_total", "hive_task_queue_length", "hive_workflow_executions_total",
              "hive_api_request_duration_seconds_bucket", "hive_api_errors_total", "hive_websocket_connections_active",
              "hive_database_connections_active", "hive_execution_success_rate", "hive_agent_utilization_percent",
              "hive_average_task_completion_time_bucket", "hive_agent_health_status")
LOG_NAMES = ("hive_consumer_lag", "hive_commands_decided_total", "hive_decide_batch_size_bucket",
             "hive_decide_duration_seconds_bucket", "hive_dead_letters_total", "hive_snapshot_age_seconds")


@pytest.fixture(scope="module")
def ports():
    return {"worker": free_port(), "worker2": free_port(), "connect": free_port(), "executor": free_port()}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory, ports):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("metrics"),
              HIVE_WORKER_METRICS_PORT=str(ports["worker"]), HIVE_CONNECT_METRICS_PORT=str(ports["connect"]))
    s.start({"mx-a": ("echo,sleep", 2, "--metrics-port", str(ports["executor"]))})
    # a second worker: the partitions are shared, the matcher (and its gauges) stays on one
    s.workers.append(s.fabric.worker("worker-1", HIVE_WORKER_METRICS_PORT=str(ports["worker2"])))
    s.wait_for_agents(1)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def prometheus(stack, ports, tmp_path_factory):
    jobs = {"hive-api": [f"127.0.0.1:{stack.api_port}"],
            "hive-worker": [f"127.0.0.1:{ports['worker']}", f"127.0.0.1:{ports['worker2']}"],
            "hive-connect": [f"127.0.0.1:{ports['connect']}"], "hive-executor": [f"127.0.0.1:{ports['executor']}"]}
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), jobs).start()
    yield prom
    prom.stop()


def value(prom: Prometheus, expr: str) -> float | None:
    result = prom.query(expr)
    assert len(result) <= 1, f"{expr} has {len(result)} series: sum or filter them"
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_spec_names_with_plausible_values(stack, prometheus):
    task_ids = [stack.client.submit({"name": f"m{i}", "nodes": [{"id": "a", "kind": "echo", "value": i}]})
                .json()["task_id"] for i in range(TASKS)]
    for task_id in task_ids:
        frames = list(stack.client.follow(task_id, timeout=60))
        assert frames[-1].event == "TaskCompleted", stack.logs()
    feed = stack.client.http.stream("GET", "/api/events", timeout=30)  # one SSE feed held open while scraped
    with feed as response:
        assert response.status_code == 200
        seen = lambda: (value(prometheus, 'hive_workflow_executions_total{status="completed"}'),
                        value(prometheus, "hive_websocket_connections_active"))
        try:
            wait_until(lambda: seen() == (TASKS, 1), 60, what="the completions and the open feed scraped")
        except TimeoutError:
            raise AssertionError(f"completed, feeds: {seen()}; targets: {prometheus.targets()}\n{stack.logs()}")
    # Prometheus learns its static targets in batches (every 5 s): wait until each of the five has been scraped
    scraped = lambda: [t for t in prometheus.targets() if t["health"] != "unknown"]
    wait_until(lambda: len(scraped()) == 5, 30, what="every target scraped once")
    up = sorted((t["labels"]["job"], t["health"]) for t in prometheus.targets())
    assert up == [("hive-api", "up"), ("hive-connect", "up"), ("hive-executor", "up"), ("hive-worker", "up"),
                  ("hive-worker", "up")], up
    wait_until(lambda: all(prometheus.query(f"count({name})") for name in SPEC_NAMES + LOG_NAMES), 30,
               what="every metric name scraped")
    assert value(prometheus, "hive_active_agents_total") == 1
    assert value(prometheus, 'hive_agent_health_status{agent="mx-a"}') == 1
    assert value(prometheus, "hive_execution_success_rate") == 1
    assert value(prometheus, "sum(hive_task_queue_length)") in (None, 0)
    assert 0 <= value(prometheus, "hive_agent_utilization_percent") <= 100
    assert value(prometheus, "hive_average_task_completion_time_count") == TASKS
    assert 0 < value(prometheus, "hive_average_task_completion_time_sum") < 60 * TASKS
    assert value(prometheus, 'sum(hive_api_request_duration_seconds_count{route="/api/tasks",status="202"})') == TASKS
    assert value(prometheus, "hive_api_errors_total") == 0
    assert value(prometheus, 'sum(hive_commands_decided_total{family="task"})') >= 2 * TASKS  # submit + result each
    assert value(prometheus, "sum(hive_dead_letters_total)") == 0
    commands = sum(n for name, (n, _) in stack.topics.layout().items() if name.endswith(".commands"))
    wait_until(lambda: value(prometheus, 'count(hive_consumer_lag{job="hive-worker"})') == commands, 60,
               what="every command partition owned by one of the two workers")
    audited = sum(stack.topics.layout()[name][0] for name in stack.topics.event_topics)
    assert value(prometheus, 'count(hive_consumer_lag{job="hive-connect",group="audit"})') == audited
    assert value(prometheus, 'hive_database_connections_active{job="hive-api"}') >= 0
    assert value(prometheus, 'hive_executor_task_duration_seconds_count{outcome="completed"}') == TASKS
    # the log-derived gauges come from the matcher's leader only: one series over two workers, never summed twice
    assert value(prometheus, "count(hive_active_agents_total)") == 1
    assert value(prometheus, 'count(up{job="hive-worker"} == 1)') == 2
    loaded = {rule["name"] for group in prometheus.rules() for rule in group["rules"]}
    assert loaded == {"HighErrorRate", "AgentDown", "ConsumerLagHigh"}


def test_performance_over_five_minutes_from_the_audit_log(stack, prometheus):
    """Runs after the scrape test: its tasks are the window's."""
    def window():
        answer = stack.client.http.get("/api/metrics/performance", params={"window": "5m"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body if body["tasks"]["completed"] >= TASKS else None
    body = wait_until(window, 60, what="the window's completions in the audit log")
    tasks, agent = body["tasks"], body["agents"]["mx-a"]
    assert (tasks["submitted"], tasks["completed"], tasks["failed"], tasks["success_rate"]) == (TASKS, TASKS, 0, 1.0)
    assert tasks["throughput_per_minute"] == round(TASKS / 5, 3)
    assert agent["completed"] == TASKS and agent["error_rate"] == 0.0
    run, wait = agent["run_seconds"], agent["queue_wait_seconds"]
    assert 0 <= run["p50"] <= run["p95"] <= run["p99"] < 60 and 0 <= wait["p50"] <= wait["p99"] < 60, agent
    bad = stack.client.http.get("/api/metrics/performance", params={"window": "7m"})
    assert bad.status_code == 422 and bad.json()["field"] == "window"
    viewer = stack.client_as("viewer", tenant="elsewhere").http.get("/api/metrics/performance?window=1h").json()
    assert viewer["tenant"] == "elsewhere" and viewer["tasks"]["submitted"] == 0  # another tenant's tasks are not its
