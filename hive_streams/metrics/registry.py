"""The metrics the processes export, with the platform spec's names, on prometheus-client's registry.

Each process registers the groups it feeds (`export("api", "store")`), so none shows series it never sets.
"""
from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # no `_created` series beside every counter and histogram
GROUPS: dict[str, list] = {}


def _in(group: str, metric):
    GROUPS.setdefault(group, []).append(metric)
    return metric


def export(*groups: str) -> None:
    """Registers the groups' metrics with the process's registry, once."""
    for group in groups:
        for metric in GROUPS[group]:
            try:
                REGISTRY.register(metric)
            except ValueError:  # registered already
                pass


# the API
API_REQUEST_DURATION = _in("api", Histogram(
    "hive_api_request_duration_seconds", "time to the response's headers, by route template and status",
    ["route", "status"], registry=None))
API_ERRORS = _in("api", Counter("hive_api_errors_total", "API responses with a 5xx status", registry=None))
SSE_CONNECTIONS = _in("api", Gauge("hive_websocket_connections_active", "open server-sent-event feeds", registry=None))

# the worker's deciders
COMMANDS_DECIDED = _in("worker", Counter(
    "hive_commands_decided_total", "commands decided and committed", ["family"], registry=None))
DECIDE_BATCH = _in("worker", Histogram(
    "hive_decide_batch_size", "commands decided in one batch", ["family"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=None))
DECIDE_DURATION = _in("worker", Histogram(
    "hive_decide_duration_seconds", "time to decide one batch (without its commit)", ["family"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0), registry=None))
DEAD_LETTERS = _in("worker", Counter(
    "hive_dead_letters_total", "records sent to the dead-letter topic", ["family"], registry=None))
SNAPSHOT_AGE = _in("worker", Gauge(
    "hive_snapshot_age_seconds", "time since an owned partition's last snapshot (or its load)",
    ["topic", "partition"], registry=None))

# every consumer that reads the log
CONSUMER_LAG = _in("consumer", Gauge(
    "hive_consumer_lag", "records between a consumer's position and the end of a partition",
    ["group", "topic", "partition"], registry=None))

# the executor
EXECUTOR_RUNNING = _in("executor", Gauge("hive_executor_tasks_running", "tasks this executor runs now", registry=None))
EXECUTOR_TASK_SECONDS = _in("executor", Histogram(
    "hive_executor_task_duration_seconds", "run time of tasks in this executor", ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=None))

# every process with a store
DB_CONNECTIONS = _in("store", Gauge(
    "hive_database_connections_active", "store connections checked out of the pool now", registry=None))


def watch_pool(engine) -> None:
    """hive_database_connections_active follows the engine's pool (0 for a pool that does not count)."""
    pool = engine.pool
    DB_CONNECTIONS.set_function(lambda: float(pool.checkedout()) if hasattr(pool, "checkedout") else 0.0)
