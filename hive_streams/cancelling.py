"""Ending a task for certain. A cancellation can be lost on the way: a library's `close` that suppresses
`CancelledError` while it awaits its own task swallows the caller's too, if both arrive at once. A task that goes
on after that hangs whoever waits for it, as a worker's shutdown once did."""
from __future__ import annotations

import asyncio
import io
import logging

log = logging.getLogger(__name__)
GRACE_SECONDS = 10.0  # a cancelled task that has not ended by then is cancelled again: long enough for its
# clean-up (stopping its clients, ending a snapshot begun), which a second cancellation would cut short


async def cancel_and_wait(task: asyncio.Task, grace: float = GRACE_SECONDS) -> None:
    """Cancels the task and waits until it has ended, cancelling it again, with a warning that shows where it
    went on, each time `grace` seconds pass. What it ended with (a result, an error) is not raised."""
    while not task.done():
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            stack = io.StringIO()
            task.print_stack(file=stack)
            log.warning("task %r went on after it was cancelled; cancelling it again. It was at:\n%s",
                        task.get_name(), stack.getvalue())
    if not task.cancelled():
        task.exception()  # retrieved: ended with an error or not, it is gone


async def cancel_all(tasks) -> None:
    await asyncio.gather(*(cancel_and_wait(task) for task in tasks))
