"""The SSE benchmark's Markdown result; its raw figures go beside it as JSON."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path


def _settings(changed: dict[str, dict]) -> str:
    if not changed:
        return "none: every setting at its documented default"
    return "; ".join(f"`{k}={v['value']}` (default {v['default']})" for k, v in sorted(changed.items()))


def _latency_rows(lat: dict) -> str:
    names = [k for k in lat if k.startswith("p")] + ["max"]
    return "\n".join(f"| delivery latency {name} | {lat[name]:.1f} ms |" for name in names)


def write_report(path: Path, r: dict) -> None:
    pace = f"{r['rate']:g} a second" if r["rate"] else "all at once, as fast as the API takes them"
    everyone = "yes" if r["complete"] == r["clients"] else f"**no**: {r['complete']} of {r['clients']}"
    path.write_text(f"""# SSE fan-out: {r['clients']} clients, {r['tasks']} tasks, one API process

Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {r['machine']}. Raw figures, with every client's own
counts: `{r['raw']}`.

```
{r['command']}
```

{r['clients']} clients (in {r['client_procs']} client processes on the same machine) follow the cluster
feed `GET /api/events` of one API process; then {r['tasks']} tasks of three chained `echo` nodes are
submitted over HTTP ({pace}) and run by two executors. Every frame a client receives is counted; a second
frame with a seq the client already has is a duplicate, a seq missing below a task's last is a gap, and
either fails the client. Latency is the time from an event's `at` (set by the task decider when it decides
the event) to the moment a client parsed its frame, over every task-event frame of every client
({r['latency_ms']['n']:,} samples; a percentile is shown only where they support it).

| measure | value |
|---|---|
| settings changed for this run | {_settings(r['changed_settings'])} |
| every client got every event of every task, each once, in order | {everyone} |
| frames received, every type | {r['frames']:,} |
| task-event frames received | {r['task_frames']:,} |
| duplicate frames | {r['duplicates']:,} |
| seqs missing (gaps) | {r['gaps']:,} |
| task feeds out of order | {r['out_of_order']:,} |
| tasks a client never saw end | {r['tasks_unended']:,} |
| clients dropped as too slow | {r['dropped_slow_clients']} |
| run time (first submit to last client done) | {r['elapsed_s']} s |
{_latency_rows(r['latency_ms'])}
| API RSS before clients | {r['rss_idle_mib']} MiB |
| API RSS with every client connected | {r['rss_connected_mib']} MiB |
| API RSS peak during the run | {r['rss_peak_mib']} MiB |
| API process CPU during the run | {r['api_cpu_s']} s |
| client processes' CPU during the run | {r['clients_cpu_s']} s |
| 1-minute load average before / after | {r['load_before']} / {r['load_after']} |

The machine has two cores shared by the broker, PostgreSQL, the worker, the connector, two
executors, the API and the client processes, so the latencies include waiting for a core.
""")
