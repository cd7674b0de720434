"""The worker's engine run inside a test process, against the real broker."""
from __future__ import annotations

import asyncio
import contextlib

from hive_streams.codec import default_codec
from hive_streams.settings import Settings
from hive_streams.streams.engine import Engine


@contextlib.asynccontextmanager
async def running(settings: Settings):
    engine = Engine(settings, default_codec())
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(predicate, timeout: float, what: str):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def owns_all(engine: Engine) -> bool:
    """Whether the engine owns every partition of every command topic."""
    return len(engine.owned) == sum(family.partitions for family in engine.families.values())
