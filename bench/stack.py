"""A fabric of real hive-streams processes with its own topics and database, for one benchmark run."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from hive_streams import settings as settings_mod
from hive_streams.infra import postgres
from hive_streams.kafka import acls
from hive_streams.kafka.access import credentials_path, read_credentials
from hive_streams.kafka.admin import ensure_topics
from hive_streams.processes import Fabric, Process
from hive_streams.topics import Topics

from .common import PROCESSES, SLOTS, credentials, credentials_env, kafka_as, kafka_options, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def usernames() -> dict[str, str]:
    return {role: e["username"] for role, e in read_credentials(credentials_path(settings_mod.load())).items()}


class Stack:
    def __init__(self, bootstrap: str, pg_server: str, work: Path, partitions: int = 4):
        self.id = uuid.uuid4().hex[:8]
        self.topics = Topics(f"bench{self.id}", partitions)
        self.bootstrap = bootstrap
        self.pg_server = pg_server
        self.database = f"bench_{self.id}"
        self.worker_id = f"bench-{self.id}"
        self.grants = acls.grants(self.topics, self.worker_id)
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.home = work / self.id
        self.fabric: Fabric | None = None
        self.procs: dict[str, Process] = {}
        self.auth_env, self.token = credentials()
        self.headers = {"Authorization": f"Bearer {self.token}"}  # an admin's, for every request to the API

    def create(self) -> "Stack":
        admin = kafka_as("admin", self.bootstrap)
        asyncio.run(ensure_topics(admin, self.topics))
        asyncio.run(acls.apply(admin, self.grants, usernames()))  # the production ACLs on this prefix
        url = postgres.create_database(self.pg_server, self.database)
        env = {"HIVE_KAFKA_BOOTSTRAP": self.bootstrap, "HIVE_DATABASE_URL": url, "HIVE_HOME": str(self.home),
               "HIVE_TOPIC_PREFIX": self.topics.prefix, "HIVE_PARTITIONS": str(self.topics.partitions),
               "HIVE_API_PORT": str(self.api_port), "HIVE_WORKER_ID": self.worker_id, **self.auth_env,
               **credentials_env()}
        self.fabric = Fabric(env, self.home / "logs")
        return self

    def start(self, worker: bool = True, api: bool = True, connect: bool = True, executors: int = PROCESSES,
              slots: int = SLOTS) -> "Stack":
        if self.fabric is None:
            self.create()
        if connect:
            self.procs["connect"] = self.fabric.spawn("connect", "--loglevel", "warning", "connect")
        if worker:
            self.procs["worker"] = self.fabric.spawn("worker", "--loglevel", "warning", "worker")
        if api:
            self.procs["api"] = self.fabric.spawn("api", "--loglevel", "warning", "api")
            wait_for(lambda: self._check() or self._healthy(), 90, "the API's health")
        for i in range(executors):
            self.procs[f"ex-{i}"] = self.fabric.spawn(f"ex-{i}", "--loglevel", "warning", "executor", "--agent-id",
                                                      f"ex-{i}", "--capabilities", "echo", "--slots", str(slots))
        return self

    def pid(self, name: str) -> int:
        return self.procs[name].popen.pid

    def _check(self) -> None:
        self.fabric.check_alive()

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in self.fabric.processes) if self.fabric else ""

    def stop(self) -> None:
        if self.fabric:
            for proc in self.fabric.processes:  # all at once: each may take seconds to shut down
                if proc.alive:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
            self.fabric.stop()
        asyncio.run(acls.revoke(kafka_as("admin", self.bootstrap), self.grants, usernames()))
        asyncio.run(self._delete_topics())
        postgres.drop_database(self.pg_server, self.database)

    async def _delete_topics(self) -> None:
        admin = AIOKafkaAdminClient(**kafka_options(self.bootstrap))
        await admin.start()
        try:
            await admin.delete_topics(list(self.topics.layout()))
        finally:
            await admin.close()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
