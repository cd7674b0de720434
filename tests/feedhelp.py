"""Helpers for feed tests: read SSE feeds with forced disconnects, start extra API processes."""
from __future__ import annotations

import random

import httpx

from hive_streams.client import Frame, HiveClient
from hive_streams.domain.events import AGENT_EVENTS
from hive_streams.processes import wait_until

from .stack import Stack, free_port


def layered_sleeps(task_id: str, layers: int = 13, width: int = 7, seconds: float = 0.2) -> dict:
    """`layers` x `width` sleep nodes, each layer after the whole previous one: about 6 events a node (the
    last layer's outputs travel with the result)."""
    nodes = []
    for layer in range(layers):
        previous = [f"l{layer - 1}n{i}" for i in range(width)] if layer else []
        nodes += [{"id": f"l{layer}n{i}", "kind": "sleep", "seconds": seconds, "depends_on": previous}
                  for i in range(width)]
    return {"id": task_id, "name": task_id, "nodes": nodes}


def read_with_disconnects(client: HiveClient, path: str, done, rng: random.Random, last_id: str | None = None,
                          params: dict | None = None, most: int = 40) -> tuple[list[Frame], int]:
    """Reads `path`, closing the connection after a random number of frames and resuming from the
    last id, until `done(frames)`. Returns the frames and the number of connections made."""
    frames: list[Frame] = []
    connections = 0
    while not done(frames):
        connections += 1
        budget = rng.randint(1, most)
        for frame in client.stream(path, last_id, params=params, timeout=120):
            frames.append(frame)
            last_id = frame.id
            budget -= 1
            if budget == 0 or done(frames):
                break  # leaving the with-block closes the connection mid-stream
    return frames, connections


def start_api(stack: Stack, name: str, **env: str) -> HiveClient:
    port = free_port()
    stack.fabric.spawn(name, "api", extra_env={"HIVE_API_PORT": str(port), **env})
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        stack.fabric.check_alive()
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 60, what=f"{name} health")
    return HiveClient(base, token=stack.token())


def stop_api(stack: Stack, name: str) -> None:
    """Stops it (SIGTERM) and forgets it, so the fabric's liveness checks do not count it as a crash."""
    proc = next(p for p in stack.fabric.processes if p.name == name)
    proc.stop()
    stack.fabric.processes.remove(proc)


AGENT_EVENT_NAMES = frozenset(cls.__name__ for cls in AGENT_EVENTS)


def of_task(frames: list[Frame], task_id: str) -> list[Frame]:
    """The task's own events (agent events such as SlotReserved name tasks too, with the agent's seq)."""
    return [f for f in frames if f.data.get("task_id") == task_id and f.event not in AGENT_EVENT_NAMES]


def task_ended(task_id: str):
    return lambda frames: bool(frames) and frames[-1].event == "TaskCompleted" and frames[-1].data.get("task_id") == task_id
