"""A small HTTP client of the API: submit tasks, follow their SSE feeds, list tasks and agents."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Iterator

import httpx

from .domain.events import TERMINAL_TASK_EVENTS

TERMINAL_EVENTS = frozenset(cls.__name__ for cls in TERMINAL_TASK_EVENTS)


@dataclass(frozen=True)
class Frame:
    event: str
    id: str
    data: dict


def iter_frames(lines: Iterator[str]) -> Iterator[Frame]:
    """Parses SSE lines into frames; comments (keep-alives) are skipped."""
    event, frame_id, data = "message", "", []
    for line in lines:
        if not line:
            if data:
                yield Frame(event, frame_id, json.loads("\n".join(data)))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "id":
            frame_id = value
        elif field == "data":
            data.append(value)


class HiveClient:
    """Sends `token` (by default $HIVE_TOKEN) as `Authorization: Bearer` with every request."""

    def __init__(self, base_url: str, timeout: float = 30, token: str | None = None):
        token = os.environ.get("HIVE_TOKEN", "") if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers)

    def submit(self, definition: str | bytes | dict, content_type: str = "application/yaml",
               idempotency_key: str | None = None) -> httpx.Response:
        keyed = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if isinstance(definition, dict):
            return self.http.post("/api/tasks", json=definition, headers=keyed)
        return self.http.post("/api/tasks", content=definition, headers={"content-type": content_type, **keyed})

    def submit_many(self, definitions: list[dict], idempotency_key: str | None = None) -> httpx.Response:
        """Up to 1,000 definitions in one request; the answer has one item per definition."""
        keyed = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.http.post("/api/tasks", json=definitions, headers=keyed)

    def task(self, task_id: str) -> dict | None:
        response = self.http.get(f"/api/tasks/{task_id}")
        return response.json() if response.status_code == 200 else None

    def stream(self, path: str, last_event_id: str | None = None, params: dict | None = None,
               timeout: float = 120) -> Iterator[Frame]:
        """One SSE connection: frames until the server closes it."""
        headers = {"last-event-id": last_event_id} if last_event_id else {}
        with self.http.stream("GET", path, headers=headers, params=params,
                              timeout=httpx.Timeout(timeout, read=timeout)) as response:
            response.raise_for_status()
            yield from iter_frames(response.iter_lines())

    def follow(self, task_id: str, last_event_id: str | None = None, timeout: float = 120) -> Iterator[Frame]:
        yield from self.stream(f"/api/tasks/{task_id}/events", last_event_id, timeout=timeout)

    def watch(self, task_id: str, last_event_id: str | None = None, retries: int = 20) -> Iterator[Frame]:
        """A task's frames until it ends, reconnecting from the last frame when the connection drops."""
        failures = 0
        while True:
            try:
                for frame in self.follow(task_id, last_event_id):
                    last_event_id, failures = frame.id, 0
                    yield frame
                    if frame.event in TERMINAL_EVENTS:
                        return
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code < 500:
                    raise
                failures += 1
                if failures > retries:
                    raise
                time.sleep(min(5.0, 0.2 * 2 ** failures))

    def producer_key(self) -> str:
        """The key for hive_streams.producer.TaskProducer: it seals this principal's own task submissions."""
        response = self.http.post("/api/producer-keys")
        response.raise_for_status()
        return response.json()["key"]

    def get_json(self, path: str, params: dict | None = None):
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def agents(self) -> list[dict]:
        """The operator's view (with reputation and load) when the API has it, else the read model."""
        response = self.http.get("/api/status/agents")
        if response.status_code == 200:
            return response.json()["agents"]
        return self.get_json("/api/views/agents")

    def tasks(self, limit: int = 50, status: str | None = None) -> list[dict]:
        return self.get_json("/api/views/tasks", {"limit": limit, **({"status": status} if status else {})})

    def close(self) -> None:
        self.http.close()
