"""The peer: Celery with a Redis broker and result backend, a no-op task, N prefork worker processes."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from celery import Celery
from celery.result import ResultSet

from .common import REPO, cpu_seconds, wait_for
from .deps import ensure_redis_server


def noop():
    return None


def make_app(redis_url: str) -> Celery:
    app = Celery("bench", broker=redis_url, backend=redis_url)
    app.conf.update(broker_connection_retry_on_startup=True, result_expires=3600, worker_hijack_root_logger=False)
    app.task(name="bench.noop")(noop)
    return app


app = make_app(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))  # `celery -A bench.celery_peer`


class Peer:
    """One redis-server and one `celery worker` for one run; stopped with the run."""

    def __init__(self, work: Path, port: int, processes: int):
        self.work = work
        self.port = port
        self.processes = processes
        self.url = f"redis://127.0.0.1:{port}/0"
        self.redis = self.worker = None

    def start(self) -> "Peer":
        self.work.mkdir(parents=True, exist_ok=True)
        log = open(self.work / "redis.log", "ab")
        # appendfsync everysec: about the durability of Kafka's acks=all without fsync per message
        self.redis = subprocess.Popen([ensure_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                                       "--dir", str(self.work)], stdout=log, stderr=subprocess.STDOUT)
        self.app = make_app(self.url)
        self.client = self.app.backend.client  # redis-py client of the result backend
        wait_for(self._redis_up, 20, "redis-server")
        log = open(self.work / "celery.log", "ab")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.celery_peer", "worker", "--pool", "prefork",
             "--concurrency", str(self.processes), "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel", "warning"],
            cwd=REPO, env={**os.environ, "BENCH_REDIS_URL": self.url}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        return self

    def _redis_up(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # not accepting connections yet
            return False

    def pids(self) -> list[int]:
        """The worker's main process and its prefork children."""
        children = Path(f"/proc/{self.worker.pid}/task/{self.worker.pid}/children").read_text().split()
        return [self.worker.pid, *map(int, children)]

    def cpu(self) -> dict[str, float]:
        return {"celery": sum(cpu_seconds(p) for p in self.pids()), "redis": cpu_seconds(self.redis.pid)}

    def commands(self) -> int:
        return int(self.client.info("stats")["total_commands_processed"])

    def run(self, n: int, timeout: float) -> float:
        """Seconds from the first submit to the last result."""
        started = time.perf_counter()
        task = self.app.tasks["bench.noop"]
        ResultSet([task.delay() for _ in range(n)], app=self.app).join_native(timeout=timeout)
        return time.perf_counter() - started

    def stop(self) -> None:
        for proc in (self.worker, self.redis):
            if proc and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
