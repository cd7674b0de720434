"""Ending a task for certain, even one that loses a cancellation (no IO)."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from hive_streams.cancelling import cancel_all, cancel_and_wait


async def _swallows_one(ticks: list[int]):
    """Loses the first cancellation, as a close that suppresses CancelledError around its own await does."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(60)
    while True:
        ticks.append(1)
        await asyncio.sleep(0.005)


async def test_a_task_that_lost_its_cancellation_is_cancelled_again_and_the_place_is_logged(caplog):
    ticks: list[int] = []
    task = asyncio.create_task(_swallows_one(ticks), name="swallower")
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="hive_streams.cancelling"):
        await asyncio.wait_for(cancel_and_wait(task, grace=0.1), 5)
    assert task.cancelled() and ticks  # it went on after the first cancellation, and ended on the second
    warnings = [r.getMessage() for r in caplog.records if r.name == "hive_streams.cancelling"]
    assert len(warnings) == 1 and "swallower" in warnings[0] and "_swallows_one" in warnings[0]


async def test_a_task_that_ends_on_its_cancellation_is_cancelled_once_and_its_error_not_raised(caplog):
    async def cleans_up():
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.05)  # a clean-up shorter than the grace is not cut short

    async def fails():
        raise RuntimeError("boom")

    clean, failed = asyncio.create_task(cleans_up()), asyncio.create_task(fails())
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="hive_streams.cancelling"):
        await cancel_all([clean, failed])
        await cancel_and_wait(clean)  # already ended: nothing to do
    assert clean.cancelled() and isinstance(failed.exception(), RuntimeError)
    assert not [r for r in caplog.records if r.name == "hive_streams.cancelling"]
