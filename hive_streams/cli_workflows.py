"""`hive-streams workflow ... | execution ...`: register workflows, start, watch step by step, resume, cancel."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
from rich.console import Console

from .client import HiveClient

COMMANDS = ("workflow", "execution")
EXIT_OK, EXIT_DID_NOT_COMPLETE, EXIT_REFUSED, EXIT_NO_API = 0, 1, 2, 3
TERMINAL = ("ExecutionCompleted", "ExecutionFailed", "ExecutionCancelled")


def add_parsers(sub) -> None:
    w = sub.add_parser("workflow", help="register workflow definitions and list their versions")
    wsub = w.add_subparsers(dest="action", required=True)
    r = wsub.add_parser("register", help="register a definition (YAML or JSON file); a changed one is a new version")
    r.add_argument("file", type=Path)
    v = wsub.add_parser("versions", help="a workflow's versions")
    v.add_argument("name")
    e = sub.add_parser("execution", help="start, show, watch, resume or cancel executions of workflows")
    esub = e.add_subparsers(dest="action", required=True)
    s = esub.add_parser("start", help="start an execution of a workflow")
    s.add_argument("name")
    s.add_argument("--inputs", default="{}", help="channel values as a JSON object")
    s.add_argument("--budget", type=float)
    s.add_argument("--deadline-seconds", type=float)
    s.add_argument("--version", type=int, help="default: the latest")
    s.add_argument("--id", help="the execution's id (starting it again is idempotent)")
    s.add_argument("--watch", action="store_true", help="then watch it step by step")
    for action, text in (("show", "an execution's status, values and steps"),
                         ("watch", "follow an execution step by step until it ends"),
                         ("cancel", "cancel an execution and its running tasks")):
        esub.add_parser(action, help=text).add_argument("execution_id")
    rs = esub.add_parser("resume", help="resume an interrupted execution")
    rs.add_argument("execution_id")
    rs.add_argument("--interrupt", required=True, help="the id of the interrupt it waits at")
    rs.add_argument("--payload", default="null", help="a JSON value delivered to the first resumed step")


def run(args, settings) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    console = Console()
    client = HiveClient(settings.api_base_url, token=settings.token)
    try:
        return _run(args, client, console)
    except httpx.TransportError as exc:
        console.print(f"[red]cannot reach the API at {settings.api_base_url}[/]: {exc} (set HIVE_API_URL)")
        return EXIT_NO_API
    except (httpx.HTTPStatusError, _Refused) as exc:
        response = exc.response
        console.print(f"[red]refused ({response.status_code})[/]: {_reason(response)}")
        return EXIT_REFUSED
    finally:
        client.close()


class _Refused(Exception):
    def __init__(self, response: httpx.Response):
        self.response = response


def _checked(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        raise _Refused(response)
    return response.json()


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('field', '$')}: {body.get('error', response.text)}"
    except ValueError:
        return response.text


def _run(args, client: HiveClient, console: Console) -> int:
    http = client.http
    if args.command == "workflow":
        if args.action == "register":
            kind = "application/json" if args.file.suffix == ".json" else "application/yaml"
            body = _checked(http.post("/api/workflows", content=args.file.read_bytes(), headers={"content-type": kind}))
            console.print(f"workflow {body['name']} version {body['version']}"
                          + ("" if body["created"] else " (unchanged)"))
            return EXIT_OK
        for v in _checked(http.get(f"/api/workflows/{args.name}/versions"))["versions"]:
            console.print(f"{v['version']:>4}  {v['digest'][:12]}  {v['created_by']}")
        return EXIT_OK
    if args.action == "start":
        body = {"inputs": json.loads(args.inputs), "budget": args.budget, "deadline_seconds": args.deadline_seconds,
                "version": args.version, "id": args.id}
        started = _checked(http.post(f"/api/workflows/{args.name}/executions",
                                     json={k: v for k, v in body.items() if v is not None}))
        console.print(f"execution {started['execution_id']} of {started['workflow']} v{started['version']} started")
        return watch(client, console, started["execution_id"]) if args.watch else EXIT_OK
    if args.action == "show":
        console.print_json(json.dumps(_checked(http.get(f"/api/executions/{args.execution_id}"))))
        return EXIT_OK
    if args.action == "watch":
        return watch(client, console, args.execution_id)
    if args.action == "cancel":
        _checked(http.delete(f"/api/executions/{args.execution_id}"))
        console.print(f"execution {args.execution_id} cancelling")
        return EXIT_OK
    _checked(http.post(f"/api/executions/{args.execution_id}/resume",
                       json={"interrupt_id": args.interrupt, "payload": json.loads(args.payload)}))
    console.print(f"execution {args.execution_id} resuming")
    return EXIT_OK


def watch(client: HiveClient, console: Console, execution_id: str, wait_seconds: float = 30) -> int:
    """One line per step event until the execution ends; it may take a moment to appear after a start."""
    deadline = time.monotonic() + wait_seconds
    while client.http.get(f"/api/executions/{execution_id}").status_code == 404:
        if time.monotonic() > deadline:
            console.print(f"[red]no execution {execution_id}[/]")
            return EXIT_DID_NOT_COMPLETE
        time.sleep(0.5)
    last = None
    while True:
        try:
            for frame in client.stream(f"/api/executions/{execution_id}/events", last, timeout=3600):
                last = frame.id
                console.print(describe(frame.event, frame.data))
                if frame.event in TERMINAL:
                    return EXIT_OK if frame.event == "ExecutionCompleted" else EXIT_DID_NOT_COMPLETE
        except httpx.TransportError:
            time.sleep(1)


def describe(event: str, d: dict) -> str:
    if event == "ExecutionStarted":
        return f"started {d['workflow']} v{d['version']} with {json.dumps(d['values'])}"
    if event == "StepStarted":
        nodes = ", ".join(f"{i['ordinal']}:{i['node']['id']}" for i in d["items"])
        return f"[cyan]step {d['step']}[/] runs {nodes}"
    if event == "StepItemFinished":
        o = d["outcome"]
        style = "green" if o["outcome"] == "completed" else "red"
        return f"  [{style}]{o['ordinal']} {o['outcome']}[/] {o['task_id']}" + (f": {o['error']}" if o["error"] else "")
    if event == "StepCommitted":
        writes = "; ".join(f"{w[0]}:{w[1]} {w[2]}={json.dumps(w[3])}" for w in d["writes"]) or "no writes"
        return f"[green]step {d['step']} committed[/]: {writes}\n  values {json.dumps(d['values'])}"
    if event == "ExecutionInterrupted":
        return (f"[yellow]interrupted[/] by {d['node']}: {json.dumps(d['payload'])}\n  resume with: hive-streams "
                f"execution resume {d['execution_id']} --interrupt {d['interrupt_id']} --payload '<json>'")
    if event == "ExecutionResumed":
        return f"[cyan]resumed[/] with {json.dumps(d['payload'])}"
    if event == "ExecutionCompleted":
        return f"[green]completed[/]: {json.dumps(d['values'])}"
    return f"[red]{event.removeprefix('Execution').lower()}[/]: {d.get('reason', '')}"
