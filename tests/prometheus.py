"""A real Prometheus (Debian's `prometheus` package) started by a test, and its query API."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import yaml

from hive_streams.processes import wait_until
from hive_streams.settings import REPO_ROOT

from .stack import free_port

RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: `apt-get install -y prometheus` (.ci/run does)")
    return found


class Prometheus:
    def __init__(self, home: Path, jobs: dict[str, list[str]], interval: str = "1s"):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(RULES, home / RULES.name)
        config = {"global": {"scrape_interval": interval, "evaluation_interval": interval},
                  "rule_files": [RULES.name],
                  "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                                     for job, targets in jobs.items()]}
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        log = open(self.home / "prometheus.log", "ab")
        self.popen = subprocess.Popen(
            [binary("prometheus"), f"--config.file={self.home / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.home / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        wait_until(self._ready, 60, what="prometheus ready")
        return self

    def _ready(self) -> bool:
        if self.popen.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(self.home / 'prometheus.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def targets(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]

    def rules(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
