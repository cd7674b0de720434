"""Run one sandboxed process: feed its stdin, read its output as it comes, kill it and all it started."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass

from .errors import NodeError

CHUNK = 64 * 1024
STDERR_KEPT = 64 * 1024
DRAIN_SECONDS = 10


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: bytes
    stdout_truncated: bool
    stderr: bytes  # its last STDERR_KEPT bytes


class _Budget:
    """What the two streams may write together; past it the node is killed."""

    def __init__(self, limit: int):
        self.left = limit
        self.limit = limit

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise NodeError(f"wrote more than {self.limit // (1024 * 1024)} MiB to stdout and stderr; killed")


async def _head(stream: asyncio.StreamReader, keep: int, budget: _Budget) -> tuple[bytes, bool]:
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(CHUNK):
        budget.spend(len(chunk))
        room = keep - len(kept)
        if len(chunk) > room:
            truncated = True
        kept += chunk[:max(room, 0)]
    return bytes(kept), truncated


async def _tail(stream: asyncio.StreamReader, keep: int, budget: _Budget) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(CHUNK):
        budget.spend(len(chunk))
        kept += chunk
        del kept[:-keep]
    return bytes(kept)


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
        stdin.close()


async def run_captured(argv: list[str], env: dict[str, str], stdin: bytes | None, keep: int,
                       budget: int) -> Finished:
    """Keep the first `keep` bytes of stdout; kill the process once both streams pass `budget` bytes.

    On any way out (exit, error, cancellation) the whole process group is killed; bwrap's
    --die-with-parent then takes the sandbox's pid namespace, and with it every descendant.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=CHUNK)
    spent = _Budget(budget)
    readers = [asyncio.ensure_future(_head(proc.stdout, keep, spent)),
               asyncio.ensure_future(_tail(proc.stderr, STDERR_KEPT, spent))]
    if stdin is not None:
        readers.append(asyncio.ensure_future(_feed(proc.stdin, stdin)))
    try:
        (stdout, truncated), stderr, *_ = await asyncio.gather(*readers)
        await proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await _close(proc, readers)
    return Finished(proc.returncode, stdout, truncated, stderr)


async def _close(proc: asyncio.subprocess.Process, readers: list[asyncio.Future]) -> None:
    """Stop the readers and read both pipes to their end: the process only counts as gone once they close."""
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(_drain(proc.stdout), _drain(proc.stderr)), DRAIN_SECONDS)
    if proc.returncode is None:
        await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(CHUNK):
        pass


def exit_reason(returncode: int) -> str:
    """bwrap passes a child's death by signal N on as exit code 128 + N; say which and why."""
    if returncode < 0:
        return f"killed by signal {-returncode}"
    if returncode > 128:
        with contextlib.suppress(ValueError):
            sig = signal.Signals(returncode - 128)
            why = {signal.SIGXCPU: " (CPU limit)", signal.SIGXFSZ: " (file size limit)",
                   signal.SIGKILL: " (killed)", signal.SIGSEGV: " (a limit or a crash)"}.get(sig, "")
            return f"exit code {returncode}: {sig.name}{why}"
    return f"exit code {returncode}"
