"""`hive-streams submit | watch | agents | tasks | show`: the API from a terminal, with live progress bars."""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .client import HiveClient

COMMANDS = ("submit", "watch", "agents", "tasks", "show")
SHOWN = {"task": "/api/tasks/{}", "agent": "/api/agents/{}", "account": "/api/accounts/{}"}
EXIT_OK, EXIT_TASK_DID_NOT_COMPLETE, EXIT_REFUSED, EXIT_NO_API = 0, 1, 2, 3
NODE_STYLE = {"pending": "dim", "running": "cyan", "completed": "green", "failed": "bold red"}


def add_parsers(sub) -> None:
    p = sub.add_parser("submit", help="submit a task definition (YAML or JSON file)")
    p.add_argument("file", type=Path)
    p.add_argument("--watch", action="store_true", help="show per-node progress until the task ends")
    w = sub.add_parser("watch", help="show a task's per-node progress until it ends")
    w.add_argument("task_id")
    sub.add_parser("agents", help="agents with their status, load, capacity and reputation")
    t = sub.add_parser("tasks", help="the most recently updated tasks")
    t.add_argument("--status", help="only tasks with this status")
    t.add_argument("--limit", type=int, default=30)
    s = sub.add_parser("show", help="a task, agent or account as JSON: as it is, or as it was (from the log)")
    s.add_argument("kind", choices=sorted(SHOWN))
    s.add_argument("id")
    when = s.add_mutually_exclusive_group()
    when.add_argument("--as-of", help="an ISO 8601 time (UTC unless it says otherwise): its state then")
    when.add_argument("--at-seq", help="its state after its event with this seq")


def run(args, settings) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request under the progress bars
    console = Console()
    client = HiveClient(settings.api_base_url, token=settings.token)
    try:
        if args.command == "submit":
            return submit(client, console, args.file, args.watch)
        if args.command == "watch":
            return watch(client, console, args.task_id)
        if args.command == "show":
            return show(client, args.kind, args.id, args.as_of, args.at_seq)
        table = agents_table(client.agents()) if args.command == "agents" else tasks_table(
            client.tasks(args.limit, args.status))
        console.print(table)
        return EXIT_OK
    except httpx.TransportError as exc:
        console.print(f"[red]cannot reach the API at {settings.api_base_url}[/]: {exc} (set HIVE_API_URL)")
        return EXIT_NO_API
    except httpx.HTTPStatusError as exc:
        console.print(f"[red]refused ({exc.response.status_code})[/]{_field(exc.response)}: {_reason(exc.response)}")
        return EXIT_REFUSED
    finally:
        client.close()


def _field(response: httpx.Response) -> str:
    try:
        field = response.json().get("field")
    except (ValueError, AttributeError):
        return ""
    return f" at [bold]{field}[/]" if field else ""


def _reason(response: httpx.Response) -> str:
    try:
        reason = response.json().get("error", response.text)
    except ValueError:
        reason = response.text
    return f"{reason} (set HIVE_TOKEN to a token: `hive-streams token --help`)" if response.status_code == 401 else reason


def show(client: HiveClient, kind: str, ident: str, as_of: str | None, at_seq: str | None) -> int:
    params = {"as_of": as_of} if as_of is not None else {"at_seq": at_seq} if at_seq is not None else {}
    print(json.dumps(client.get_json(SHOWN[kind].format(ident), params), indent=2))
    return EXIT_OK


def submit(client: HiveClient, console: Console, path: Path, follow: bool) -> int:
    content_type = "application/json" if path.suffix.lower() == ".json" else "application/yaml"
    response = client.submit(path.read_bytes(), content_type)
    if response.status_code != 202:
        body = response.json()
        console.print(f"[red]refused ({response.status_code})[/] at [bold]{body.get('field')}[/]: {_reason(response)}")
        return EXIT_REFUSED
    task_id = response.json()["task_id"]
    console.print(f"submitted [bold]{task_id}[/]")
    return watch(client, console, task_id) if follow else EXIT_OK


