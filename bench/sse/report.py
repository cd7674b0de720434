"""The SSE benchmark's Markdown result."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path


def write_report(path: Path, r: dict) -> None:
    pace = f"{r['rate']:g} a second" if r["rate"] else "all at once, as fast as the API takes them"
    everyone = "yes" if r["complete"] == r["clients"] else f"no: {r['complete']} of {r['clients']}"
    path.write_text(f"""# SSE fan-out: {r['clients']} clients, {r['tasks']} tasks, one API process

Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {r['machine']}.

```
{r['command']}
```

{r['clients']} clients (in {r['client_procs']} client processes on the same machine) follow the cluster
feed `GET /api/events` of one API process; then {r['tasks']} tasks of three chained `echo` nodes are
submitted over HTTP ({pace}) and run by two executors. Latency is the time from an event's `at` (set by the
task decider when it decides the event) to the moment a client parsed its frame, over every task event
of every client.

| measure | value |
|---|---|
| every client got every event of every task, each once | {everyone} |
| task-event frames checked | {r['task_events']:,} |
| frames received (task and agent events) | {r['frames']:,} |
| run time (first submit to last client done) | {r['elapsed_s']} s |
| delivery latency p50 | {r['p50_ms']} ms |
| delivery latency p90 | {r['p90_ms']} ms |
| delivery latency p99 | {r['p99_ms']} ms |
| delivery latency max | {r['max_ms']} ms |
| API RSS before clients | {r['rss_idle_mib']} MiB |
| API RSS with every client connected | {r['rss_connected_mib']} MiB |
| API RSS peak during the run | {r['rss_peak_mib']} MiB |
| clients dropped as too slow | {r['dropped_slow_clients']} |
| API process CPU during the run | {r['api_cpu_s']} s |
| client processes' CPU during the run | {r['clients_cpu_s']} s |
| 1-minute load average before / after | {r['load_before']} / {r['load_after']} |

The machine has two cores shared by the broker, PostgreSQL, the worker, the connector, two
executors, the API and the client processes, so the latencies include waiting for a core.
""")
