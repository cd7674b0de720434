"""A whole fabric of real processes for one test module: its own topics, database, ports."""
from __future__ import annotations

import asyncio
import secrets
import socket
import uuid
from pathlib import Path

import httpx

from hive_streams.auth import mint
from hive_streams.client import HiveClient
from hive_streams.kafka.admin import delete_topics, ensure_topics
from hive_streams.processes import Fabric, wait_until
from hive_streams.infra.postgres import create_database, drop_database
from hive_streams.settings import REPO_ROOT
from hive_streams.topics import Topics

from .roles import as_role, grant, revoke

ALL_KINDS = "echo,shell,python,sleep,http"
RUNS = REPO_ROOT / ".hive" / "test-runs"
TENANT = "tests"
TOKEN_TTL_SECONDS = 6 * 3600  # outlives the longest test module
# Tests submit far faster than people: the admin's limit is raised; the rate-limit tests set their own.
TEST_RATE_LIMITS = "executions.start=admin:1000000,developer:100;workflows.create=admin:100,developer:50;agents.register=admin:10"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, bootstrap: str, database_url: str, log_root: Path, partitions: int = 4, **env_overrides: str):
        self.id = uuid.uuid4().hex[:10]
        self.topics = Topics(f"t{self.id}", partitions)
        self.bootstrap = bootstrap
        self.server_url = database_url
        self.database_url = create_database(database_url, f"stack_{self.id}")  # read models of its own
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        home = RUNS / self.id  # outside pytest's temp dirs, which other runs rotate away
        self.secret = secrets.token_hex(32)
        self.worker_id = env_overrides.get("HIVE_WORKER_ID", f"w{self.id}")
        env = {"HIVE_KAFKA_BOOTSTRAP": bootstrap, "HIVE_DATABASE_URL": self.database_url, "HIVE_HOME": str(home),
               "HIVE_TOPIC_PREFIX": self.topics.prefix, "HIVE_PARTITIONS": str(partitions),
               "HIVE_API_PORT": str(self.api_port), "HIVE_WORKER_ID": self.worker_id,
               "HIVE_HEARTBEAT_SECONDS": "1", "HIVE_JWT_SECRET": self.secret, "HIVE_RATE_LIMITS": TEST_RATE_LIMITS,
               **env_overrides}
        self.fabric = Fabric(env, home / "logs")
        self.worker = None
        self.workers = []
        self.executors = {}
        self.client = self.client_as("admin")

    def token(self, role: str = "admin", sub: str | None = None, tenant: str = TENANT,
              ttl: int = TOKEN_TTL_SECONDS, **claims) -> str:
        """A real token signed with this stack's secret; its principal's account is `tenant/sub`."""
        return mint(self.secret, sub or role, tenant, [role], ttl, **claims)

    def client_as(self, role: str = "admin", sub: str | None = None, tenant: str = TENANT) -> HiveClient:
        return HiveClient(self.base_url, token=self.token(role, sub, tenant))

    def account(self, role: str = "admin", sub: str | None = None, tenant: str = TENANT) -> str:
        return f"{tenant}/{sub or role}"

    def auth(self, role: str = "admin", sub: str | None = None, tenant: str = TENANT) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, sub, tenant)}"}

    def start(self, executors: dict[str, tuple], workers: int = 1) -> "Stack":
        """executors: agent id -> (capabilities, slots, *extra executor options)."""
        asyncio.run(ensure_topics(as_role("admin"), self.topics))
        grant(self.topics, self.worker_id)
        self.fabric.spawn("connect", "connect")
        self.workers = [self.fabric.worker(f"worker-{i}") for i in range(workers)]
        self.worker = self.workers[0]
        self.fabric.spawn("api", "api")
        for agent_id, (capabilities, slots, *options) in executors.items():
            self.executors[agent_id] = self.fabric.executor(agent_id, capabilities, slots, *options)
        wait_until(lambda: self.fabric.check_alive() or self._healthy(), 60, what="API health")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def restart_worker(self) -> None:
        self.worker = self.fabric.worker("worker-restarted")

    def wait_for_agents(self, count: int, timeout: float = 60) -> list[dict]:
        def online():
            agents = self.client.http.get("/api/status/agents").json()["agents"]
            return agents if sum(a["status"] == "online" for a in agents) >= count else None
        return wait_until(online, timeout, what=f"{count} agents online")

    def stop(self) -> None:
        self.client.close()
        self.fabric.stop()
        revoke(self.topics, self.worker_id)
        asyncio.run(delete_topics(as_role("admin"), self.topics))  # a suite's thousands of partitions slow the broker
        drop_database(self.server_url, f"stack_{self.id}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(25)}" for p in self.fabric.processes)
