"""The log-derived gauges, read from the matcher's fold at scrape time, on the worker that leads it only."""
from __future__ import annotations

from collections.abc import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ..kafka.clock import now_ms
from .fabric import ENDINGS, queue_by_priority, utilisation_percent


class FabricCollector(Collector):
    def __init__(self, leading: Callable[[], object | None], timeout_ms: int):
        self.leading = leading  # the caught-up matcher while this process leads it, else None
        self.timeout_ms = timeout_ms

    def collect(self):
        matcher = self.leading()
        if matcher is None:
            return
        market, stats, now = matcher.market, matcher.stats, now_ms()
        agents = list(market.agents.values())
        yield GaugeMetricFamily("hive_active_agents_total", "agents online and beating",
                                value=sum(a.live(now, self.timeout_ms) for a in agents))
        queue = GaugeMetricFamily("hive_task_queue_length", "tasks waiting for an agent", labels=["priority"])
        for priority, n in sorted((queue_by_priority(market.waiting.values()) or {0: 0}).items()):
            queue.add_metric([str(priority)], n)
        yield queue
        runs = CounterMetricFamily("hive_workflow_executions", "tasks ended, by status", labels=["status"])
        for status in ENDINGS.values():
            runs.add_metric([status], stats.ended.get(status, 0))
        yield runs
        rate = stats.success_rate
        yield GaugeMetricFamily("hive_execution_success_rate", "completed / (completed + failed) tasks, 0 to 1",
                                value=1.0 if rate is None else rate)
        yield GaugeMetricFamily("hive_agent_utilization_percent", "slots held over slots of live agents",
                                value=utilisation_percent(agents, now, self.timeout_ms))
        h = stats.completion
        yield HistogramMetricFamily("hive_average_task_completion_time",
                                    "seconds from submission to completion", buckets=h.cumulative(), sum_value=h.sum)
        health = GaugeMetricFamily("hive_agent_health_status", "1: online and beating, 0: not", labels=["agent"])
        for a in sorted(agents, key=lambda a: a.agent_id):
            health.add_metric([a.agent_id], 1.0 if a.live(now, self.timeout_ms) else 0.0)
        yield health