def watch(client: HiveClient, console: Console, task_id: str) -> int:
    started = time.monotonic()
    bars: dict[str, int] = {}
    outcome, reason = "", ""
    progress = Progress(TextColumn("{task.fields[node]:<18}"), BarColumn(bar_width=30),
                        TextColumn("[{task.fields[style]}]{task.fields[status]:<10}"), TimeElapsedColumn(),
                        console=console, transient=False)
    with progress:
        for frame in client.watch(task_id):
            data = frame.data
            if frame.event == "TaskSubmitted":
                for node in data["nodes"]:
                    if node["id"] not in bars:
                        bars[node["id"]] = progress.add_task("", total=1.0, start=False, node=node["id"],
                                                             status="pending", style=NODE_STYLE["pending"])
            elif frame.event in ("NodeStarted", "NodeProgress", "NodeCompleted", "NodeFailed") and data["node_id"] in bars:
                _node(progress, bars[data["node_id"]], frame.event, data)
            elif frame.event in ("TaskAssigned", "TaskRetryScheduled", "TaskRejected", "TaskWaiting"):
                progress.console.print(f"  {frame.event}: {data.get('agent_id') or data.get('reason', '')}")
            if frame.event == "TaskCompleted":  # a fast task reports its nodes only here
                for bar in bars.values():
                    progress.update(bar, completed=1.0, status="completed", style=NODE_STYLE["completed"])
            if frame.event in ("TaskCompleted", "TaskFailed", "TaskCancelled", "TaskRejected"):
                outcome, reason = frame.event[4:].lower(), data.get("reason", "")
    took = time.monotonic() - started
    if outcome == "completed":
        console.print(f"[green]task {task_id} completed[/] ({took:.1f}s)")
        return EXIT_OK
    console.print(f"[red]task {task_id} {outcome or 'ended'}[/]: {reason}")
    return EXIT_TASK_DID_NOT_COMPLETE


def _node(progress: Progress, bar: int, event: str, data: dict) -> None:
    if event == "NodeStarted":
        progress.start_task(bar)
        progress.update(bar, status="running", style=NODE_STYLE["running"])
    elif event == "NodeProgress":
        progress.update(bar, completed=data["progress"], status=f"{data['progress']:.0%}")
    elif event == "NodeCompleted":
        progress.update(bar, completed=1.0, status="completed", style=NODE_STYLE["completed"])
        progress.stop_task(bar)
    else:
        progress.update(bar, status="failed", style=NODE_STYLE["failed"])
        progress.stop_task(bar)
        progress.console.print(f"  [red]node {data['node_id']} failed[/]: {data['error']}")


def _when(ms) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S") if ms else ""


def agents_table(agents: list[dict]) -> Table:
    table = Table(title="agents")
    for column in ("agent", "status", "running", "slots", "reputation", "last seen", "capabilities"):
        table.add_column(column)
    for a in agents:
        running = a.get("running", a.get("holding", 0))
        reputation = a.get("reputation")
        caps = ", ".join(c["name"] for c in a.get("capabilities") or [])
        style = "green" if a["status"] == "online" else "yellow" if a["status"] == "silent" else "red"
        table.add_row(a["agent_id"], f"[{style}]{a['status']}[/]", str(running), str(a["slots"]),
                      f"{reputation:.2f}" if isinstance(reputation, (int, float)) else "–", _when(a.get("last_seen")), caps)
    return table


def tasks_table(tasks: list[dict]) -> Table:
    table = Table(title="tasks")
    for column in ("task", "name", "status", "priority", "agent", "updated"):
        table.add_column(column)
    for t in tasks:
        table.add_row(t["task_id"], t["name"], t["status"], str(t["priority"]), t.get("agent_id") or "",
                      _when(t.get("updated_at")))
    return table
