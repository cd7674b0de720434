"""Watching processes from /proc in tests: is it alive, wait until it is gone, find it by an argument."""
from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def wait_gone(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not alive(pid)


def sleeper() -> str:
    """A `sleep` argument unique to one test, so its process can be found on the host from outside a sandbox."""
    return f"30.{uuid.uuid4().int % 10**12:012d}"


def pids_with(argument: str) -> list[int]:
    """Live processes on the host whose command line has `argument`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argument.encode() in words and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


async def wait_started(argument: str, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while not (pids := pids_with(argument)):
        assert time.monotonic() < deadline, f"no process with {argument!r} started"
        await asyncio.sleep(0.02)
    return pids


async def wait_none(argument: str, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while pids_with(argument) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not pids_with(argument)
