"""The cyclic garbage collector paused while state is folded in bulk, and spaced out while deciding.

A fold builds long-lived states out of frozen records, tuples and dicts, which make no reference cycles:
reference counting frees everything a fold drops. The cyclic collector would only traverse the growing
states again and again (a fifth of a fold's time). Paused while any fold runs; afterwards the folded
states are frozen out of its passes and it resumes.

Deciding makes no cycles either (`tests/test_collector.py`), but the states it adds are not frozen: with
Python's default thresholds (700, 10, 10) the collector ran ~17 full passes over them while a worker decided
20,000 commands, 1.3-1.6 s of its 12 s of CPU. `steady` spaces the passes out for every long-running process
(worker, API, executor, audit connector); young cycles (asyncio's, aiokafka's) are still found by the young passes.
The connector with the defaults spent 30% of its CPU in the collector, the API 35-45%, an executor ~20%.
"""
from __future__ import annotations

import contextlib
import gc

_folding = 0


@contextlib.contextmanager
def folding():
    global _folding
    if _folding == 0:
        gc.disable()
    _folding += 1
    try:
        yield
    finally:
        _folding -= 1
        if _folding == 0:
            gc.freeze()
            gc.enable()


STEADY_THRESHOLDS = (50_000, 20, 100)  # young pass every 50,000 allocations net; full pass every 2,000 of them


def steady() -> None:
    """The collector's thresholds for a long-running process: most of what it allocates is freed young."""
    gc.set_threshold(*STEADY_THRESHOLDS)
