"""The machine and the versions every figure was taken with."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from .common import REPO, loadavg

PACKAGES = ("aiokafka", "fastavro", "celery", "kombu", "redis", "starlette", "uvicorn",
            "sse-starlette", "sqlalchemy", "psycopg")


def _first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (proc.stdout or proc.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not found"


def _proc(path: str, key: str) -> str:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return "?"


def _git() -> str:
    head = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "hive_streams", "connectors", "schemas"],
                           capture_output=True).returncode
    return f"{head}{' + uncommitted changes in hive_streams/connectors/schemas' if dirty else ''}"


def _postgres(pg_server: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url
    url = make_url(pg_server).set(drivername="postgresql", database="postgres")
    with psycopg.connect(url.render_as_string(hide_password=False), connect_timeout=5) as conn:
        return conn.execute("show server_version").fetchone()[0]


def describe(pg_server: str, kafka_version: str) -> dict:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "cpu": f"{os.cpu_count()} cores, {_proc('/proc/cpuinfo', 'model name')}",
        "memory": _proc("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "load_at_start": loadavg(),
        "versions": {"python": platform.python_version(), "hive-streams": _git(),
                     "kafka": f"{kafka_version} (KRaft, one broker on 127.0.0.1)",
                     "java": _first_line(["java", "-version"]), "redis-server": _first_line(["redis-server", "--version"]),
                     "postgresql": _postgres(pg_server), **packages},
    }
