"""Prometheus metrics: the spec's names, the fold behind the log-derived ones, and the serving port."""
from .collector import FabricCollector
from .fabric import FabricStats
from .registry import (API_ERRORS, API_REQUEST_DURATION, COMMANDS_DECIDED, CONSUMER_LAG, DEAD_LETTERS, DECIDE_BATCH,
                       DB_CONNECTIONS, DECIDE_DURATION, EXECUTOR_RUNNING, EXECUTOR_TASK_SECONDS, SNAPSHOT_AGE,
                       SSE_CONNECTIONS, export, watch_pool)
from .serve import forget_lag, record_lag, serve

__all__ = ["API_ERRORS", "API_REQUEST_DURATION", "COMMANDS_DECIDED", "CONSUMER_LAG", "DB_CONNECTIONS", "DEAD_LETTERS",
           "DECIDE_BATCH",
           "DECIDE_DURATION", "EXECUTOR_RUNNING", "EXECUTOR_TASK_SECONDS", "FabricCollector", "FabricStats",
           "SNAPSHOT_AGE", "SSE_CONNECTIONS", "forget_lag", "record_lag", "export", "serve", "watch_pool"]
