"""SSE fan-out benchmark: N concurrent clients of one API process's cluster feed, a run of M tasks.

    python -m bench.sse.run [--clients 1000] [--tasks 200] [--client-procs 2] [--feed-queue N]

Starts its own fabric (broker and PostgreSQL from the project's launchers, its own topics and
database), connects the clients, submits the tasks, and checks that every client got every
event of every task once, counting every frame. Every setting stays at its documented default
unless an option changes it; the run prints, and the report states, each one it changed.
Writes bench/results/sse.md and, beside it, sse.json with the raw figures.
"""
from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import fields
from pathlib import Path

import httpx

from hive_streams import settings as settings_mod
from hive_streams.infra import kafka, postgres
from hive_streams.kafka.admin import ensure_topics
from hive_streams.processes import Fabric, wait_until
from hive_streams.topics import Topics

from ..common import TENANT, credentials, percentiles
from .clients import COUNTS
from .report import write_report

ROOT = Path(__file__).resolve().parents[2]
TASK = {"nodes": [{"id": "a", "kind": "echo", "value": 1},
                  {"id": "b", "kind": "echo", "value": 2, "depends_on": ["a"]},
                  {"id": "c", "kind": "echo", "value": 3, "depends_on": ["b"]}]}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid)["VmRSS"])
            time.sleep(0.2)


PLACEMENT = {"HIVE_KAFKA_BOOTSTRAP", "HIVE_KAFKA_CREDENTIALS", "HIVE_DATABASE_URL", "HIVE_HOME", "HIVE_TOPIC_PREFIX",
             "HIVE_API_PORT", "HIVE_WORKER_ID", "HIVE_WORKER_WEB_PORT", "HIVE_JWT_SECRET"}  # where things are (or secret)


def changed_settings(env: dict[str, str]) -> dict[str, dict]:
    """Every behaviour setting in `env` that differs from its documented default."""
    defaults = {f.metadata["env"]: f.default for f in fields(settings_mod.Settings)}
    return {k: {"value": v, "default": defaults.get(k, "(not a setting)")} for k, v in sorted(env.items())
            if k not in PLACEMENT and str(defaults.get(k)) != v}


