"""Many SSE clients in one process on raw asyncio sockets: records each task event's delivery latency.

    python -m bench.sse.clients HOST PORT CLIENTS TASK_PREFIX TASKS OUT_PREFIX

Prints "connected" once every client has its response headers; writes OUT_PREFIX.lat (float32
latencies in ms: receive time minus the event's `at`, one per frame received) and OUT_PREFIX.json
(the totals and every client's own counts). Every frame is counted as it arrives: a second frame
with a seq the client already has is a duplicate, a seq never received below a task's last is a gap.
"""
from __future__ import annotations

import array
import asyncio
import json
import os
import re
import sys
import time

TIMEOUT_SECONDS = 900
TASK_HEAD = re.compile(rb'\{"type":"\w+","task_id":"([^"]*)","seq":(\d+),"at":(\d+)')
TERMINAL = (b"TaskCompleted", b"TaskFailed", b"TaskCancelled", b"TaskRejected")
COUNTS = ("frames", "task_frames", "duplicates", "gaps", "out_of_order", "tasks_unended")


class Client:
    def __init__(self, prefix: str, tasks: int):
        self.prefix, self.tasks = prefix, tasks
        self.received: dict[str, list[int]] = {}  # task -> every seq received, in arrival order
        self.ended: set[str] = set()
        self.frames = 0  # every frame, of any type

    def on_frame(self, event: bytes, data: bytes, now_ms: float, latencies: array.array) -> None:
        self.frames += 1
        if not event.startswith((b"Task", b"Node")):
            return
        found = TASK_HEAD.match(data)  # cheaper than parsing the whole JSON, on a shared CPU
        task_id, seq, at = found.group(1).decode(), int(found.group(2)), int(found.group(3))
        if not task_id.startswith(self.prefix):
            return
        latencies.append(now_ms - at)
        self.received.setdefault(task_id, []).append(seq)
        if event in TERMINAL:
            self.ended.add(task_id)

    @property
    def done(self) -> bool:
        return len(self.ended) >= self.tasks

    def counts(self) -> dict[str, int]:
        seqs = self.received.values()
        return {"frames": self.frames, "task_frames": sum(len(s) for s in seqs),
                "duplicates": sum(len(s) - len(set(s)) for s in seqs),
                "gaps": sum(max(s) - len(set(s)) for s in seqs if s),
                "out_of_order": sum(s != sorted(s) for s in seqs),
                "tasks_unended": self.tasks - len(self.ended)}

    def complete(self) -> bool:
        """Every event of every task, seq 1 to the last, each received once and in order."""
        return self.done and all(s == list(range(1, len(s) + 1)) for s in self.received.values())


async def run_client(host: str, port: int, client: Client, latencies: array.array, connected: asyncio.Queue) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    writer.write(f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
                 f"Authorization: Bearer {os.environ['HIVE_TOKEN']}\r\n\r\n".encode())
    await writer.drain()
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass  # response headers
    connected.put_nowait(1)
    buffer = b""
    try:
        while not client.done:
            size = int((await reader.readline()).strip() or b"0", 16)  # chunked transfer encoding
            if size == 0:
                return
            buffer += (await reader.readexactly(size + 2))[:-2]
            now_ms = time.time() * 1000
            *frames, buffer = buffer.replace(b"\r\n", b"\n").split(b"\n\n")
            for frame in frames:
                event = data = b""
                for line in frame.split(b"\n"):
                    if line.startswith(b"event: "):
                        event = line[7:]
                    elif line.startswith(b"data: "):
                        data = line[6:]
                if data:
                    client.on_frame(event, data, now_ms, latencies)
    finally:
        writer.close()


def totals(clients: list[Client]) -> dict:
    per_client = [c.counts() for c in clients]
    return {"clients": len(clients), "complete": sum(c.complete() for c in clients),
            **{k: sum(c[k] for c in per_client) for k in COUNTS}, "per_client": per_client}


async def main(host: str, port: int, count: int, prefix: str, tasks: int, out: str) -> None:
    latencies = array.array("f")
    clients = [Client(prefix, tasks) for _ in range(count)]
    connected: asyncio.Queue = asyncio.Queue()
    runs = []
    for client in clients:
        runs.append(asyncio.create_task(run_client(host, port, client, latencies, connected)))
        await asyncio.sleep(0.002)
    for _ in clients:
        await connected.get()
    print("connected", flush=True)
    _, pending = await asyncio.wait(runs, timeout=TIMEOUT_SECONDS)
    for run in pending:
        run.cancel()
    await asyncio.gather(*runs, return_exceptions=True)
    with open(out + ".lat", "wb") as f:
        latencies.tofile(f)
    with open(out + ".json", "w") as f:
        json.dump(totals(clients), f)


if __name__ == "__main__":
    h, p, n, pre, t, o = sys.argv[1:]
    asyncio.run(main(h, int(p), int(n), pre, int(t), o))
