"""Faults in a loop against a running Stack, and a submitter that keeps going through them.

Each round: SIGKILL a worker and start it again; freeze another (SIGSTOP) longer than the
session timeout, so its partitions move while it still holds them, then resume it; SIGKILL an
executor and start it again; restart the API. Shared by the CI fault test and `make soak`.
"""
from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import uuid

import httpx

from hive_streams.processes import Process

from .stack import Stack


class Chaos:
    def __init__(self, stack: Stack, executors: dict[str, tuple], freeze_seconds: float, settle_seconds: float,
                 pause: float = 2.0):
        self.stack = stack
        self.settle_seconds = settle_seconds  # after a kill, until the group has moved its partitions
        self.executors = executors
        self.freeze_seconds = freeze_seconds
        self.pause = pause
        self.rounds = 0
        self.done: list[str] = []  # what happened, in order, for the failure message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos", daemon=True)
        self._restarts = itertools.count(1)
        self._frozen: Process | None = None

    def start(self) -> "Chaos":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        if self._frozen is not None:
            self._thaw()

    def _loop(self) -> None:
        victims = itertools.cycle(list(self.executors))
        while not self._stop.is_set():
            n = len(self.stack.workers)
            self._kill_worker(self.rounds % n)
            self._sleep(self.settle_seconds)  # a freeze during the rebalance would find the worker owning nothing
            self._freeze_worker((self.rounds + 1) % n)
            self._sleep(self.pause)
            self._kill_executor(next(victims))
            self._sleep(self.pause)
            self._restart_api()
            self._sleep(self.pause)
            self.rounds += 1

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _kill_worker(self, i: int) -> None:
        old = self.stack.workers[i]
        old.kill()
        self.stack.workers[i] = self.stack.fabric.worker(f"worker-{i}-r{next(self._restarts)}")
        self.done.append(f"SIGKILL {old.name}, started {self.stack.workers[i].name}")

    def _freeze_worker(self, i: int) -> None:
        self._frozen = self.stack.workers[i]
        os.killpg(self._frozen.popen.pid, signal.SIGSTOP)
        self.done.append(f"SIGSTOP {self._frozen.name} for {self.freeze_seconds}s")
        self._stop.wait(self.freeze_seconds)  # stop() thaws it if the loop is told to end meanwhile
        if self._frozen is not None:
            self._thaw()

    def _thaw(self) -> None:
        frozen, self._frozen = self._frozen, None
        if frozen is not None and frozen.alive:
            os.killpg(frozen.popen.pid, signal.SIGCONT)
            self.done.append(f"SIGCONT {frozen.name}")

    def _kill_executor(self, agent_id: str) -> None:
        self.stack.executors[agent_id].kill()
        self._sleep(self.pause / 2)
        capabilities, slots, *options = self.executors[agent_id]
        self.stack.executors[agent_id] = self.stack.fabric.executor(agent_id, capabilities, slots, *options)
        self.done.append(f"SIGKILL executor {agent_id}, started again")

    def _restart_api(self) -> None:
        api = next(p for p in reversed(self.stack.fabric.processes) if p.name.startswith("api") and p.alive)
        api.stop()
        self.stack.fabric.spawn(f"api-r{next(self._restarts)}", "api")
        self.done.append(f"restarted {api.name}")


def post_until_accepted(base_url: str, path: str, body, key: str, deadline: float, sends: int = 1,
                        headers: dict[str, str] | None = None) -> list[int]:
    """POSTs with an Idempotency-Key until answered, through API restarts; `sends` > 1 retries on purpose."""
    statuses = []
    while len(statuses) < sends:
        try:
            response = httpx.post(f"{base_url}{path}", json=body, headers={"Idempotency-Key": key, **(headers or {})},
                                  timeout=10)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code < 500 and response.status_code != 409:
            statuses.append(response.status_code)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"POST {path} with key {key} never answered")
        time.sleep(0.3)
    return statuses


def new_key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