def start_fabric(work: Path, prefix: str, overrides: dict[str, str]) -> tuple[Fabric, str, int]:
    """`overrides` holds the signing secret: clients send the token made with it."""
    s = settings_mod.load()
    bootstrap = kafka.up(s)
    server = postgres.up(s)
    database = postgres.create_database(server, f"sse_{prefix}")
    topics = Topics(prefix, 4)
    asyncio.run(ensure_topics(kafka.access(s, "admin"), topics))
    kafka.grant(s, topics, f"w-{prefix}")  # the production ACLs on this prefix
    port = _free_port()
    env = {"HIVE_KAFKA_BOOTSTRAP": bootstrap, "HIVE_DATABASE_URL": database, "HIVE_HOME": str(work),
           "HIVE_TOPIC_PREFIX": prefix, "HIVE_API_PORT": str(port), "HIVE_WORKER_ID": f"w-{prefix}",
           "HIVE_KAFKA_CREDENTIALS": str(kafka.credentials_file(s)), **overrides}
    fabric = Fabric(env, work / "logs")
    fabric.spawn("connect", "--loglevel", "warning", "connect")
    fabric.spawn("worker", "--loglevel", "warning", "worker")
    fabric.spawn("api", "--loglevel", "warning", "api")
    for i in range(2):
        fabric.spawn(f"ex-{i}", "--loglevel", "warning", "executor", "--agent-id", f"ex-{i}",
                     "--capabilities", "echo", "--slots", "8")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: fabric.check_alive() or _healthy(base), 90, what="API health")
    return fabric, base, port


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def raw_json(result: dict, per_client: list[dict]) -> str:
    """The run's figures, then one line per client: its counts in the order `per_client_fields` names."""
    rows = ",\n  ".join(json.dumps([c[k] for k in COUNTS]) for c in per_client)
    head = json.dumps({**result, "per_client_fields": list(COUNTS)}, indent=1)[:-2]
    return f"{head},\n \"per_client\": [\n  {rows}\n ]\n}}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0.0, help="tasks submitted per second; 0: all at once")
    parser.add_argument("--feed-queue", type=int, help="HIVE_FEED_QUEUE for the API (default: the documented one)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sse.md")
    args = parser.parse_args()
    auth_env, token = credentials()
    overrides = {**auth_env, **({"HIVE_FEED_QUEUE": str(args.feed_queue)} if args.feed_queue is not None else {})}
    headers = {"Authorization": f"Bearer {token}"}
    changed = changed_settings(overrides)
    print("settings changed from their documented defaults:",
          ", ".join(f"{k}={v['value']} (default {v['default']})" for k, v in changed.items()) or "none", flush=True)
    prefix = f"sse{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="hive-sse-bench-"))
    fabric, base, port = start_fabric(work, prefix, overrides)
    api_pid = next(p for p in fabric.processes if p.name == "api").popen.pid
    try:
        rss_idle = rss_kib(api_pid)["VmRSS"]
        load_before = round(os.getloadavg()[0], 1)
        per_proc = [args.clients // args.client_procs + (i < args.clients % args.client_procs)
                    for i in range(args.client_procs)]
        procs = [subprocess.Popen([sys.executable, "-m", "bench.sse.clients", "127.0.0.1", str(port), str(n),
                                   f"{TENANT}:{prefix}-", str(args.tasks), str(work / f"clients-{i}")],
                                  cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "HIVE_TOKEN": token})
                 for i, n in enumerate(per_proc)]
        for proc in procs:
            assert proc.stdout.readline().strip() == "connected", "a client process failed to connect"
        wait_until(lambda: httpx.get(f"{base}/api/events/stats", headers=headers).json()["subscribers"] >= args.clients, 60,
                   what="every client subscribed")
        rss_connected = rss_kib(api_pid)["VmRSS"]
        sampler = RssSampler(api_pid)
        sampler.start()
        api_cpu_before = cpu_seconds(api_pid)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        with httpx.Client(base_url=base, timeout=30, headers=headers) as http:
            for i in range(args.tasks):
                if args.rate:
                    time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
                response = http.post("/api/tasks", json={"id": f"{prefix}-{i}", "name": f"sse-{i}", **TASK})
                assert response.status_code == 202, response.text
        for proc in procs:
            proc.wait(timeout=1200)
        elapsed = time.monotonic() - started
        sampler.running = False
        api_cpu = cpu_seconds(api_pid) - api_cpu_before
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        clients_cpu = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
        stats = httpx.get(f"{base}/api/events/stats", headers=headers).json()
        latencies = array.array("f")
        summary = {k: 0 for k in ("clients", "complete", *COUNTS)}
        per_client = []
        for i in range(args.client_procs):
            with open(work / f"clients-{i}.lat", "rb") as f:
                latencies.frombytes(f.read())
            part = json.loads((work / f"clients-{i}.json").read_text())
            summary = {k: summary[k] + part[k] for k in summary}
            per_client += part["per_client"]
        found = percentiles(sorted(latencies))
        raw = args.out.with_suffix(".json")
        result = {
            **summary, "tasks": args.tasks, "rate": args.rate, "client_procs": args.client_procs, "elapsed_s": round(elapsed, 1),
            "changed_settings": changed, "raw": raw.name,
            "latency_ms": {k: v if k == "n" else round(v, 1) for k, v in found.items()},
            "rss_idle_mib": round(rss_idle / 1024, 1), "rss_connected_mib": round(rss_connected / 1024, 1),
            "rss_peak_mib": round(max(sampler.peak, rss_kib(api_pid)["VmHWM"]) / 1024, 1),
            "dropped_slow_clients": stats["dropped"], "api_cpu_s": round(api_cpu, 1),
            "clients_cpu_s": round(clients_cpu, 1), "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 1), "machine": f"{os.cpu_count()} cores, {platform.platform()}",
            "command": "python -m bench.sse.run " + " ".join(sys.argv[1:]),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(raw_json(result, per_client))
        write_report(args.out, result)
        print(json.dumps(result, indent=2))
        return 0 if result["complete"] == args.clients and result["dropped_slow_clients"] == 0 else 1
    finally:
        fabric.stop()


if __name__ == "__main__":
    sys.exit(main())
