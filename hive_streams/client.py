"""A small HTTP client of the API: submit tasks and follow their SSE feeds."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import httpx


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
    def __init__(self, base_url: str, timeout: float = 30):
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def submit(self, definition: str | bytes | dict, content_type: str = "application/yaml") -> httpx.Response:
        if isinstance(definition, dict):
            return self.http.post("/api/tasks", json=definition)
        return self.http.post("/api/tasks", content=definition, headers={"content-type": content_type})

    def task(self, task_id: str) -> dict | None:
        response = self.http.get(f"/api/tasks/{task_id}")
        return response.json() if response.status_code == 200 else None

    def follow(self, task_id: str, last_event_id: str | None = None, timeout: float = 120) -> Iterator[Frame]:
        headers = {"last-event-id": last_event_id} if last_event_id else {}
        with self.http.stream("GET", f"/api/tasks/{task_id}/events", headers=headers,
                              timeout=httpx.Timeout(timeout, read=timeout)) as response:
            response.raise_for_status()
            yield from iter_frames(response.iter_lines())

    def close(self) -> None:
        self.http.close()
